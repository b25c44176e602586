"""Bar accounting: the per-bar state of one strategy, and the two paths that apply a bar.

No I/O, no SDK, no threads, no clock. A bar inside the open hour with every field of its
exact type (float, or int for the counts) takes the fast path in ``maybe_emit``: a few
stores. Anything else (other numeric types, None, a late bar, the bar that opens a new
hour, a refused value, a forked child) takes the general path, ``_bar``, which validates
field by field, drops or refuses what it must, asks the subclass to close buckets
(``_close``) and applies the bar the same way. Per bar only the open hour accumulates;
the day bucket and the totals take the hour's sums when it closes (``_fold_hour``).

Definitions (per strategy, bar time):

- ``peak``: running maximum of equity since the first bar (the first bar sets it, whatever
  its sign);
- ``drawdown = 1 - equity / peak`` when ``peak > 0``, else 0. It is not capped: 1 means
  equity 0, above 1 the account owes more than its peak (a blown margin account);
- ``max_drawdown``: running maximum of drawdown.
"""

from __future__ import annotations

import math
from typing import Any

from ensemble_otel.errors import BarError
from ensemble_otel.health import checks
from ensemble_otel.health.buckets import Bucket, closing, on_disk, starts, sums_stay_finite
from ensemble_otel.health.checks import TS_MAX, TS_MIN

_INF = math.inf
# _dd_floor = peak * (1 - max_drawdown + margin): an absolute margin of 1e-12 of the peak is
# far above the rounding of either side, so an equity at or above the floor can never give
# 1 - equity / peak > max_drawdown; below it the exact comparison decides
_DD_MARGIN = 1e-12
# the fast path leaves a bar to the general path (which checks exactly) when its hour's
# traded_notional would reach _n_cap = NOTIONAL_ROOM - the total of the closed hours, or its
# equity is below EQUITY_FLOOR: below both, every sum and turnover is finite by a wide margin
NOTIONAL_ROOM = 1e300
EQUITY_FLOOR = 1e-8


class Refused(list):  # type: ignore[type-arg]
    """What ``maybe_emit`` returns for a refused bar: an empty list (no record was written,
    so code that iterates the result or compares it with ``[]`` keeps working) that says
    why: ``error`` is the :class:`~ensemble_otel.BarError`, with ``field``, ``value`` and
    ``rule``. ``refused`` is True (accepted bars return a plain list)."""

    refused = True

    def __init__(self, error: BarError) -> None:
        super().__init__()
        self.error = error
        self.field = error.field
        self.value = error.value
        self.rule = error.rule

    def __repr__(self) -> str:
        return f"Refused({self.error})"


def turnover(notional: float, equity: float) -> float | None:
    """``traded_notional / |equity|``; None when equity is 0 (undefined)."""
    return None if equity == 0.0 else notional / abs(equity)


