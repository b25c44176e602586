"""Hourly and daily health snapshots in bar time (UTC), as metric views and JSONL records.

A bar updates plain in-memory state (no SDK call, no I/O). Observable instruments read
that state when a reader collects. When a bar opens a later hour (or day), the closing
bucket's record is built from a collection of those same instruments and appended to its
JSONL file, after the state that names it (written ahead: one line appended to the state
journal; beats and shutdown replace the state file), so a restart continues where the last
one stopped: peak equity and max drawdown are never reset, a bucket on disk is never
written twice.

Definitions (per strategy, in bar time):

- ``peak_equity``: running maximum of equity since the first bar;
- ``drawdown = 1 - equity / peak_equity``; ``max_drawdown``: its running maximum;
- a bucket's ``pnl``: equity at its last bar minus equity at the previous bucket's last
  bar (for the first bucket, minus the first equity seen);
- ``turnover = traded_notional / equity`` at the bucket's last bar, with ``traded_notional``
  the sum of the increments in the bucket; ``risk_breaches``, ``risk_warnings``: sums;
  ``bars``: bars in the bucket; levels are the values at the bucket's last bar.

The bar path is the hot path (see bench/per_bar.py): a bar inside the open hour with every
field of its exact type (float, or int for the counts) takes a fast path of a few stores;
anything else (other numeric types, None, a late bar, the bar that opens a new hour, a
forked child) takes the general path, which validates field by field, rolls the buckets
and applies the bar the same way. Per bar only the open hour accumulates; the day bucket
and the totals take the hour's sums when it closes (observers read closed + open). The bar
path takes no lock; other threads read whole copies of the state (see state()).
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import operator
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from threading import get_ident
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ensemble_otel.contract import registry as names
from ensemble_otel.errors import BarError
from ensemble_otel.jsonl import JsonJournal, JsonlAppender, dumps_line, last_line
from ensemble_otel.settings import Settings

_log = logging.getLogger("ensemble_otel")
_INF = math.inf
_UTC = timezone.utc
PERIODS: tuple[tuple[str, int], ...] = (("1h", 3600), ("24h", 86400))
# _dd_floor = peak * (1 - max_drawdown + margin): an absolute margin of 1e-12 of the peak is
# far above the rounding of either side, so an equity at or above the floor can never give
# 1 - equity / peak > max_drawdown; below it the exact comparison decides
_DD_MARGIN = 1e-12
STATE_VERSION = 2  # 2: the day bucket and the totals exclude the open hour


def iso(unix: float) -> str:
    """Bar time as ISO-8601 UTC: whole seconds when whole, microseconds otherwise."""
    dt = datetime.fromtimestamp(unix, tz=_UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# Bar times: 1970-01-01T00:00:00Z <= ts < 10000-01-01T00:00:00Z (bucket starts are then never
# negative: -1 means "none yet"). A time outside (typically milliseconds passed as seconds)
# would be taken as the last bar and make every later bar look out of order, so it is refused.
TS_MIN = 0.0
TS_MAX = 253402300800.0


def to_unix(ts: object) -> float:
    """Bar time as unix seconds: aware datetime, naive datetime (UTC) or a number."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=_UTC)
        value = ts.timestamp()
    elif isinstance(ts, numbers.Real) and not isinstance(ts, bool):
        try:
            value = float(ts)
        except OverflowError:  # an int too large for a float: refused as out of range below
            value = TS_MAX
        if not math.isfinite(value):
            raise BarError("ts", ts, "must be a finite unix time")
    else:
        raise BarError("ts", ts, "must be a datetime (naive = UTC) or unix seconds")
    if not TS_MIN <= value < TS_MAX:
        raise BarError("ts", ts, "must be unix seconds between 1970-01-01 and 9999-12-31 "
                       "(is it in milliseconds?)")
    return value


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        raise BarError(field, value, "must be a number")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise BarError(field, value, "must be a number") from None
    if not math.isfinite(out):
        raise BarError(field, value, "must be finite (not NaN or infinity)")
    return out


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        raise BarError(field, value, "must be a whole number >= 0")
    out = int(value.__index__())  # type: ignore[union-attr]
    if out < 0:
        raise BarError(field, value, "must be a whole number >= 0")
    return out


class _Bucket:
    """Accumulators of one open bucket of one period."""

    __slots__ = (
        "bars",
        "breaches",
        "first_ts",
        "last_pnl",
        "last_start",
        "last_ts",
        "last_turnover",
        "last_written",
        "notional",
        "period",
        "prev_close",
        "seconds",
        "start",
        "warnings",
    )

    def __init__(self, period: str, seconds: int) -> None:
        self.period = period
        self.seconds = seconds
        self.start = -1  # bucket start (unix seconds), -1 before the first bar
        self.bars = 0
        self.notional = 0.0
        self.breaches = 0
        self.warnings = 0
        self.first_ts = 0.0
        self.last_ts = 0.0
        self.prev_close: float | None = None  # equity at the previous bucket's last bar
        self.last_written = -1  # start of the newest bucket known to be on disk
        self.last_pnl: float | None = None
        self.last_turnover: float | None = None
        self.last_start: int | None = None

    def reset(self, start: int) -> None:
        self.start = start
        self.bars = 0
        self.notional = 0.0
        self.breaches = 0
        self.warnings = 0

    def to_state(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k not in ("period", "seconds")}

    def load(self, data: dict[str, Any]) -> None:
        for key in self.__slots__:
            if key in data and key not in ("period", "seconds"):
                setattr(self, key, data[key])


