"""Hourly and daily health snapshots in bar time (UTC), as metric views and JSONL records.

A bar updates plain in-memory state (no SDK call, no I/O). Observable instruments read
that state when a reader collects. When a bar opens a later hour (or day), the closing
bucket's record is built from a collection of those same instruments, appended to its
JSONL file, and the state file is replaced, so a restart continues where the last one
stopped: peak equity and max drawdown are never reset, a bucket on disk is never written
twice.

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
and the totals take the hour's sums when it closes (observers read closed + open).
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import operator
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ensemble_otel.contract import registry as names
from ensemble_otel.errors import BarError
from ensemble_otel.jsonl import JsonlAppender, atomic_write_json, dumps_line, last_line, read_json
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
# what state() copies, in one C call (the first three say whether the copy is whole)
_STATE_ATTRS = (
    "_writing", "last_ts", "_rolling", "equity", "first_equity", "peak", "max_drawdown",
    "realized", "unrealized", "positions", "_c_bars", "_c_notional", "_c_breaches",
    "_c_warnings", "dropped", "_h_bars", "_h_notional", "_h_breaches", "_h_warnings",
    "_unwritten",
    *("_hour." + k for k in _BUCKET_STATE), *("_day." + k for k in _BUCKET_STATE),
)
_STATE_GET = operator.attrgetter(*_STATE_ATTRS)


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
        "_writing",
        "equity",
        "last_ts",
        "max_drawdown",
        "peak",
        "positions",
        "realized",
        "unrealized",
    )

    def __init__(
        self,
        settings: Settings,
        *,
        meter: Meter,
        snapshot_reader: InMemoryMetricReader,
        appender: JsonlAppender,
    ) -> None:
        self.settings = settings
        self._reader = snapshot_reader
        self._appender = appender
        self._lock = threading.Lock()
        self._root = settings.root
        sid = settings.strategy_id
        self._dirs = {
            "1h": settings.root / "logs" / "1h" / "health_snapshot" / sid,
            "24h": settings.root / "logs" / "24h" / "health_snapshot" / sid,
        }
        self.state_path: Path = settings.state_dir / "health" / f"{sid}.json"
        self._active = True  # False in a forked child
        self._rolling = False  # a bucket close is under way (see state())
        self._unwritten: tuple[tuple[str, str, str], ...] = ()  # closed, not yet appended
        self._save_lock = threading.Lock()  # the beat and a bucket close both save state
        self._saved_ts: float | None = -_INF  # last_ts when the state file was last written
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
        self._hour_end = -_INF  # first unix second after the open hour
        self._restore()
        self._reset_dd_floor()
        self._saved_ts = self._writing = self.last_ts
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
            if (s - s == 0.0 and equity > 0.0 and traded_notional >= 0.0
                    and risk_breaches >= 0 and risk_warnings >= 0 and open_positions >= 0
                    and self.last_ts < ts < self._hour_end):
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
                self._h_notional += traded_notional
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
        if t <= self.last_ts or self._on_disk(t):
            self._drop(t)
            return []
        if not self._active:
            return []
        written: list[dict[str, Any]] = []
        if t >= self._hour_end:
            written = self._roll(t)
        self._apply(t, equity, realized_pnl, unrealized_pnl, traded_notional,
                    risk_breaches, risk_warnings, open_positions)
        return written

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
        if not value:
            self._hour_end = -_INF  # every bar takes the general path, which checks this

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
        # state() waits while a close is under way: a copy taken between the fold and the
        # record's append (or its prev_close) would lose the record or mix two hours
        self._rolling = True
        try:
            if self._h_bars > 0 and self._hour.start != hour_start:
                with self._lock:
                    self._fold_hour()
            closing = [b for b, start in ((self._hour, hour_start), (self._day, day_start))
                       if b.bars > 0 and b.start != start]
            written: list[dict[str, Any]] = []
            lines: list[tuple[str, str, str]] = []  # (period, file, line) to append
            if closing:
                levels = self._collect_levels()
                for b in closing:
                    record = self._record(b, levels)
                    if b.start > b.last_written:
                        lines.append((b.period, str(self._file_for(b)),
                                      dumps_line(record).decode()))
                        b.last_written = b.start
                        written.append(record)
                    else:
                        _log.info("ensemble-otel health: %s bucket %s already on disk; not written "
                                  "again", b.period, record["ts"])
                    with self._lock:
                        b.prev_close = record["equity"]
                        b.last_pnl = record["pnl"]
                        b.last_turnover = record["turnover"]
                        b.last_start = b.start
            with self._lock:
                for b, start in ((self._hour, hour_start), (self._day, day_start)):
                    if b.start != start:
                        b.reset(start)
            self._hour_end = float(hour_start + 3600)
            self._unwritten = tuple(lines)  # before _rolling clears: a copy must carry them
        finally:
            self._rolling = False
        if closing:
            # write-ahead: the state names the records before they are appended, so a crash
            # in between leaves a state that is never behind the files (restore appends any
            # that did not make it), and the bucket continues exactly on restart
            self.save_state(fsync=False)
            for _period, path, line in lines:
                self._appender.append(Path(path), line.encode())
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

    def _file_for(self, b: _Bucket) -> Path:
        day = datetime.fromtimestamp(b.start, tz=_UTC)
        name = day.strftime("%Y-%m-%d.jsonl" if b.period == "1h" else "%Y-%m.jsonl")
        return self._dirs[b.period] / name

    def _collect_levels(self) -> dict[str, float]:
        """Collect the instruments (same names, units and values as OTLP gets)."""
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
        def gauge(name: str, read: Any) -> None:
            spec = names.METRICS_BY_NAME[name]
            create = (meter.create_observable_counter if spec.instrument == "observable_counter"
                      else meter.create_observable_gauge)

            def callback(options: CallbackOptions) -> Iterable[Observation]:
                if self.equity is None:
                    return ()
                with self._lock:
                    value = read()
                return () if value is None else (Observation(value),)

            create(name, callbacks=[callback], unit=spec.unit, description=spec.description)

        gauge(names.EQUITY, lambda: self.equity)
        gauge(names.EQUITY_PEAK, lambda: self.peak)
        gauge(names.DRAWDOWN, lambda: self.drawdown)  # computed from equity and peak
        gauge(names.DRAWDOWN_MAX, lambda: self.max_drawdown)
        gauge(names.PNL_REALIZED, lambda: self.realized)
        gauge(names.PNL_UNREALIZED, lambda: self.unrealized)
        gauge(names.POSITIONS_OPEN, lambda: self.positions)
        gauge(names.BAR_TIMESTAMP, lambda: self.last_ts)
        gauge(names.BARS, lambda: self._c_bars + self._h_bars)
        gauge(names.BARS_DROPPED, lambda: self.dropped)
        gauge(names.TRADED_NOTIONAL, lambda: self._c_notional + self._h_notional)
        gauge(names.RISK_BREACHES, lambda: self._c_breaches + self._h_breaches)
        gauge(names.RISK_WARNINGS, lambda: self._c_warnings + self._h_warnings)

        def per_period(name: str, attr: str) -> None:
            spec = names.METRICS_BY_NAME[name]

            def callback(options: CallbackOptions) -> Iterable[Observation]:
                with self._lock:
                    return [Observation(getattr(b, attr), {names.PERIOD_ATTRIBUTE: b.period})
                            for b in (self._hour, self._day) if getattr(b, attr) is not None]

            meter.create_observable_gauge(name, callbacks=[callback], unit=spec.unit,
                                          description=spec.description)

        per_period(names.BUCKET_PNL, "last_pnl")
        per_period(names.BUCKET_TURNOVER, "last_turnover")
        per_period(names.BUCKET_START, "last_start")

    # -- state across restarts -------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """A consistent snapshot of the state, from any thread.

        The bar path takes no lock. One ``attrgetter`` call copies every field in C, where
        no other Python thread runs in between; the copy is used when it holds whole bars:
        a bar stores ``_writing`` first and ``last_ts`` last, and a bucket close sets
        ``_rolling`` while it runs. Otherwise the bar thread is let to finish and it retries.
        """
        for attempt in range(100_000):  # no lock held: the bar thread must go on meanwhile
            values = _STATE_GET(self)
            if values[0] == values[1] and not values[2]:
                return self._state_from(dict(zip(_STATE_ATTRS, values, strict=True)))
            # a bar (or a bucket close) is under way on the bar thread: let it finish
            time.sleep(0 if attempt < 1000 else 0.001)
        raise RuntimeError("ensemble-otel health: no consistent state copy")  # pragma: no cover

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

    def save_state(self, *, fsync: bool = True) -> bool:
        """Replace the state file atomically. Fails soft (returns False, logs)."""
        if not self._active or self.equity is None:
            return False
        try:
            with self._save_lock:  # copies reach the file in the order they were taken
                state = self.state()
                atomic_write_json(self.state_path, state, fsync=fsync)
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

    def _restore(self) -> None:
        """Continue from the state file; never write a bucket that is already on disk."""
        state: dict[str, Any] | None = None
        if self.state_path.exists():
            try:
                state = read_json(self.state_path)
                if not isinstance(state, dict) or state.get("version") not in (1, STATE_VERSION):
                    raise ValueError("unknown state version")
                self._load(state)
                self._append_unwritten(state.get("unwritten") or [])
            except (OSError, ValueError, TypeError, KeyError) as exc:
                aside = self.state_path.with_name(self.state_path.name + ".corrupt")
                _log.error(
                    "ensemble-otel health: state file %s is unreadable (%s); moved to %s, "
                    "continuing from the records on disk", self.state_path, exc, aside.name,
                )
                with contextlib.suppress(OSError):
                    self.state_path.replace(aside)
                state = None
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
            self._hour_end = float(self._hour.start + 3600)

    def _append_unwritten(self, unwritten: list[Any]) -> None:
        """Append the records a crash kept from reaching their files (write-ahead)."""
        for period, path, line in unwritten:
            if period not in self._dirs or Path(path).parent != self._dirs[period]:
                raise ValueError(f"unwritten record for {period} in {path}")
            record = read_json_line(line.encode())
            last = self._last_record(period)
            if last is None or last["ts"] < record["ts"]:
                self._appender.append(Path(path), line.encode())
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


def read_json_line(line: bytes) -> Any:
    import orjson

    return orjson.loads(line)
