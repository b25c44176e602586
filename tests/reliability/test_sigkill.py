"""SIGKILL at random moments: nothing torn, nothing written twice, drawdown carries on.

A bot replays a fixed bar series (``replay_bot.py``), is killed with SIGKILL, every other
time 20-200 ms after it is spawned (imports, start-up) and otherwise 5-150 ms after its
start-up beat is on disk (bars, bucket closes, state and heartbeat writes, whatever the
machine's load), restarts from where its state says, again and again; then it runs to the end.
The records must equal those of one uninterrupted run of the same series.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from pathlib import Path

import orjson
from reliability_support import STRATEGY, all_jsonl, read_lines, records, run_bot, start_bot

KILLS = 60
# 10-minute bars: 100,000 hours, 4166 days (the kills end before the bot does; made lazily, so
# a start is not spent building the series)
BARS = "600000"
LAZY = "1"


def _check_heartbeat(root: Path) -> None:
    path = root / "logs" / "heartbeat" / f"{STRATEGY}.json"
    if path.exists():  # absent only when the kill came before the first beat
        beat = orjson.loads(path.read_bytes())
        assert beat["strategy_id"] == STRATEGY and beat["state"] in (
            "starting", "running", "stopping", "stopped"), beat


def _wait_for_start_up(root: Path, pid: int, timeout: float = 30.0) -> None:
    """Until this process's start-up beat is on disk (configure() has returned)."""
    path = root / "logs" / "heartbeat" / f"{STRATEGY}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if orjson.loads(path.read_bytes()).get("pid") == pid:
                return
        except (OSError, orjson.JSONDecodeError):
            pass
        time.sleep(0.002)
    raise AssertionError(f"no start-up heartbeat from pid {pid} within {timeout} s")


def _check_monotonic(recs: list[dict[str, object]], period: str) -> None:
    starts = [r["ts"] for r in recs]
    assert len(starts) == len(set(starts)), f"{period}: a bucket written twice"
    assert starts == sorted(starts), f"{period}: buckets out of order"
    for before, after in itertools.pairwise(recs):
        assert after["peak_equity"] >= before["peak_equity"], (period, before, after)
        assert after["max_drawdown"] >= before["max_drawdown"], (period, before, after)


def test_sigkill_at_random_moments_leaves_whole_files_and_continues(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    run_bot(reference, BOT_BARS=BARS, BOT_BEAT="0.05", BOT_LAZY=LAZY)
    expected = {p: records(reference, p) for p in ("1h", "24h")}
    hours, days = -(-int(BARS) // 6), -(-int(BARS) // 144)  # buckets the series touches
    assert len(expected["1h"]) == hours - 1 and len(expected["24h"]) == days - 1  # last open

    root = tmp_path / "killed"
    rng = random.Random(20240101)
    progressed = 0
    for kill in range(KILLS):
        proc = start_bot(root, BOT_BARS=BARS, BOT_BEAT="0.05", BOT_LAZY=LAZY)
        if kill % 2:  # from the spawn: imports, start-up, the first bars
            time.sleep(rng.uniform(0.020, 0.200))
        else:  # after the start-up beat, whatever the machine's load: bars and closes
            _wait_for_start_up(root, proc.pid)
            time.sleep(rng.uniform(0.005, 0.150))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
        _check_heartbeat(root)
        for path in all_jsonl(root):
            read_lines(path)
        hours = records(root, "1h")
        _check_monotonic(hours, "1h")
        progressed = max(progressed, len(hours))
    assert progressed > 0, "no kill landed after a bucket close: make the series longer"
    assert progressed < len(expected["1h"]), "the bot finished before the kills ended"

    run_bot(root, BOT_BARS=BARS, BOT_BEAT="0.05", BOT_LAZY=LAZY)  # to the end, uninterrupted
    _check_heartbeat(root)
    for path in all_jsonl(root):
        read_lines(path)
    assert not list(root.rglob("*.torn")), "a torn line was found (and set aside)"
    for period in ("1h", "24h"):
        got = records(root, period)
        _check_monotonic(got, period)
        # drawdown continued from the stored peak across every restart: same records
        assert got == expected[period], period