_BUCKET_STATE = tuple(k for k in _Bucket.__slots__ if k not in ("period", "seconds"))
# What a copy of the state holds, taken in one C call (operator.attrgetter over slots and
# plain attributes: no Python code runs in it, so no other Python thread runs in between).
# The first five are the copy's key: a bar stores _writing first and last_ts last, a bucket
# close sets _rolling while it runs and counts itself in _rolls, a dropped bar counts in
# dropped; so a copy is whole (holds whole bars) when _writing == last_ts and not _rolling,
# and two whole copies with equal keys are equal.
_STATE_ATTRS = (
    "_writing", "last_ts", "_rolling", "_rolls", "dropped",
    "equity", "first_equity", "peak", "max_drawdown", "realized", "unrealized", "positions",
    "_c_bars", "_c_notional", "_c_breaches", "_c_warnings",
    "_h_bars", "_h_notional", "_h_breaches", "_h_warnings", "_unwritten",
    *("_hour." + k for k in _BUCKET_STATE), *("_day." + k for k in _BUCKET_STATE),
)
_STATE_GET = operator.attrgetter(*_STATE_ATTRS)
_KEY = 5  # the key is values[:_KEY]
_KEY_GET = operator.attrgetter(*_STATE_ATTRS[:_KEY])
_AT = {name: i for i, name in enumerate(_STATE_ATTRS)}
_UNWRITTEN = _AT["_unwritten"]
COPY_TRIES = 3  # lock-free copies state() tries before it asks the bar thread for one
COPY_TIMEOUT = 1.0  # seconds state() waits for the bar thread's copy (then: the newest known)
# the fast path leaves a bar to the general path (which checks exactly) when its hour's
# traded_notional would reach _n_cap = NOTIONAL_ROOM - the total of the closed hours, or its
# equity is below EQUITY_FLOOR: below both, every sum and turnover is finite by a wide margin
NOTIONAL_ROOM = 1e300
EQUITY_FLOOR = 1e-8


def _whole(values: tuple[Any, ...]) -> bool:
    return bool(values[0] == values[1] and not values[2])


def _order(values: tuple[Any, ...]) -> tuple[float, int, int, bool]:
    """Whole copies in the order they were taken (later bars, closes, drops, appends)."""
    return (values[1], values[3], values[4], not values[_UNWRITTEN])


