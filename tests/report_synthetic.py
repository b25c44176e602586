"""Synthetic records for tests, benchmarks and screenshots of the report.

Writes health snapshots (1h and 24h), a heartbeat and a few events for one strategy,
exactly as the contract registry describes them (same fields, paths and bucket rules as
the health emitter: buckets by bar time in UTC, pnl against the previous bucket's close,
turnover = traded notional / equity at the bucket's last bar). A seeded random walk makes
the numbers; nothing here is read by the report itself.
"""

from __future__ import annotations

import random
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from ensemble_otel.contract.registry import EVENT, HEALTH_1H, HEALTH_24H, HEARTBEAT
from ensemble_otel.paths import record_path as file_path

_PERIOD_KINDS = (("1h", 3600, HEALTH_1H), ("24h", 86400, HEALTH_24H))


def iso(unix: float) -> str:
    dt = datetime.fromtimestamp(unix, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if dt.microsecond else "%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Bucket:
    start: int
    first_ts: float
    last_ts: float = 0.0
    bars: int = 0
    notional: float = 0.0
    breaches: int = 0
    warnings: int = 0


@dataclass(slots=True)
class SyntheticRun:
    """What was written for one strategy (records per kind, in order)."""

    strategy_id: str
    snapshots: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    heartbeat: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    files: set[Path] = field(default_factory=set)


def _append(run: SyntheticRun, path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        fh.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    run.files.add(path)


def write_strategy(
    root: Path,
    strategy_id: str,
    *,
    start: datetime = datetime(2024, 1, 1, tzinfo=timezone.utc),
    hours: int = 24 * 7,
    bars_per_hour: int = 1,
    seed: int = 1,
    schema_version: str = "1.0",
    equity0: float = 100_000.0,
    heartbeat_unix: float | None = None,
    heartbeat_state: str = "running",
    heartbeat_interval: float = 15.0,
    skip_hours: frozenset[int] = frozenset(),
) -> SyntheticRun:
    """Simulate `hours` hours of bars and write what the emitter would write.

    Every hour not in `skip_hours` (offsets from `start`) gets `bars_per_hour` bars, so
    it yields one 1h record; all buckets are written, the last one included.
    """
    rng = random.Random(seed)
    run = SyntheticRun(strategy_id, {"1h": [], "24h": []})
    meta = {"strategy_id": strategy_id, "schema_version": schema_version}
    t0 = int(start.timestamp()) // 3600 * 3600
    step = 3600 / bars_per_hour
    equity = equity0
    first_equity: float | None = None
    peak, max_dd, realized = equity0, 0.0, 0.0
    prev_close: dict[str, float | None] = {"1h": None, "24h": None}
    open_b: dict[str, _Bucket | None] = {"1h": None, "24h": None}
    drift, vol = rng.uniform(-0.00001, 0.00004), rng.uniform(0.0006, 0.0012)
    state = {"equity": equity, "dd": 0.0, "positions": 0}

    def close(period: str, kind: Any) -> None:
        b = open_b[period]
        if b is None:
            return
        prev = prev_close[period] if prev_close[period] is not None else first_equity
        assert prev is not None
        eq = state["equity"]
        record = {
            "ts": iso(b.start),
            "period": period,
            **meta,
            "equity": eq,
            "peak_equity": peak,
            "drawdown": state["dd"],
            "max_drawdown": max_dd,
            "pnl": eq - prev,
            "turnover": b.notional / eq,
            "traded_notional": b.notional,
            "realized_pnl": realized,
            "unrealized_pnl": eq - equity0 - realized,
            "open_positions": state["positions"],
            "risk_breaches": b.breaches,
            "risk_warnings": b.warnings,
            "bars": b.bars,
            "first_bar_ts": iso(b.first_ts),
            "last_bar_ts": iso(b.last_ts),
        }
        _append(run, file_path(root, kind, strategy_id,
                               datetime.fromtimestamp(b.start, tz=timezone.utc)), record)
        run.snapshots[period].append(record)
        prev_close[period] = eq
        open_b[period] = None

    for h in range(hours):
        if h in skip_hours:
            continue
        for k in range(bars_per_hour):
            t = t0 + h * 3600 + k * step
            if first_equity is not None:
                equity = round(equity * (1.0 + rng.gauss(drift, vol)), 2)
            else:
                first_equity = equity
            peak = max(peak, equity)
            dd = 1.0 - equity / peak
            max_dd = max(max_dd, dd)
            trade = rng.random() < 0.35
            notional = round(rng.uniform(1_000, 40_000), 2) if trade else 0.0
            if trade:
                realized = round(realized + rng.gauss(0, 60), 2)
                state["positions"] = rng.randint(0, 3)
            warnings = 1 if dd > 0.015 and rng.random() < 0.03 else 0
            breaches = 1 if dd > 0.03 and rng.random() < 0.01 else 0
            state["equity"], state["dd"] = equity, dd
            for period, seconds, kind in _PERIOD_KINDS:
                bstart = int(t // seconds) * seconds
                b = open_b[period]
                if b is not None and b.start != bstart:
                    close(period, kind)
                    b = None
                if b is None:
                    b = open_b[period] = _Bucket(bstart, t)
                b.bars += 1
                b.last_ts = t
                b.notional += notional
                b.breaches += breaches
                b.warnings += warnings
            if breaches:
                ev = {"ts": iso(t), "event": "risk_breach", **meta, "drawdown": dd}
                _append(run, file_path(root, EVENT, strategy_id,
                                       datetime.fromtimestamp(t, tz=timezone.utc)), ev)
                run.events.append(ev)
    # the final buckets are written too (the emitter would write them at the next bar)
    for period, _seconds, kind in _PERIOD_KINDS:
        # state still holds the last bar: close() reads equity and drawdown from it
        close(period, kind)

    now = heartbeat_unix if heartbeat_unix is not None else datetime.now(timezone.utc).timestamp()
    run.heartbeat = {
        "ts": iso(now), "unix": now, **meta, "state": heartbeat_state, "seq": hours,
        "pid": 4242, "host": socket.gethostname(), "service_instance_id": str(uuid.UUID(
            int=rng.getrandbits(128), version=4)),
        "uptime_s": float(hours * 3600), "interval_s": heartbeat_interval,
        "environment": "paper",
    }
    hb_path = file_path(root, HEARTBEAT, strategy_id, datetime.now(timezone.utc))
    hb_path.parent.mkdir(parents=True, exist_ok=True)
    hb_path.write_bytes(orjson.dumps(run.heartbeat))
    run.files.add(hb_path)
    return run