class Ledger:
    """Per-bar state of one strategy (see the module docstring for the definitions)."""

    # what a bar touches lives in slots (fast, and past ~30 attributes an instance dict
    # stops sharing its keys and every attribute access slows down); the rest in __dict__
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_dd_floor",
        "_h_bars",
        "_h_breaches",
        "_h_notional",
        "_h_warnings",
        "_hour_end",
        "_n_cap",
        "_writing",
        "equity",
        "last_ts",
        "max_drawdown",
        "peak",
        "positions",
        "realized",
        "unrealized",
    )

    def _init_ledger(self, *, strict: bool = False) -> None:
        self.strict = strict
        self._active = True  # False in a forked child
        self._copy_req = False  # another thread asked for a copy (see copies.py)
        self._rolling = False  # a bucket close is under way
        self._rolls = 0  # bucket closes so far in this process
        self.equity: float | None = None
        self.first_equity: float | None = None
        self.peak = 0.0
        self.max_drawdown = 0.0
        self._dd_floor = 0.0  # an equity at or above this cannot deepen max_drawdown
        self.realized: float | None = None
        self.unrealized: float | None = None
        self.positions: int | None = None
        self.last_ts = -_INF
        self._writing = -_INF
        self._h_bars = 0  # the open hour's accumulators (the only ones a bar touches)
        self._h_notional = 0.0
        self._h_breaches = 0
        self._h_warnings = 0
        self._c_bars = 0  # totals of the closed hours since the first bar
        self._c_notional = 0.0
        self._c_breaches = 0
        self._c_warnings = 0
        self.dropped = 0
        self.refused = 0
        self._hour = Bucket("1h", 3600)  # its sums are the _h_* fields while it is open
        self._day = Bucket("24h", 86400)  # its sums cover the day's closed hours
        # first unix second after the open hour (-inf: none, or it is on disk already) ...
        self._end = -_INF
        # ... and the fast path's copy of it (-inf when a bar must take the general path)
        self._hour_end = -_INF
        self._n_cap = NOTIONAL_ROOM

    def _arm(self) -> None:
        """After a restore: derived fields follow the loaded state."""
        self._hour_end = self._end
        self._reset_dd_floor()
        self._n_cap = NOTIONAL_ROOM - self._c_notional
        self._writing = self.last_ts

    # -- the bar path -------------------------------------------------------------------

    def maybe_emit(
        self,
        ts: Any,
        *,
        equity: Any,
        realized_pnl: Any = None,
        unrealized_pnl: Any = None,
        traded_notional: Any = 0.0,
        risk_breaches: Any = 0,
        risk_warnings: Any = 0,
        open_positions: Any = None,
    ) -> list[dict[str, Any]]:
        """Record one bar; return the records written when it closed buckets (usually []).

        ``ts`` is a datetime (naive = UTC) or unix seconds; ``equity`` any finite number
        (zero and negative included); ``traded_notional`` a finite number >= 0; the counts
        whole numbers >= 0. A bar whose time is not after the last bar's, or that falls in
        an hour or day already on disk, is dropped (counted, returns ``[]``).

        A bad value never raises by default: the bar is refused (nothing of it is recorded),
        counted (``ensemble.bars.refused``, ``bars_refused`` in the next records), logged at
        most once a minute, and the call returns a :class:`Refused` (an empty list with
        ``.error``). With ``strict`` settings it raises :class:`~ensemble_otel.BarError`.
        """
        # Fast path: exact types; finite (a sum of finite floats is finite unless it
        # overflows, which only sends the bar to the general path); in range; after the
        # last bar and inside the open hour (a valid bar's hour, so ts is within
        # TS_MIN..TS_MAX too). Keep the stores in step with _apply().
        if (type(ts) is float and type(equity) is float and type(realized_pnl) is float
                and type(unrealized_pnl) is float and type(traded_notional) is float
                and type(risk_breaches) is int and type(risk_warnings) is int
                and type(open_positions) is int):
            s = equity + realized_pnl + unrealized_pnl + traded_notional
            if (s - s == 0.0 and equity > 1e-8 and traded_notional >= 0.0  # EQUITY_FLOOR
                    # each count in 0..COUNT_MAX: OR of ints >= 0 bounds each, any < 0 is < 0
                    and 0 <= (risk_breaches | risk_warnings | open_positions) <= 0xFFFFFFFF
                    and self.last_ts < ts):
                if not (ts < self._hour_end
                        and (n := self._h_notional + traded_notional) < self._n_cap):
                    # every field is valid but ts (in range or not): the general path
                    # without the field-by-field check (a closing bar of a replay)
                    if TS_MIN <= ts < TS_MAX:
                        return self._checked(ts, equity, realized_pnl, unrealized_pnl,
                                             traded_notional, risk_breaches, risk_warnings,
                                             open_positions)
                    return self._bar(ts, equity, realized_pnl, unrealized_pnl,
                                     traded_notional, risk_breaches, risk_warnings,
                                     open_positions)
                self._writing = ts  # first store; last_ts is the last (see copies.py)
                if equity > self.peak:
                    self.peak = equity
                    self._dd_floor = equity * (1.0 - self.max_drawdown + _DD_MARGIN)
                elif equity < self._dd_floor:
                    self._deeper(equity)
                self.equity = equity
                self.realized = realized_pnl
                self.unrealized = unrealized_pnl
                self.positions = open_positions
                self._h_bars += 1
                self._h_notional = n
                self._h_breaches += risk_breaches
                self._h_warnings += risk_warnings
                self.last_ts = ts
                return []
        return self._bar(ts, equity, realized_pnl, unrealized_pnl, traded_notional,
                         risk_breaches, risk_warnings, open_positions)

    def _bar(self, *fields: Any) -> list[dict[str, Any]]:
        """The general path: validate field by field, drop late bars, roll, apply."""
        try:
            bar = checks.check_bar(*fields)
        except BarError as exc:
            return self._refuse(exc)
        except Exception as exc:
            return self._refuse(checks.bar_error(
                "bar", fields, f"could not be read ({type(exc).__name__})"))
        return self._checked(*bar)

    def _checked(self, *bar: Any) -> list[dict[str, Any]]:
        """The general path of a bar whose fields are valid: drop, roll, apply."""
        t, equity, notional = bar[0], bar[1], bar[4]
        if t <= self.last_ts or on_disk(self._hour, self._day, t):
            self.dropped += 1
            self._dropped(t)
            return []
        if not self._active:
            return []
        if not ((self._h_notional + notional < self._n_cap and equity > EQUITY_FLOOR)
                or self._sums_stay_finite(t, equity, notional)):
            return self._refuse(checks.bar_error(
                "traded_notional", notional,
                "must keep the running sums of traded_notional (the hour's, the day's, the "
                "total) and turnover (sum / |equity|) finite; it would overflow to infinity"))
        written: list[dict[str, Any]] = []
        if t >= self._end:
            written = self._close(t)
        self._apply(*bar)
        self._hour_end = self._end  # after a request for a copy (see copies.py)
        if self._copy_req:
            self._publish()
        self._accepted()
        return written

    def _refuse(self, error: BarError) -> Refused:
        """A bad bar: raise in strict mode, else count it and say so."""
        if self.strict:
            raise error
        self.refused += 1
        self._refused(error)
        return Refused(error)

    def _sums_stay_finite(self, t: float, equity: float, notional: float) -> bool:
        """Whether the sums after this bar (and their turnovers) stay finite."""
        return sums_stay_finite(self._hour, self._day, self._h_bars, self._h_notional,
                                self._c_notional, self._end, t, equity, notional)

    def _apply(self, t: float, equity: float, realized_pnl: float | None,
               unrealized_pnl: float | None, traded_notional: float, risk_breaches: int,
               risk_warnings: int, open_positions: int | None) -> None:
        """Apply a valid bar (the general path; the fast path in maybe_emit does the same)."""
        self._writing = t  # first store; last_ts is the last (see copies.py)
        if self._h_bars == 0:
            self._hour.first_ts = t
            if self._day.bars == 0:
                self._day.first_ts = t
        if self.first_equity is None:  # the first bar ever sets the peak, whatever its sign
            self.first_equity = self.peak = equity
            self._reset_dd_floor()
        elif equity > self.peak:
            self.peak = equity
            self._reset_dd_floor()
        elif equity < self._dd_floor:
            self._deeper(equity)
        self.equity = equity
        self.realized = realized_pnl
        self.unrealized = unrealized_pnl
        self.positions = open_positions
        self._h_bars += 1
        self._h_notional += traded_notional
        self._h_breaches += risk_breaches
        self._h_warnings += risk_warnings
        self.last_ts = t

    def _deeper(self, equity: float) -> None:
        """``equity`` is near or below the deepest drawdown so far: compare exactly."""
        dd = 1.0 - equity / self.peak  # _dd_floor is -inf unless peak > 0
        if dd > self.max_drawdown:
            self.max_drawdown = dd
            self._dd_floor = self.peak * (1.0 - dd + _DD_MARGIN)

    def _reset_dd_floor(self) -> None:
        peak = self.peak
        self._dd_floor = peak * (1.0 - self.max_drawdown + _DD_MARGIN) if peak > 0.0 else -_INF

    def _fold_hour(self) -> None:
        """The open hour closes: its sums go to its bucket, the day and the totals."""
        h, d = self._hour, self._day
        h.bars, h.notional = self._h_bars, self._h_notional
        h.breaches, h.warnings = self._h_breaches, self._h_warnings
        h.last_ts = d.last_ts = self.last_ts
        d.bars += self._h_bars
        d.notional += self._h_notional
        d.breaches += self._h_breaches
        d.warnings += self._h_warnings
        self._c_bars += self._h_bars
        self._c_notional += self._h_notional
        self._c_breaches += self._h_breaches
        self._c_warnings += self._h_warnings
        self._h_bars = self._h_breaches = self._h_warnings = 0
        self._h_notional = 0.0
        self._n_cap = NOTIONAL_ROOM - self._c_notional

    def _roll(self, hour_start: int, day_start: int) -> list[Bucket]:
        """Fold the open hour if it is not ``hour_start``'s; return the buckets a bar in
        that hour closes (still holding their sums: the caller records them, then calls
        ``_open``)."""
        if self._h_bars > 0 and self._hour.start != hour_start:
            self._fold_hour()
        return closing(self._hour, self._day, hour_start, day_start)

    def _open(self, hour_start: int, day_start: int) -> None:
        """Open the buckets starting there (those already open stay as they are)."""
        for b, start in ((self._hour, hour_start), (self._day, day_start)):
            if b.start != start:
                b.reset(start)
        self._end = float(hour_start + 3600)

    # -- read-only views ---------------------------------------------------------------------

    @property
    def drawdown(self) -> float:
        """``1 - equity / peak`` at the last bar (0 before the first, or while peak <= 0)."""
        equity, peak = self.equity, self.peak
        return 0.0 if equity is None or peak <= 0.0 else 1.0 - equity / peak

    @property
    def total_bars(self) -> int:
        return self._c_bars + self._h_bars

    @property
    def total_notional(self) -> float:
        return self._c_notional + self._h_notional

    @property
    def total_breaches(self) -> int:
        return self._c_breaches + self._h_breaches

    @property
    def total_warnings(self) -> int:
        return self._c_warnings + self._h_warnings

    # -- what the subclass does around the accounting -----------------------------------------

    def _close(self, t: float) -> list[dict[str, Any]]:
        """A bar at ``t`` opens a later hour: close what it closes (records), open its own."""
        hour_start, day_start = starts(t)
        self._roll(hour_start, day_start)
        self._open(hour_start, day_start)
        return []

    def _dropped(self, t: float) -> None:
        """A bar at ``t`` was dropped (not after the last bar, or already on disk)."""

    def _refused(self, error: BarError) -> None:
        """A bar was refused (counted already)."""

    def _accepted(self) -> None:
        """A bar was accepted on the general path."""

    def _publish(self) -> None:
        """Another thread asked for a copy of the state (see copies.py)."""
        self._copy_req = False
