"""Helpers for the validator tests: a tree of good records to inject faults into."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ensemble_otel.validate import main

H1 = "logs/1h/health_snapshot/s1/2024-03-01.jsonl"
H24 = "logs/24h/health_snapshot/s1/2024-03.jsonl"
EV = "logs/events/s1/2024-03-01.jsonl"
HB = "logs/heartbeat/s1.json"


def snapshot(hour: int, period: str = "1h", day: int = 1, **changes: Any) -> dict[str, Any]:
    ts = f"2024-03-{day:02d}T{hour:02d}:00:00Z"
    record = {
        "ts": ts, "period": period, "strategy_id": "s1", "schema_version": "1.1",
        "equity": 1000.0 + hour, "peak_equity": 1010.0, "drawdown": 0.01,
        "max_drawdown": 0.02, "pnl": 1.0, "turnover": 0.1, "traded_notional": 100.0,
        "realized_pnl": None, "unrealized_pnl": 2.0, "open_positions": 1,
        "risk_breaches": 0, "risk_warnings": 1, "bars": 4, "first_bar_ts": ts,
        "last_bar_ts": f"2024-03-{day:02d}T{hour:02d}:45:00Z",
    }
    record.update(changes)
    return record


def event(minute: int, **changes: Any) -> dict[str, Any]:
    record = {"ts": f"2024-03-01T10:{minute:02d}:00.250000Z", "event": "order_filled",
              "strategy_id": "s1", "schema_version": "1.1", "symbol": "EURUSD", "qty": 1000}
    record.update(changes)
    return record


def heartbeat(**changes: Any) -> dict[str, Any]:
    record = {"ts": "2024-03-01T10:00:00.000001Z", "unix": 1709287200.000001,
              "strategy_id": "s1", "schema_version": "1.1", "state": "running", "seq": 3,
              "pid": 42, "host": "vm", "service_instance_id": "b3c5",
              "uptime_s": 90.0, "interval_s": 30.0, "environment": "paper"}
    record.update(changes)
    return record


def line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def write(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def append(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    with open(path, "ab") as fh:
        fh.write(data)
    return path


def good_tree(root: Path) -> Path:
    """Every kind, in its place: 3 hourly snapshots, 1 daily, 3 events, a heartbeat."""
    write(root, H1, b"".join(line(snapshot(h)) for h in (9, 10, 11)))
    write(root, H24, line(snapshot(0, "24h")))
    write(root, EV, b"".join(line(event(m)) for m in (1, 2, 3)))
    write(root, HB, line(heartbeat()))
    return root


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``python -m ensemble_otel.validate ARGS`` in-process: (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
