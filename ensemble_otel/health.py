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
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
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
STATE_VERSION = 1


def iso(unix: float) -> str:
    """Bar time as ISO-8601 UTC: whole seconds when whole, microseconds otherwise."""
    dt = datetime.fromtimestamp(unix, tz=_UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# Bar times with a four-digit year: 1000-01-01T00:00:00Z <= ts < 10000-01-01T00:00:00Z. A
# time outside (typically milliseconds passed as seconds) would be taken as the last bar and
# make every later bar look out of order, so it is refused up front.
TS_MIN = -30610224000.0
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
        raise BarError("ts", ts, "must be unix seconds between 1000-01-01 and 9999-12-31 "
                       "(is it in milliseconds?)")
    return value


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        raise BarError(field, value, "must be a number")
    try:
        out = float(value)  # type: ignore[arg-type]
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


class HealthSnapshotEmitter:
    """Per-bar state of one strategy; writes one record per hour and per day of bar time.

    Obtain it from ``ensemble_otel.configure().health``. Call ``maybe_emit`` on every bar.
    """

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
        self.active = True  # False in a forked child
        self.dirty = False
        # levels at the last bar
        self.equity: float | None = None
        self.first_equity: float | None = None
        self.peak = 0.0
        self.drawdown = 0.0
        self.max_drawdown = 0.0
        self.realized: float | None = None
        self.unrealized: float | None = None
        self.positions: int | None = None
        self.last_ts = -_INF
        # cumulative totals since the first bar (observable counters)
        self.total_bars = 0
        self.total_notional = 0.0
        self.total_breaches = 0
        self.total_warnings = 0
        self.dropped = 0
        self._drop_warned_at = -_INF
        self._hour = _Bucket("1h", 3600)
        self._day = _Bucket("24h", 86400)
        self._hour_end = -_INF  # first unix second after the open hour
        self._restore()
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
        """Record one bar; return the records written when it closed buckets (usually [])."""
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
        if t <= self.last_ts:
            self._drop(t)
            return []
        if not self.active:
            return []
        written: list[dict[str, Any]] = []
        if t >= self._hour_end:
            written = self._roll(t)
        with self._lock:
            if equity > self.peak:
                self.peak = equity
                self.drawdown = 0.0
            else:
                dd = 1.0 - equity / self.peak
                self.drawdown = dd
                if dd > self.max_drawdown:
                    self.max_drawdown = dd
            if self.first_equity is None:
                self.first_equity = equity
            self.equity = equity
            self.realized = realized_pnl
            self.unrealized = unrealized_pnl
            self.positions = open_positions
            self.last_ts = t
            self.total_bars += 1
            self.total_notional += traded_notional
            self.total_breaches += risk_breaches
            self.total_warnings += risk_warnings
            for b in (self._hour, self._day):
                if b.bars == 0:
                    b.first_ts = t
                b.bars += 1
                b.notional += traded_notional
                b.breaches += risk_breaches
                b.warnings += risk_warnings
                b.last_ts = t
            self.dirty = True
        return written

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
        closing = [b for b, start in ((self._hour, hour_start), (self._day, day_start))
                   if b.bars > 0 and b.start != start]
        written: list[dict[str, Any]] = []
        if closing:
            levels = self._collect_levels()
            for b in closing:
                record = self._record(b, levels)
                if b.start > b.last_written:
                    self._appender.append(self._file_for(b), dumps_line(record))
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
        self._hour_end = hour_start + 3600
        if closing:
            self.save_state(fsync=False)
        return written

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
        gauge(names.DRAWDOWN, lambda: self.drawdown)
        gauge(names.DRAWDOWN_MAX, lambda: self.max_drawdown)
        gauge(names.PNL_REALIZED, lambda: self.realized)
        gauge(names.PNL_UNREALIZED, lambda: self.unrealized)
        gauge(names.POSITIONS_OPEN, lambda: self.positions)
        gauge(names.BAR_TIMESTAMP, lambda: self.last_ts)
        gauge(names.BARS, lambda: self.total_bars)
        gauge(names.BARS_DROPPED, lambda: self.dropped)
        gauge(names.TRADED_NOTIONAL, lambda: self.total_notional)
        gauge(names.RISK_BREACHES, lambda: self.total_breaches)
        gauge(names.RISK_WARNINGS, lambda: self.total_warnings)

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
        with self._lock:
            return {
                "version": STATE_VERSION,
                "strategy_id": self.settings.strategy_id,
                "equity": self.equity,
                "first_equity": self.first_equity,
                "peak": self.peak,
                "drawdown": self.drawdown,
                "max_drawdown": self.max_drawdown,
                "realized": self.realized,
                "unrealized": self.unrealized,
                "positions": self.positions,
                "last_ts": None if self.last_ts == -_INF else self.last_ts,
                "total_bars": self.total_bars,
                "total_notional": self.total_notional,
                "total_breaches": self.total_breaches,
                "total_warnings": self.total_warnings,
                "dropped": self.dropped,
                "buckets": {"1h": self._hour.to_state(), "24h": self._day.to_state()},
            }

    def save_state(self, *, fsync: bool = True) -> bool:
        """Replace the state file atomically. Fails soft (returns False, logs)."""
        if not self.active or self.equity is None:
            return False
        self.dirty = False
        try:
            atomic_write_json(self.state_path, self.state(), fsync=fsync)
        except OSError as exc:
            self.dirty = True
            _log.error("ensemble-otel health: cannot write state %s: %s", self.state_path, exc)
            return False
        return True

    def _restore(self) -> None:
        """Continue from the state file; never write a bucket that is already on disk."""
        state: dict[str, Any] | None = None
        if self.state_path.exists():
            try:
                state = read_json(self.state_path)
                if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
                    raise ValueError("unknown state version")
                self._load(state)
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
        if self._hour.start >= 0 and self._hour.bars > 0:
            self._hour_end = self._hour.start + 3600

    def _load(self, state: dict[str, Any]) -> None:
        if state.get("strategy_id") != self.settings.strategy_id:
            raise ValueError("state belongs to another strategy")
        self.equity = state["equity"]
        self.first_equity = state["first_equity"]
        self.peak = float(state["peak"])
        self.drawdown = float(state["drawdown"])
        self.max_drawdown = float(state["max_drawdown"])
        self.realized = state["realized"]
        self.unrealized = state["unrealized"]
        self.positions = state["positions"]
        self.last_ts = -_INF if state["last_ts"] is None else float(state["last_ts"])
        self.total_bars = int(state["total_bars"])
        self.total_notional = float(state["total_notional"])
        self.total_breaches = int(state["total_breaches"])
        self.total_warnings = int(state["total_warnings"])
        self.dropped = int(state["dropped"])
        self._hour.load(state["buckets"]["1h"])
        self._day.load(state["buckets"]["24h"])

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


def read_json_line(line: bytes) -> Any:
    import orjson

    return orjson.loads(line)
