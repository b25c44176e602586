"""The demo paper bot: bar loop, paper fills, risk limits, and its telemetry.

Telemetry goes through the public API only: ``health.maybe_emit`` once per bar and
``events.emit`` for orders, fills, risk warnings and breaches.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from ensemble_otel._time import iso_seconds
from ensemble_otel.demo.broker import Fill, PaperBroker, RiskEvent, RiskLimits, RiskMonitor
from ensemble_otel.demo.data import Bar
from ensemble_otel.demo.strategy import SmaCross


@dataclass(frozen=True, slots=True)
class Profile:
    """Per-data-set trading parameters."""

    symbol: str
    cash: float
    lot: float
    commission_rate: float
    allow_short: bool
    limits: RiskLimits


PROFILES: dict[str, Profile] = {
    "EURUSD": Profile(
        "EURUSD", 100_000.0, lot=1_000.0, commission_rate=0.00002, allow_short=True,
        limits=RiskLimits(target_exposure=5.0, warn_exposure=5.15, max_exposure=5.3,
                          warn_drawdown=0.015, max_drawdown=0.03, window=24)),
    "GOOG": Profile(
        "GOOG", 100_000.0, lot=1.0, commission_rate=0.0005, allow_short=False,
        limits=RiskLimits(target_exposure=1.0, warn_exposure=1.05, max_exposure=1.1,
                          warn_drawdown=0.06, max_drawdown=0.12, window=20)),
}


@dataclass
class RunResult:
    """What a run did; ``equity`` is the equity curve, one (bar ts, equity) per bar."""

    symbol: str
    bars: int = 0
    orders: int = 0
    fills: int = 0
    initial_equity: float = 0.0
    final_equity: float = 0.0
    max_drawdown: float = 0.0
    risk_warnings: int = 0
    risk_breaches: int = 0
    records: Counter[str] = field(default_factory=Counter)  # health records per period
    events: int = 0
    stopped_early: bool = False
    first_ts: float | None = None
    last_ts: float | None = None
    equity: list[tuple[float, float]] = field(default_factory=list)


def max_drawdown(values: list[float]) -> float:
    """backtesting.py's definition: the largest ``1 - equity / running peak``."""
    peak = -float("inf")
    worst = 0.0
    for v in values:
        peak = max(peak, v)
        worst = max(worst, 1.0 - v / peak)
    return worst


class PaperBot:
    """SMA crossover on one instrument with paper fills, instrumented through ``telemetry``."""

    def __init__(self, telemetry: Any, profile: Profile, *, fast: int = 10, slow: int = 30) -> None:
        self.telemetry = telemetry
        self.profile = profile
        self.strategy = SmaCross(fast, slow, allow_short=profile.allow_short)
        self.broker = PaperBroker(profile.cash, commission_rate=profile.commission_rate,
                                  lot=profile.lot)
        self.risk = RiskMonitor(profile.limits)
        self.result = RunResult(profile.symbol, initial_equity=profile.cash,
                                final_equity=profile.cash)
        self._peak = profile.cash

    def _emit(self, event: str, **fields: Any) -> None:
        self.telemetry.events.emit(event, **fields)
        self.result.events += 1

    def run(self, bars: list[Bar], *, speed: float | None = None,
            stop: threading.Event | None = None) -> RunResult:
        """Replay ``bars``; paced at ``speed`` bar-seconds per wall second when given.

        Gaps longer than the usual bar spacing (weekends, holidays) are paced as one bar.
        ``stop`` ends the run after the current bar (a signal handler sets it).
        """
        stop = stop or threading.Event()
        step = statistics.median(b.ts - a.ts for a, b in pairwise(bars)) if len(bars) > 1 else 0.0
        start = time.monotonic()
        budget = 0.0
        for i, bar in enumerate(bars):
            if stop.is_set():
                self.result.stopped_early = True
                break
            if speed is not None and i > 0:
                budget += min(bar.ts - bars[i - 1].ts, step) / speed
                delay = start + budget - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    self.result.stopped_early = True
                    break
            self.on_bar(i, bar)
        return self.result

    def on_bar(self, i: int, bar: Bar) -> None:
        r = self.result
        broker = self.broker
        limits = self.profile.limits
        bar_ts = iso_seconds(bar.ts)
        notional = 0.0
        for f in broker.fill_pending(bar.ts, bar.open):
            notional += f.notional
            self._on_fill(f, bar_ts)
        equity = broker.equity(bar.close)
        warnings = breaches = 0
        for e in self.risk.check(i, equity, broker.exposure(bar.close)):
            if e.kind == "warning":
                warnings += 1
            else:
                breaches += 1
            self._on_risk(e, bar, bar_ts)
        direction = self.strategy.update(bar.close)
        if direction != broker.direction_after_pending() and not self.risk.entries_blocked(i):
            size = direction * limits.target_exposure * equity / bar.close
            order = broker.target(size, "signal", bar.ts)
            if order is not None:
                self._on_order(order.id, order.side, order.qty, "signal", bar_ts)

        written = self.telemetry.health.maybe_emit(
            bar.ts, equity=equity, realized_pnl=broker.realized_pnl,
            unrealized_pnl=broker.unrealized_pnl(bar.close), traded_notional=notional,
            risk_breaches=breaches, risk_warnings=warnings,
            open_positions=1 if broker.qty else 0,
        )
        for rec in written:
            r.records[rec["period"]] += 1
        r.bars += 1
        r.risk_warnings += warnings
        r.risk_breaches += breaches
        r.final_equity = equity
        r.equity.append((bar.ts, equity))
        if r.first_ts is None:
            r.first_ts = bar.ts
        r.last_ts = bar.ts
        self._peak = max(self._peak, equity)
        r.max_drawdown = max(r.max_drawdown, 1.0 - equity / self._peak)

    def _on_order(self, order_id: int, side: str, qty: float, reason: str, bar_ts: str) -> None:
        self.result.orders += 1
        self._emit("order_submitted", order_id=order_id, symbol=self.profile.symbol, side=side,
                   qty=abs(qty), order_type="market", reason=reason, bar_ts=bar_ts)

    def _on_fill(self, f: Fill, bar_ts: str) -> None:
        self.result.fills += 1
        self._emit("order_filled", order_id=f.order.id, symbol=self.profile.symbol,
                   side=f.order.side, qty=abs(f.order.qty), price=f.price,
                   notional=round(f.notional, 2), commission=round(f.commission, 4),
                   realized_pnl=round(f.realized_pnl, 2), position=self.broker.qty,
                   bar_ts=bar_ts)

    def _on_risk(self, e: RiskEvent, bar: Bar, bar_ts: str) -> None:
        self._emit(f"risk_{e.kind}", limit=e.limit, value=round(e.value, 6),
                   threshold=e.threshold, action=e.action, bar_ts=bar_ts)
        if e.kind != "breach":
            return
        limits = self.profile.limits
        if e.limit == "drawdown":
            size = 0.0
        else:
            size = (limits.target_exposure * self.broker.equity(bar.close) / bar.close
                    * (1 if self.broker.qty > 0 else -1))
        order = self.broker.target(size, f"risk:{e.limit}", bar.ts)
        if order is not None:
            self._on_order(order.id, order.side, order.qty, f"risk:{e.limit}", bar_ts)
