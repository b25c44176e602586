"""Paper account: market orders filled at the next bar's open, commission, PnL, risk limits."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    qty: float  # signed: > 0 buys, < 0 sells
    reason: str
    submitted_ts: float

    @property
    def side(self) -> str:
        return "buy" if self.qty > 0 else "sell"


@dataclass(frozen=True, slots=True)
class Fill:
    order: Order
    ts: float
    price: float
    commission: float
    realized_pnl: float  # PnL realised by this fill (before commission)

    @property
    def notional(self) -> float:
        return abs(self.order.qty) * self.price


class PaperBroker:
    """One instrument, signed position, average entry price; cash in the quote currency."""

    def __init__(self, cash: float, *, commission_rate: float, lot: float) -> None:
        if not cash > 0:
            raise ValueError(f"cash={cash}: must be > 0")
        self.cash = cash
        self.commission_rate = commission_rate
        self.lot = lot
        self.qty = 0.0
        self.avg_price = 0.0
        self.realized_pnl = 0.0  # after commissions
        self.commissions = 0.0
        self.pending: list[Order] = []
        self._next_id = 1

    def equity(self, price: float) -> float:
        return self.cash + self.qty * price

    def unrealized_pnl(self, price: float) -> float:
        return self.qty * (price - self.avg_price) if self.qty else 0.0

    def exposure(self, price: float) -> float:
        """Gross position notional over equity."""
        return abs(self.qty) * price / self.equity(price)

    def round_lots(self, qty: float) -> float:
        return math.copysign(math.floor(abs(qty) / self.lot) * self.lot, qty)

    def submit(self, qty: float, reason: str, ts: float) -> Order | None:
        """A market order for the next bar's open; None when it rounds to nothing."""
        if abs(qty) < self.lot / 2:
            return None
        order = Order(self._next_id, qty, reason, ts)
        self._next_id += 1
        self.pending.append(order)
        return order

    def qty_after_pending(self) -> float:
        return self.qty + sum(o.qty for o in self.pending)

    def direction_after_pending(self) -> int:
        after = self.qty_after_pending()
        return (after > 0) - (after < 0)

    def target(self, qty: float, reason: str, ts: float) -> Order | None:
        """Order the difference between ``qty`` and the position after pending orders."""
        return self.submit(self.round_lots(qty) - self.qty_after_pending(), reason, ts)

    def fill_pending(self, ts: float, price: float) -> list[Fill]:
        fills = [self._fill(order, ts, price) for order in self.pending]
        self.pending = []
        return fills

    def _fill(self, order: Order, ts: float, price: float) -> Fill:
        qty = order.qty
        realized = 0.0
        if self.qty and (self.qty > 0) != (qty > 0):  # reduces (maybe flips) the position
            closed = min(abs(qty), abs(self.qty))
            realized = closed * (price - self.avg_price) * (1 if self.qty > 0 else -1)
        new_qty = self.qty + qty
        if new_qty == 0:
            self.avg_price = 0.0
        elif self.qty == 0 or (self.qty > 0) != (new_qty > 0):
            self.avg_price = price  # opened, or flipped through zero
        elif (self.qty > 0) == (qty > 0):  # added to the position
            self.avg_price = (self.avg_price * abs(self.qty) + price * abs(qty)) / abs(new_qty)
        self.qty = new_qty
        commission = abs(qty) * price * self.commission_rate
        self.cash -= qty * price + commission
        self.commissions += commission
        self.realized_pnl += realized - commission
        return Fill(order, ts, price, commission, realized)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Position (gross exposure) and drawdown limits; a warning level below each breach level.

    Drawdown is measured against the highest equity of the last ``window`` bars. A drawdown
    breach flattens the position and blocks new entries for ``window`` bars; an exposure
    breach cuts the position back to the strategy's target size.
    """

    target_exposure: float
    warn_exposure: float
    max_exposure: float
    warn_drawdown: float
    max_drawdown: float
    window: int = 24


@dataclass(frozen=True, slots=True)
class RiskEvent:
    kind: str  # "warning" or "breach"
    limit: str  # "exposure" or "drawdown"
    value: float
    threshold: float
    action: str  # what the bot did about it


class RiskMonitor:
    """Edge-triggered checks: one event when a level is crossed, re-armed below it."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self._recent: deque[float] = deque(maxlen=limits.window)
        self._armed = {("warning", "exposure"): True, ("breach", "exposure"): True,
                       ("warning", "drawdown"): True, ("breach", "drawdown"): True}
        self.blocked_until = -1  # bar index before which entries are blocked

    def check(self, index: int, equity: float, exposure: float) -> list[RiskEvent]:
        lim = self.limits
        self._recent.append(equity)
        drawdown = 1.0 - equity / max(self._recent)
        out: list[RiskEvent] = []
        for limit, value, warn, breach, action in (
            ("drawdown", drawdown, lim.warn_drawdown, lim.max_drawdown, "flatten"),
            ("exposure", exposure, lim.warn_exposure, lim.max_exposure, "reduce"),
        ):
            if value >= breach:
                if self._armed[("breach", limit)]:
                    out.append(RiskEvent("breach", limit, value, breach, action))
                self._armed[("breach", limit)] = False
                self._armed[("warning", limit)] = False
            elif value >= warn:
                if self._armed[("warning", limit)]:
                    out.append(RiskEvent("warning", limit, value, warn, "none"))
                self._armed[("warning", limit)] = False
                self._armed[("breach", limit)] = True
            else:
                self._armed[("warning", limit)] = True
                self._armed[("breach", limit)] = True
        if any(e.kind == "breach" and e.limit == "drawdown" for e in out):
            self.blocked_until = index + lim.window
            self._recent.clear()
            self._recent.append(equity)
        return out

    def entries_blocked(self, index: int) -> bool:
        return index < self.blocked_until
