"""Helpers for the unit tests: bar times, reading JSONL records back."""

from __future__ import annotations

import subprocess
import sys
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


def run_bounded(args: list[str], stdin: Any = None, timeout: float = 20
                 ) -> tuple[subprocess.CompletedProcess[bytes] | None, int]:
    """Run ``args`` in a child (killed after ``timeout`` s); (its result, or None when it
    was killed, and its max RSS in kB, from getrusage(RUSAGE_CHILDREN) of a fresh parent)."""
    code = ("import resource, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[2:], stdin=sys.stdin, stdout=subprocess.PIPE, "
            "stderr=subprocess.PIPE)\n"
            "try:\n    out, err = p.communicate(timeout=float(sys.argv[1])); rc = p.returncode\n"
            "except subprocess.TimeoutExpired:\n"
            "    p.kill(); out, err = p.communicate(); rc = -999\n"
            "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
            "sys.stdout.buffer.write(repr((rc, out, err, rss)).encode())\n")
    done = subprocess.run([sys.executable, "-c", code, str(timeout), *args],
                          stdin=stdin, capture_output=True, timeout=timeout + 30, check=True)
    rc, out, err, rss = eval(done.stdout)  # our own repr of plain values
    result = None if rc == -999 else subprocess.CompletedProcess(args, rc, out, err)
    return result, rss


def bare_ledger() -> Any:
    """A Ledger alone (no emitter, store or SDK), as the emitter's start leaves it."""
    from ensemble_otel.health.ledger import Ledger

    ledger = Ledger()
    ledger._init_ledger()
    ledger._unwritten = ()
    return ledger
