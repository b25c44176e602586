"""Helpers for the unit tests: bar times, reading JSONL records back."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

# 2024-03-01T00:00:00Z: a Friday; every helper below counts from here
DAY0 = int(datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp())
HOUR = 3600
DAY = 86400


def at(hours: float = 0.0, minutes: float = 0.0, days: int = 0) -> float:
    """Unix seconds ``days`` days, ``hours`` hours and ``minutes`` minutes after DAY0."""
    return float(DAY0 + days * DAY + hours * HOUR + minutes * 60)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file parsed (a torn line fails the test)."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path} does not end with a newline"
    return [orjson.loads(line) for line in data.splitlines()]


def snapshot_records(root: Path, period: str, strategy_id: str) -> list[dict[str, Any]]:
    """All health records of one period and strategy, in file order (files sorted by name)."""
    directory = root / "logs" / period / "health_snapshot" / strategy_id
    out: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.jsonl")):
        out.extend(read_jsonl(path))
    return out
