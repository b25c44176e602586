"""Crash points, deterministic: the process stops dead (``os._exit``) at every step of a
bucket close and of a state save, then restarts and replays from where its state says.
Each restart must leave exactly the records of one uninterrupted run.

Steps (``ensemble_otel.health.store.STEPS``): before the journal line of a close, after it,
between the 1h and the 24h append, after the appends; before a state replace, during it
(temp file written, not renamed), after it (journal not yet emptied). Closes are taken
both at an hour (the 3rd close) and at midnight (the 24th: 1h and 24h records).
The random-timing SIGKILL test (test_sigkill.py) stays as a second line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from crash_bot import CRASHED, STRATEGY
from reliability_support import read_lines

BOT = Path(__file__).resolve().parent / "crash_bot.py"
CASES = [
    ("close:before-journal", 3), ("close:before-journal", 24),
    ("close:after-journal", 3), ("close:after-journal", 24),
    ("close:between-appends", 1), ("close:between-appends", 2),
    ("close:after-appends", 3), ("close:after-appends", 24),
    ("save:before-replace", 2), ("save:during-replace", 2), ("save:after-replace", 2),
    ("save:during-replace", 1), ("save:after-replace", 14),
]


def _run(root: Path, step: str, nth: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "ENSEMBLE_")) and k != "PAPER_TRADING_ROOT"}
    return subprocess.run([sys.executable, str(BOT), str(root), step, str(nth)], env=env,
                          capture_output=True, text=True, timeout=120)


def _records(root: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for period in ("1h", "24h"):
        directory = root / "logs" / period / "health_snapshot" / STRATEGY
        out[period] = [r for p in sorted(directory.glob("*.jsonl")) for r in read_lines(p)]
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("straight")
    done = _run(root, "none", 1)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = _records(root)
    assert len(expected["1h"]) == 59 and len(expected["24h"]) == 2
    return expected


@pytest.mark.parametrize(("step", "nth"), CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_a_crash_at_each_step_then_a_restart_equals_an_uninterrupted_run(
    tmp_path: Path, uninterrupted: dict[str, list[dict[str, Any]]], step: str, nth: int
) -> None:
    crashed = _run(tmp_path, step, nth)
    assert crashed.returncode == CRASHED, (
        f"the bot never reached {step} #{nth} (exit {crashed.returncode}): "
        f"{crashed.stderr[-2000:]}")
    before = _records(tmp_path)
    assert not list(tmp_path.rglob("*.torn")) and not list(tmp_path.rglob("*.corrupt"))
    restarted = _run(tmp_path, "none", 1)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    after = _records(tmp_path)
    for period in ("1h", "24h"):
        assert after[period][:len(before[period])] == before[period], period  # kept as is
        assert after[period] == uninterrupted[period], period
    assert not list(tmp_path.rglob("*.torn")) and not list(tmp_path.rglob("*.corrupt"))
