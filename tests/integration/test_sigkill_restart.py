"""A bot killed with SIGKILL mid-hour and mid-day, restarted, writes every health record
exactly once, and its drawdown continues from the peak reached before the kill.

The bot is a real subprocess using the installed package. Each life replays the bar feed
from the start (bars the telemetry has already seen are dropped) and pauses after a given
bar; the test kills it there. A reference bot runs the same feed without interruption; the
killed-and-restarted bot's hourly and daily files must equal the reference's, record for
record.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

STRATEGY = "killme"
START = 1_709_251_200  # 2024-03-01T00:00:00Z
STEP = 600  # 10-minute bars
BARS = 3 * 24 * 6  # three days

BOT = textwrap.dedent(
    f"""
    import math
    import sys
    import time

    import ensemble_otel

    root, pause_after, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    telemetry = ensemble_otel.configure(root=root, strategy_id={STRATEGY!r},
                                        heartbeat_interval=interval)

    def equity(i):
        return 10_000.0 * (1.0 + 0.1 * math.sin(i / 40.0)) + 50.0 * ((i * 37) % 11 - 5)

    for i in range({BARS}):
        telemetry.health.maybe_emit(
            float({START} + i * {STEP}),
            equity=equity(i),
            realized_pnl=float(i % 13) - 6.0,
            unrealized_pnl=float(i % 7) * 1.5,
            traded_notional=float((i * 97) % 1000),
            risk_breaches=1 if i % 29 == 0 else 0,
            risk_warnings=i % 3,
            open_positions=i % 4,
        )
        if i == pause_after:
            print("paused", i, flush=True)
            time.sleep(3600)  # killed here
    ensemble_otel.shutdown()
    print("finished", flush=True)
    """
)


def equity(i: int) -> float:
    return 10_000.0 * (1.0 + 0.1 * math.sin(i / 40.0)) + 50.0 * ((i * 37) % 11 - 5)


def bar_ts(i: int) -> float:
    return float(START + i * STEP)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("ENSEMBLE_", "OTEL_")) and k != "PAPER_TRADING_ROOT"}


def _start(script: Path, root: Path, pause_after: int, interval: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), str(root), str(pause_after), str(interval)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )


def _records(root: Path, period: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    directory = root / "logs" / period / "health_snapshot" / STRATEGY
    for path in sorted(directory.glob("*.jsonl")):
        data = path.read_bytes()
        assert data.endswith(b"\n"), f"{path} ends in a partial line"
        out.extend(orjson.loads(line) for line in data.splitlines())
    return out


def _state(root: Path) -> dict[str, Any]:
    """The newest saved state: the state file or its journal (written at bucket closes)."""
    from ensemble_otel.health import read_saved_state

    return read_saved_state(root / "state" / "health" / f"{STRATEGY}.json") or {}


def _run_to_end(script: Path, root: Path) -> None:
    proc = _start(script, root, -1, 3600.0)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.endswith("finished\n")


def _kill_after(script: Path, root: Path, pause_after: int, interval: float,
                wait_for_saved_state: bool) -> None:
    proc = _start(script, root, pause_after, interval)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == f"paused {pause_after}\n", (line, proc.stderr and proc.stderr.read())
        if wait_for_saved_state:  # a beat saved the state up to the paused bar
            deadline = time.monotonic() + 30
            while _state(root).get("last_ts") != bar_ts(pause_after):
                assert time.monotonic() < deadline, "no beat saved the state"
                time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    beat = orjson.loads((root / "logs" / "heartbeat" / f"{STRATEGY}.json").read_bytes())
    assert beat["state"] in ("starting", "running")  # it never said stopped
    assert beat["pid"] == proc.pid


def test_sigkill_mid_hour_and_mid_day_then_restart(tmp_path: Path) -> None:
    script = tmp_path / "bot.py"
    script.write_text(BOT)
    reference, killed = tmp_path / "reference", tmp_path / "killed"

    # the feed: its all-time peak comes before the first kill and is not beaten until
    # after the second restart, so the records in between measure drawdown from it
    first_kill, second_kill, third_kill = 80, 200, 288
    peak_before = max(equity(i) for i in range(first_kill + 1))
    assert max(equity(i) for i in range(first_kill + 1, third_kill + 1)) < peak_before
    assert bar_ts(first_kill) % 3600 == 1200  # day 0, 13:20: mid-hour, mid-day
    assert bar_ts(second_kill) % 86400 == 33600  # day 1, 09:20
    assert bar_ts(third_kill) % 86400 == 0  # day 2, 00:00: the bar that closed day 1

    _run_to_end(script, reference)

    # life 1: no beat during the run (interval 1 h), so the state on disk is the one saved
    # when the last hour closed; the bars of the open hour are only in memory when killed
    _kill_after(script, killed, first_kill, 3600.0, wait_for_saved_state=False)
    assert _state(killed)["last_ts"] < bar_ts(first_kill)
    # life 2: beats every 50 ms save the state; killed once it holds the paused bar
    _kill_after(script, killed, second_kill, 0.05, wait_for_saved_state=True)
    # life 3: killed right after the bar that closed hour 23 and day 1 was applied
    _kill_after(script, killed, third_kill, 3600.0, wait_for_saved_state=False)
    # life 4: to the end, clean shutdown
    _run_to_end(script, killed)

    for period, expected in (("1h", 3 * 24 - 1), ("24h", 2)):
        straight = _records(reference, period)
        restarted = _records(killed, period)
        assert len(straight) == expected
        starts = [r["ts"] for r in restarted]
        assert len(starts) == len(set(starts)), f"a {period} bucket was written twice"
        assert restarted == straight, f"{period} records differ from the uninterrupted run"

    hours = _records(killed, "1h")
    assert sum(r["bars"] for r in hours) == BARS - 6  # all but the last, open hour
    # the first hour closed by life 2 (13:00 on day 0, killed mid-way in life 1)
    resumed = next(r for r in hours if r["ts"] == "2024-03-01T13:00:00Z")
    assert resumed["bars"] == 6 and resumed["peak_equity"] == peak_before
    assert resumed["drawdown"] == 1 - resumed["equity"] / peak_before > 0
    # drawdown keeps measuring from the old peak through every restart
    for r in hours:
        if "2024-03-01T13:00:00Z" <= r["ts"] <= "2024-03-02T23:00:00Z":
            assert r["peak_equity"] == peak_before
            assert r["drawdown"] == pytest.approx(1 - r["equity"] / peak_before, abs=1e-15)
    max_dd = 0.0
    for r in hours:
        max_dd = max(max_dd, r["drawdown"])
        assert r["max_drawdown"] >= max_dd
    days = _records(killed, "24h")
    assert [d["bars"] for d in days] == [144, 144]
    assert days[1]["max_drawdown"] >= days[0]["max_drawdown"]

    leftovers = [p.name for p in killed.rglob("*")
                 if p.name.endswith((".torn", ".corrupt", ".tmp"))]
    assert leftovers == []
    beat = orjson.loads((killed / "logs" / "heartbeat" / f"{STRATEGY}.json").read_bytes())
    assert beat["state"] == "stopped"