class HealthSnapshotEmitter:
    """Per-bar state of one strategy; writes one record per hour and per day of bar time.

    Obtain it from ``ensemble_otel.configure().health``. Call ``maybe_emit`` on every bar.
    """

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

    def __new__(cls, settings: Settings | None = None, **kwargs: Any) -> Any:
        # ``HealthSnapshotEmitter()`` (or with configure() keywords, e.g. strategy_id=...):
        # the emitter of this process's telemetry, configured on first use, so PAPER_TRADING_ROOT
        # and the strategy settings resolve exactly as configure() resolves them.
        if settings is None:
            import ensemble_otel

            return ensemble_otel.configure(**kwargs).health
        return super().__new__(cls)

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        meter: Meter | None = None,
        snapshot_reader: InMemoryMetricReader | None = None,
        appender: JsonlAppender | None = None,
        on_first_bar: Callable[[], None] | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:  # returned ready-made by __new__: nothing to build again
            return
        # called once, on the bar thread, by the first valid bar (cheap: no I/O, no lock)
        self._on_first_bar = on_first_bar
        assert meter is not None and snapshot_reader is not None and appender is not None
        self.settings = settings
        self._reader = snapshot_reader
        self._appender = appender
        self._root = settings.root
        sid = settings.strategy_id
        self._dirs = {
            "1h": settings.root / "logs" / "1h" / "health_snapshot" / sid,
            "24h": settings.root / "logs" / "24h" / "health_snapshot" / sid,
        }
        self.state_path: Path = settings.state_dir / "health" / f"{sid}.json"
        self._journal = JsonJournal(self.state_path)
        self._active = True  # False in a forked child
        self._rolling = False  # a bucket close is under way (see state())
        self._rolls = 0  # bucket closes so far in this process (part of a copy's key)
        self._unwritten: tuple[tuple[str, str, str], ...] = ()  # closed, not yet appended
        self._save_lock = threading.Lock()  # the beat and a bucket close both save state
        self._saved_ts: float | None = -_INF  # last_ts when the state file was last written
        self._seq = 0  # saves so far (across restarts): the newest of file and journal wins
        # copies of the state for other threads (see state()): the bar thread publishes one
        # at the end of a bar when _copy_req is set
        self._copy_req = False
        self._copy_cv = threading.Condition(threading.Lock())
        self._copy_seq = 0
        self._published: tuple[Any, ...] = ()
        self._bar_ident = get_ident()  # the bar thread: the last to close a bucket
        self._roll_view: tuple[Any, ...] = ()  # what the bar thread's own collection reads
        self._cache_lock = threading.Lock()
        self._copy_warned_at = -_INF
        # levels at the last bar
        self.equity: float | None = None
        self.first_equity: float | None = None
        self.peak = 0.0
        self.max_drawdown = 0.0
        # an equity at or above this cannot deepen max_drawdown (saves a division per bar)
        self._dd_floor = 0.0
        self.realized: float | None = None
        self.unrealized: float | None = None
        self.positions: int | None = None
        self.last_ts = -_INF
        # the open hour's accumulators (the only ones a bar touches)
        self._h_bars = 0
        self._h_notional = 0.0
        self._h_breaches = 0
        self._h_warnings = 0
        # totals of the closed hours since the first bar (observable counters add the open hour)
        self._c_bars = 0
        self._c_notional = 0.0
        self._c_breaches = 0
        self._c_warnings = 0
        self.dropped = 0
        self._drop_warned_at = -_INF
        self._hour = _Bucket("1h", 3600)  # its sums are the _h_* fields while it is open
        self._day = _Bucket("24h", 86400)  # its sums cover the day's closed hours
        # first unix second after the open hour (-inf: none, or it is on disk already) ...
        self._end = -_INF
        # ... and the fast path's copy of it (-inf when a bar must take the general path)
        self._hour_end = -_INF
        self._restore()
        # the first bar takes the general path (which calls _on_first_bar)
        self._hour_end = self._end if on_first_bar is None else -_INF
        self._reset_dd_floor()
        self._n_cap = NOTIONAL_ROOM - self._c_notional
        self._saved_ts = self._writing = self.last_ts
        first = _STATE_GET(self)  # no bar yet: whole
        self._cache: tuple[tuple[Any, ...], tuple[Any, ...]] = (first[:_KEY], first)
        self._cache_order = _order(first)
        self._observe(meter)

    # -- the bar path -------------------------------------------------------------------

    def maybe_emit(
        self,
        ts: datetime | float,
        *,
        equity: float,
        realized_pnl: float | None = None,
        unrealized_pnl: float | None = None,
        traded_notional: float = 0.0,
        risk_breaches: int = 0,
        risk_warnings: int = 0,
        open_positions: int | None = None,
    ) -> list[dict[str, Any]]:
        """Record one bar; return the records written when it closed buckets (usually []).

        Raises :class:`~ensemble_otel.BarError` naming the field when a value is not valid;
        nothing is recorded then.
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
                    and risk_breaches >= 0 and risk_warnings >= 0 and open_positions >= 0
                    and self.last_ts < ts < self._hour_end
                    and (n := self._h_notional + traded_notional) < self._n_cap):
                self._writing = ts  # first store; last_ts is the last (see state())
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

    def _bar(
        self,
        ts: Any,
        equity: Any,
        realized_pnl: Any,
        unrealized_pnl: Any,
        traded_notional: Any,
        risk_breaches: Any,
        risk_warnings: Any,
        open_positions: Any,
    ) -> list[dict[str, Any]]:
        """The general path: validate field by field, drop late bars, roll, apply."""
        t = ts if type(ts) is float and TS_MIN <= ts < TS_MAX else to_unix(ts)
        if type(equity) is not float:
            equity = _number(equity, "equity")
        if not 0.0 < equity < _INF:
            raise BarError("equity", equity, "must be a finite number > 0")
        if realized_pnl is not None and (type(realized_pnl) is not float or
                                         not -_INF < realized_pnl < _INF):
            realized_pnl = _number(realized_pnl, "realized_pnl")
        if unrealized_pnl is not None and (type(unrealized_pnl) is not float or
                                           not -_INF < unrealized_pnl < _INF):
            unrealized_pnl = _number(unrealized_pnl, "unrealized_pnl")
        if type(traded_notional) is not float:
            traded_notional = _number(traded_notional, "traded_notional")
        if not 0.0 <= traded_notional < _INF:
            raise BarError("traded_notional", traded_notional, "must be a finite number >= 0")
        if type(risk_breaches) is not int or risk_breaches < 0:
            risk_breaches = _count(risk_breaches, "risk_breaches")
        if type(risk_warnings) is not int or risk_warnings < 0:
            risk_warnings = _count(risk_warnings, "risk_warnings")
        if open_positions is not None and (type(open_positions) is not int or open_positions < 0):
            open_positions = _count(open_positions, "open_positions")
        if self._on_first_bar is not None:
            first, self._on_first_bar = self._on_first_bar, None
            first()
        if t <= self.last_ts or self._on_disk(t):
            self._drop(t)
            return []
        if not self._active:
            return []
        if not ((self._h_notional + traded_notional < self._n_cap and equity > EQUITY_FLOOR)
                or self._sums_stay_finite(t, equity, traded_notional)):
            raise BarError("traded_notional", traded_notional,
                           "must keep the running sums of traded_notional (the hour's, the "
                           "day's, the total) and turnover (sum / equity) finite; it would "
                           "overflow to infinity")
        written: list[dict[str, Any]] = []
        if t >= self._end:
            written = self._roll(t)
        self._apply(t, equity, realized_pnl, unrealized_pnl, traded_notional,
                    risk_breaches, risk_warnings, open_positions)
        self._hour_end = self._end  # after a request for a copy (see _ask_for_copy)
        if self._copy_req:
            self._publish()
        return written

    def _sums_stay_finite(self, t: float, equity: float, notional: float) -> bool:
        """Whether the sums after this bar (and their turnovers, were it a bucket's last
        bar) are finite; computed as the bucket close and the bar will compute them."""
        hour, day = self._hour, self._day
        h, c, d = self._h_notional, self._c_notional, day.notional
        if t >= self._end:  # the bar closes the open hour (and maybe the day) first
            hour_start = int(t // 3600) * 3600
            if self._h_bars > 0 and hour.start != hour_start:
                c += h
                d += h
            if hour.start != hour_start:
                h = 0.0
            if day.start != int(t // 86400) * 86400:
                d = 0.0
        h += notional
        day_sum = d + h
        for value in (h, c + h, day_sum, h / equity, day_sum / equity):
            if value - value != 0.0:
                return False
        return True

    def _apply(
        self,
        t: float,
        equity: float,
        realized_pnl: float | None,
        unrealized_pnl: float | None,
        traded_notional: float,
        risk_breaches: int,
        risk_warnings: int,
        open_positions: int | None,
    ) -> None:
        """Apply a valid bar (the general path; the fast path in maybe_emit does the same)."""
        self._writing = t  # first store; last_ts is the last (see state())
        if self._h_bars == 0:
            self._hour.first_ts = t
            if self._day.bars == 0:
                self._day.first_ts = t
        if self.first_equity is None:
            self.first_equity = equity
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
        self._h_notional += traded_notional
        self._h_breaches += risk_breaches
        self._h_warnings += risk_warnings
        self.last_ts = t

    def _deeper(self, equity: float) -> None:
        """``equity`` is near or below the deepest drawdown so far: compare exactly."""
        dd = 1.0 - equity / self.peak
        if dd > self.max_drawdown:
            self.max_drawdown = dd
            self._dd_floor = self.peak * (1.0 - dd + _DD_MARGIN)

    def _reset_dd_floor(self) -> None:
        self._dd_floor = self.peak * (1.0 - self.max_drawdown + _DD_MARGIN)

    # -- properties the rest of the package reads -------------------------------------------

    @property
    def drawdown(self) -> float:
        """``1 - equity / peak`` at the last bar (0 before the first)."""
        equity, peak = self.equity, self.peak
        return 0.0 if equity is None or peak <= 0.0 else 1.0 - equity / peak

    @property
    def active(self) -> bool:
        """False in a forked child: bars are validated, then ignored."""
        return self._active

    @active.setter
    def active(self, value: bool) -> None:
        self._active = value
        if not value:  # every bar takes the general path, which checks this
            self._end = self._hour_end = -_INF

    @property
    def dirty(self) -> bool:
        """True when bars arrived since the state file was last written."""
        return self._saved_ts != self.last_ts

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self._saved_ts = None if value else self.last_ts

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

    def _on_disk(self, t: float) -> bool:
        """True when ``t`` falls in an hour or a day whose record is already on disk (a bar
        the bot replays after a restart that lost the state; it would never be recorded)."""
        h, d = self._hour.last_written, self._day.last_written
        return (h >= 0 and t < h + 3600) or (d >= 0 and t < d + 86400)

    def _drop(self, t: float) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._drop_warned_at >= 60.0:
            self._drop_warned_at = now
            _log.warning(
                "ensemble-otel health: bar ts=%s is not after the last bar (%s); dropped "
                "(%d dropped so far, this warning repeats at most once a minute)",
                iso(t), iso(self.last_ts), self.dropped,
            )

    # -- bucket close (the slow path) ---------------------------------------------------

    def _roll(self, t: float) -> list[dict[str, Any]]:
        """A bar at ``t`` opened a later hour: close what it closes, open its buckets."""
        hour_start = int(t // 3600) * 3600
        day_start = int(t // 86400) * 86400
        self._bar_ident = get_ident()
        # the state before the close, whole (no bar is under way): what other threads read
        # while the close runs, which in an hourly replay is most of the bar thread's time
        self._remember(_STATE_GET(self))
        # a copy taken between the fold and the record's append (or its prev_close) would
        # lose the record or mix two hours: _rolling marks it as not whole (see state())
        self._rolling = True
        try:
            if self._h_bars > 0 and self._hour.start != hour_start:
                self._fold_hour()
            closing = [b for b, start in ((self._hour, hour_start), (self._day, day_start))
                       if b.bars > 0 and b.start != start]
            written: list[dict[str, Any]] = []
            lines: list[tuple[str, str, str]] = []  # (period, file name, line) to append
            if closing:
                levels = self._collect_levels()
                for b in closing:
                    record = self._record(b, levels)
                    if b.start > b.last_written:
                        lines.append((b.period, self._file_for(b.period, b.start).name,
                                      dumps_line(record).decode()))
                        b.last_written = b.start
                        written.append(record)
                    else:
                        _log.info("ensemble-otel health: %s bucket %s already on disk; not written "
                                  "again", b.period, record["ts"])
                    b.prev_close = record["equity"]
                    b.last_pnl = record["pnl"]
                    b.last_turnover = record["turnover"]
                    b.last_start = b.start
            for b, start in ((self._hour, hour_start), (self._day, day_start)):
                if b.start != start:
                    b.reset(start)
            self._end = float(hour_start + 3600)
            self._unwritten = tuple(lines)  # before _rolling clears: a copy must carry them
        finally:
            self._rolls += 1
            self._rolling = False
        if self._copy_req:  # now: the save below may wait for the beat's save, which waits
            self._publish()  # for this copy
        if closing:
            # write-ahead: the state names the records before they are appended, so a crash
            # in between leaves a state that is never behind the files (restore appends any
            # that did not make it), and the bucket continues exactly on restart
            self.save_state(fsync=False, journal=True)
            for period, name, line in lines:
                self._appender.append(self._dirs[period] / name, line.encode())
            self._unwritten = ()
        return written

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

    def _file_for(self, period: str, start: float) -> Path:
        day = datetime.fromtimestamp(start, tz=_UTC)
        return self._dirs[period] / day.strftime("%Y-%m-%d.jsonl" if period == "1h" else
                                                 "%Y-%m.jsonl")

    def _collect_levels(self) -> dict[str, float]:
        """Collect the instruments (same names, units and values as OTLP gets).

        Runs on the bar thread in a bucket close: the callbacks of this collection read
        the state as it is now (whole: no bar is under way on this thread).
        """
        self._roll_view = _STATE_GET(self)
        data = self._reader.get_metrics_data()
        out: dict[str, float] = {}
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        if not point.attributes:
                            out[metric.name] = point.value
        return out

    def _record(self, b: _Bucket, levels: dict[str, float]) -> dict[str, Any]:
        s = self.settings
        equity = float(levels[names.EQUITY])
        prev = b.prev_close if b.prev_close is not None else self.first_equity
        assert prev is not None
        positions = levels.get(names.POSITIONS_OPEN)
        return {
            "ts": iso(b.start),
            "period": b.period,
            "strategy_id": s.strategy_id,
            "schema_version": s.schema_version,
            "equity": equity,
            "peak_equity": float(levels[names.EQUITY_PEAK]),
            "drawdown": float(levels[names.DRAWDOWN]),
            "max_drawdown": float(levels[names.DRAWDOWN_MAX]),
            "pnl": equity - prev,
            "turnover": b.notional / equity,
            "traded_notional": b.notional,
            "realized_pnl": levels.get(names.PNL_REALIZED),
            "unrealized_pnl": levels.get(names.PNL_UNREALIZED),
            "open_positions": None if positions is None else int(positions),
            "risk_breaches": b.breaches,
            "risk_warnings": b.warnings,
            "bars": b.bars,
            "first_bar_ts": iso(b.first_ts),
            "last_bar_ts": iso(b.last_ts),
        }

    # -- instruments ---------------------------------------------------------------------

    def _observe(self, meter: Meter) -> None:
        """Observable instruments; their callbacks run on the collecting reader's thread and
        read whole copies of the state (see :meth:`_view`), never half of a bar.

        A collection runs the callbacks one after the other, in the order they were made,
        on one thread (the SDK holds its collection lock throughout): the first takes a
        copy and the others read that same copy, so one collection is one snapshot. Called
        in any other order, each callback takes its own whole copy.
        """
        at = _AT
        eq, pk = at["equity"], at["peak"]
        snapshot: list[Any] = [(), -1, 0]  # the copy, the index of the next callback, thread
        count = [0]

        def ordered_view() -> Any:
            index = count[0]
            count[0] += 1

            def view() -> tuple[Any, ...]:
                ident = get_ident()
                if index == 0:
                    copy = self._view()
                    snapshot[:] = [copy, 1, ident]
                    return copy
                if snapshot[1] == index and snapshot[2] == ident:
                    snapshot[1] = index + 1
                    return snapshot[0]  # type: ignore[no-any-return]
                snapshot[1] = -1
                return self._view()

            return view

        def gauge(name: str, read: Any) -> None:
            spec = names.METRICS_BY_NAME[name]
            create = (meter.create_observable_counter if spec.instrument == "observable_counter"
                      else meter.create_observable_gauge)
            view = ordered_view()

            def callback(options: CallbackOptions) -> Iterable[Observation]:
                v = view()
                if v[eq] is None:  # before the first bar
                    return ()
                value = read(v)
                return () if value is None else (Observation(value),)

            create(name, callbacks=[callback], unit=spec.unit, description=spec.description)

        def field(key: str) -> Any:
            return operator.itemgetter(at[key])

        def total(closed: str, open_hour: str) -> Any:
            i, j = at[closed], at[open_hour]
            return lambda v: v[i] + v[j]

        def drawdown(v: tuple[Any, ...]) -> float:
            equity, peak = v[eq], v[pk]
            return 0.0 if peak <= 0.0 else 1.0 - equity / peak

        gauge(names.EQUITY, field("equity"))
        gauge(names.EQUITY_PEAK, field("peak"))
        gauge(names.DRAWDOWN, drawdown)  # computed from equity and peak
        gauge(names.DRAWDOWN_MAX, field("max_drawdown"))
        gauge(names.PNL_REALIZED, field("realized"))
        gauge(names.PNL_UNREALIZED, field("unrealized"))
        gauge(names.POSITIONS_OPEN, field("positions"))
        gauge(names.BAR_TIMESTAMP, field("last_ts"))
        gauge(names.BARS, total("_c_bars", "_h_bars"))
        gauge(names.BARS_DROPPED, field("dropped"))
        gauge(names.TRADED_NOTIONAL, total("_c_notional", "_h_notional"))
        gauge(names.RISK_BREACHES, total("_c_breaches", "_h_breaches"))
        gauge(names.RISK_WARNINGS, total("_c_warnings", "_h_warnings"))

        def per_period(name: str, attr: str) -> None:
            spec = names.METRICS_BY_NAME[name]
            points = [(at[f"_hour.{attr}"], {names.PERIOD_ATTRIBUTE: "1h"}),
                      (at[f"_day.{attr}"], {names.PERIOD_ATTRIBUTE: "24h"})]
            view = ordered_view()

            def callback(options: CallbackOptions) -> Iterable[Observation]:
                v = view()
                return [Observation(v[i], attributes) for i, attributes in points
                        if v[i] is not None]

            meter.create_observable_gauge(name, callbacks=[callback], unit=spec.unit,
                                          description=spec.description)

        per_period(names.BUCKET_PNL, "last_pnl")
        per_period(names.BUCKET_TURNOVER, "last_turnover")
        per_period(names.BUCKET_START, "last_start")

    # -- consistent copies of the state, for other threads ------------------------------------
    #
    # The bar path takes no lock. Other threads (the beat saving the state, readers running
    # the callbacks) take copies in one C call (_STATE_GET) and use one when it is whole. A
    # copy is not whole only while a bar (or a bucket close) is under way on the bar thread;
    # then state() asks the bar thread for a copy (_ask_for_copy) and waits for it
    # (COPY_TIMEOUT at most). The ask costs the fast path nothing: it sets _copy_req and
    # _hour_end = -inf, so the next bar takes the general path, which restores _hour_end
    # and, seeing _copy_req, publishes a copy (a tuple, no I/O) at its end; a bucket close
    # publishes one as soon as it is done. A callback never waits (it may run while the bar
    # thread waits for the collection lock it holds): it takes the newest whole copy known
    # and asks for a fresh one for next time.

    def _copy(self) -> tuple[Any, ...] | None:
        """A whole lock-free copy, or None after COPY_TRIES copies taken mid-bar."""
        for _ in range(COPY_TRIES):
            values = _STATE_GET(self)
            if values[0] == values[1] and not values[2]:
                return values
        return None

    def _remember(self, values: tuple[Any, ...]) -> None:
        """Keep a whole copy as the newest known, unless a newer one is kept already."""
        order = _order(values)
        with self._cache_lock:
            if order >= self._cache_order:
                self._cache = (values[:_KEY], values)
                self._cache_order = order

    def _publish(self) -> None:
        """On the bar thread, between bars: answer a request for a copy."""
        values = _STATE_GET(self)  # whole: this thread is the only one that changes it
        self._remember(values)
        with self._copy_cv:
            self._copy_req = False
            self._published = values
            self._copy_seq += 1
            self._copy_cv.notify_all()

    def _view(self) -> tuple[Any, ...]:
        """The copy an observable callback reads. Never waits."""
        if self._rolling and get_ident() == self._bar_ident:
            return self._roll_view  # the bar thread's own collection in a bucket close
        key, values = self._cache
        if _KEY_GET(self) == key:  # nothing changed since that copy
            return values
        copy = self._copy()
        if copy is not None:
            self._remember(copy)
            return copy
        self._ask_for_copy()  # the bar thread refreshes the newest known copy
        return self._cache[1]

    def _ask_for_copy(self) -> None:
        # _copy_req first: the general path restores _hour_end before it reads _copy_req, so
        # a request is either seen by the bar under way or sends the next bar there
        self._copy_req = True
        self._hour_end = -_INF

    def _whole_copy(self, timeout: float) -> tuple[Any, ...]:
        values = self._copy()
        if values is not None:
            self._remember(values)
            return values
        if get_ident() == self._bar_ident:
            # inside a bar on its own thread (a signal handler): that bar cannot finish first
            return self._cache[1]
        cv = self._copy_cv
        with cv:
            seq = self._copy_seq
            self._ask_for_copy()
        deadline = time.monotonic() + timeout
        while True:
            # asked before this copy: if it finds a bar under way, that bar or the next one
            # publishes (and when none follows, a later copy here is whole)
            values = self._copy()
            if values is not None:
                self._remember(values)
                return values
            with cv:
                if self._copy_seq == seq:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0.0:
                        break
                    cv.wait(min(remaining, 0.05))
                if self._copy_seq != seq:
                    return self._published
        now = time.monotonic()
        if now - self._copy_warned_at >= 60.0:
            self._copy_warned_at = now
            _log.warning("ensemble-otel health: a bar has been under way for over %g s; using "
                         "the newest whole copy of the state (repeats at most once a minute)",
                         timeout)
        return self._cache[1]

    def state(self, timeout: float = COPY_TIMEOUT) -> dict[str, Any]:
        """A consistent snapshot of the state (whole bars only), from any thread.

        Deterministic: a whole lock-free copy when no bar is under way; else the copy the
        bar thread publishes at the end of the bar under way; if that takes over
        ``timeout`` seconds, the newest whole copy known (never older than one returned
        before).
        """
        return self._state_from(dict(zip(_STATE_ATTRS, self._whole_copy(timeout), strict=True)))

    def _state_from(self, v: dict[str, Any]) -> dict[str, Any]:
        hour = {k: v["_hour." + k] for k in _BUCKET_STATE}
        hour.update(bars=v["_h_bars"], notional=v["_h_notional"], breaches=v["_h_breaches"],
                    warnings=v["_h_warnings"])
        if v["_h_bars"]:
            hour["last_ts"] = v["last_ts"]
        equity, peak = v["equity"], v["peak"]
        return {
            "version": STATE_VERSION,
            "strategy_id": self.settings.strategy_id,
            "equity": equity,
            "first_equity": v["first_equity"],
            "peak": peak,
            "drawdown": 0.0 if equity is None or peak <= 0.0 else 1.0 - equity / peak,
            "max_drawdown": v["max_drawdown"],
            "realized": v["realized"],
            "unrealized": v["unrealized"],
            "positions": v["positions"],
            "last_ts": None if v["last_ts"] == -_INF else v["last_ts"],
            # totals and the day bucket: closed hours only; the open hour is "1h"
            "total_bars": v["_c_bars"],
            "total_notional": v["_c_notional"],
            "total_breaches": v["_c_breaches"],
            "total_warnings": v["_c_warnings"],
            "dropped": v["dropped"],
            "buckets": {"1h": hour, "24h": {k: v["_day." + k] for k in _BUCKET_STATE}},
            "unwritten": [list(item) for item in v["_unwritten"]],
        }

    def save_state(self, *, fsync: bool = True, journal: bool = False) -> bool:
        """Save the state. Fails soft (returns False, logs).

        By default (beats, shutdown) the state file is replaced atomically (temp file,
        fsync unless ``fsync=False``, rename) and the journal emptied; with ``journal=True``
        (a bucket close, written ahead of its records) one line is appended to the journal
        ``<state file>.wal`` instead: one write, no rename, no fsync.
        """
        if not self._active or self.equity is None:
            return False
        try:
            with self._save_lock:  # copies reach the file in the order they were taken
                state = self.state()
                self._seq += 1
                state["seq"] = self._seq
                if journal:
                    self._journal.append(state)
                else:
                    self._journal.replace(state, fsync=fsync)
        except OSError as exc:
            now = time.monotonic()
            if now - getattr(self, "_state_error_at", -_INF) >= 60.0:
                self._state_error_at = now
                _log.error("ensemble-otel health: cannot write state %s: %s (the bot keeps "
                           "running; retried at every beat, reported at most once a minute)",
                           self.state_path, exc)
            return False
        self._saved_ts = -_INF if state["last_ts"] is None else state["last_ts"]
        return True

    def _saved_states(self) -> list[tuple[Path, dict[str, Any]]]:
        """The valid saved states: the state file's and the journal's newest whole line.

        One that cannot be read or checked is moved aside to ``<name>.corrupt`` (one error).
        """
        found: list[tuple[Path, dict[str, Any]]] = []
        journal = self._journal
        for path in (self.state_path, journal.journal_path):
            try:
                if path == self.state_path:
                    if not path.exists():
                        continue
                    data = path.read_bytes()
                else:
                    line = journal.newest_entry()
                    if line is None:
                        continue
                    data = line
                state = read_json_line(data)
                if not isinstance(state, dict) or state.get("version") not in (1, STATE_VERSION):
                    raise ValueError("unknown state version")
                if state.get("strategy_id") != self.settings.strategy_id:
                    raise ValueError("state belongs to another strategy")
                seq = state.get("seq", 0)
                if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                    raise ValueError(f"state[{'seq'!r}] = {seq!r} is not a whole number >= 0")
                _check_state(state)
                found.append((path, state))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                self._set_aside(path, exc)
        return found

    def _set_aside(self, path: Path, exc: BaseException) -> None:
        aside = path.with_name(path.name + ".corrupt")
        _log.error("ensemble-otel health: state file %s is unreadable (%s); moved to %s, "
                   "continuing from the records on disk", path, exc, aside.name)
        with contextlib.suppress(OSError):
            if path == self._journal.journal_path:
                self._journal.set_aside()
            else:
                path.replace(aside)

    def _restore(self) -> None:
        """Continue from the saved state; never write a bucket that is already on disk."""
        state: dict[str, Any] | None = None
        saved = self._saved_states()
        if saved:
            path, state = max(saved, key=lambda item: int(item[1].get("seq", 0)))
            try:
                self._load(state)
                self._append_unwritten(state.get("unwritten") or [])
            except (OSError, ValueError, TypeError, KeyError) as exc:
                self._set_aside(path, exc)
                state = None
            else:
                self._seq = max(int(s.get("seq", 0)) for _, s in saved)
                try:  # start with an empty journal (a torn tail is never appended to)
                    if path == self._journal.journal_path:
                        self._journal.replace(state)
                    else:
                        self._journal.truncate()
                except OSError as exc:
                    _log.error("ensemble-otel health: cannot write state %s: %s", path, exc)
        if state is None and self._journal.has_entries():
            with contextlib.suppress(OSError):
                self._journal.truncate()
        for b in (self._hour, self._day):
            last = self._last_record(b.period)
            if last is None:
                continue
            start = int(datetime.fromisoformat(last["ts"].replace("Z", "+00:00")).timestamp())
            b.last_written = max(b.last_written, start)
            if state is None:  # recover the running levels from the newest record
                self.peak = max(self.peak, float(last["peak_equity"]))
                self.max_drawdown = max(self.max_drawdown, float(last["max_drawdown"]))
                if b.prev_close is None or start >= (b.last_start or -1):
                    b.prev_close = float(last["equity"])
                    b.last_start = start
                last_bar = datetime.fromisoformat(last["last_bar_ts"].replace("Z", "+00:00"))
                self.last_ts = max(self.last_ts, last_bar.timestamp())
                if self.first_equity is None:
                    self.first_equity = float(last["equity"])
        if self._hour.start > self._hour.last_written and self._h_bars > 0:
            # the open hour continues (when it is on disk already, bars take the general
            # path, which drops the late ones and closes it without writing it again)
            self._end = float(self._hour.start + 3600)

    def _append_unwritten(self, unwritten: list[Any]) -> None:
        """Append the records a crash kept from reaching their files (write-ahead)."""
        for period, name, line in unwritten:
            record = read_json_line(line.encode())
            start = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
            path = self._file_for(period, start) if period in self._dirs else None
            # a file name (older versions: the path, maybe under a root since moved)
            if path is None or Path(name).name != path.name:
                raise ValueError(f"unwritten record for {period} in {name}")
            last = self._last_record(period)
            if last is None or last["ts"] < record["ts"]:
                self._appender.append(path, line.encode())
                self._appender.flush_pending()

    def _load(self, state: dict[str, Any]) -> None:
        if state.get("strategy_id") != self.settings.strategy_id:
            raise ValueError("state belongs to another strategy")
        _check_state(state)  # every field first: a bad one must not leave half a state
        self.equity = state["equity"]
        self.first_equity = state["first_equity"]
        self.peak = float(state["peak"])
        self.max_drawdown = float(state["max_drawdown"])  # drawdown follows from equity, peak
        self.realized = state["realized"]
        self.unrealized = state["unrealized"]
        self.positions = state["positions"]
        self.last_ts = -_INF if state["last_ts"] is None else float(state["last_ts"])
        self._c_bars = int(state["total_bars"])
        self._c_notional = float(state["total_notional"])
        self._c_breaches = int(state["total_breaches"])
        self._c_warnings = int(state["total_warnings"])
        self.dropped = int(state["dropped"])
        h, d = self._hour, self._day
        h.load(state["buckets"]["1h"])
        d.load(state["buckets"]["24h"])
        self._h_bars, self._h_notional = int(h.bars), float(h.notional)
        self._h_breaches, self._h_warnings = int(h.breaches), int(h.warnings)
        if state["version"] == 1:  # version 1 counted the open hour in the day and the totals
            d.bars -= self._h_bars
            d.notional -= self._h_notional
            d.breaches -= self._h_breaches
            d.warnings -= self._h_warnings
            self._c_bars -= self._h_bars
            self._c_notional -= self._h_notional
            self._c_breaches -= self._h_breaches
            self._c_warnings -= self._h_warnings

    def _last_record(self, period: str) -> dict[str, Any] | None:
        directory = self._dirs[period]
        try:
            files = sorted(directory.glob("*.jsonl"), reverse=True)
        except OSError:
            return None
        for path in files:
            line = last_line(path)
            if line:
                try:
                    record = read_json_line(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and "ts" in record:
                    return record
        return None

    def close(self) -> None:
        """Persist the open buckets (they close when a later bar arrives, maybe after a restart)."""
        self.save_state(fsync=True)
        with self._save_lock, contextlib.suppress(OSError):
            self._journal.close()


_STATE_FIELDS = {  # field -> (integer, nullable)
    "equity": (False, True), "first_equity": (False, True), "realized": (False, True),
    "unrealized": (False, True), "positions": (True, True), "last_ts": (False, True),
    "peak": (False, False), "max_drawdown": (False, False), "total_bars": (True, False),
    "total_notional": (False, False), "total_breaches": (True, False),
    "total_warnings": (True, False), "dropped": (True, False),
}
_BUCKET_FIELDS = {
    "start": (True, False), "bars": (True, False), "notional": (False, False),
    "breaches": (True, False), "warnings": (True, False), "first_ts": (False, False),
    "last_ts": (False, False), "prev_close": (False, True), "last_written": (True, False),
    "last_pnl": (False, True), "last_turnover": (False, True), "last_start": (True, True),
}


def _check_fields(data: object, fields: dict[str, tuple[bool, bool]], where: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not an object")
    for key, (integer, nullable) in fields.items():
        if key not in data:
            raise ValueError(f"{where} has no {key!r}")
        value = data[key]
        if value is None and nullable:
            continue
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            raise ValueError(f"{where}[{key!r}] = {value!r} is not a{'' if integer else ' finite'}"
                             f" {'whole ' if integer else ''}number")


def _check_state(state: dict[str, Any]) -> None:
    """Raise ValueError naming the first field of a state file that has the wrong type."""
    _check_fields(state, _STATE_FIELDS, "state")
    buckets = state.get("buckets")
    if not isinstance(buckets, dict):
        raise ValueError("state has no 'buckets' object")
    for period, _ in PERIODS:
        _check_fields(buckets.get(period), _BUCKET_FIELDS, f"state bucket {period}")


def read_saved_state(state_path: Path) -> dict[str, Any] | None:
    """The newest state saved under ``state_path`` (``<root>/state/health/<strategy>.json``):
    the file's or the newest whole line of its journal (``<file>.wal``, written at bucket
    closes), whichever has the higher ``seq``; None when neither can be read."""
    found = []
    journal = JsonJournal(state_path)
    for read in (state_path.read_bytes, journal.newest_entry):
        try:
            data = read()
            state = None if data is None else read_json_line(data)
        except (OSError, ValueError):
            continue
        if isinstance(state, dict):
            found.append(state)
    return max(found, key=lambda s: s.get("seq", 0), default=None)


def read_json_line(line: bytes) -> Any:
    import orjson

    return orjson.loads(line)
