"""The demo starts its own files over through ``configure(fresh=True)`` (no marker file),
leaves other strategies' records alone, refuses a strategy a live process holds, and runs
under ``OTEL_SDK_DISABLED=true``.

The demo runs as ``python -m ensemble_otel.cli`` from this source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ensemble_otel

REPO = Path(__file__).resolve().parents[2]
SID = "demo-sma-eurusd"


def demo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("ENSEMBLE_", "OTEL_"))
             and k not in ("PAPER_TRADING_ROOT", "NOTIFY_SOCKET", "WATCHDOG_USEC")}
    clean.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-m", "ensemble_otel.cli", "demo", "--no-report",
                           *args], capture_output=True, text=True, timeout=300, env=clean)


def hourly(root: Path) -> list[dict[str, object]]:
    return [json.loads(line) for p in sorted(
        (root / "logs" / "1h" / "health_snapshot" / SID).glob("*.jsonl"))
        for line in p.read_text().splitlines()]


def test_demo_runs_twice_without_a_marker_file(tmp_path: Path) -> None:
    root = tmp_path / "out"
    first = demo("--bars", "60", "--root", str(root))
    second = demo("--bars", "60", "--root", str(root))
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert len(hourly(root)) == 59  # started over: not dropped as already recorded, not twice
    assert sorted(p.name for p in (root / "state").iterdir()) == sorted(["health", f"{SID}.lock"])


def test_demo_refuses_a_strategy_a_live_process_holds(tmp_path: Path) -> None:
    root = tmp_path / "out"
    assert demo("--bars", "30", "--root", str(root)).returncode == 0
    before = hourly(root)
    held = ensemble_otel.configure(root=root, strategy_id=SID, heartbeat_interval=3600)
    done = demo("--bars", "30", "--root", str(root))
    held.shutdown()
    assert done.returncode == 2
    assert "another live process" in done.stderr and f"pid {os.getpid()}" in done.stderr
    assert hourly(root) == before


def test_demo_leaves_another_bots_records_alone(tmp_path: Path) -> None:
    root = tmp_path / "out"
    events = root / "logs" / "events" / "live-bot" / "2024-01-01.jsonl"
    events.parent.mkdir(parents=True)
    events.write_text('{"ts": "2024-01-01T00:00:00Z", "event": "order_filled"}\n')
    done = demo("--bars", "30", "--root", str(root), "--strategy", "live-bot")
    assert done.returncode == 2 and "did not write" in done.stderr
    assert events.read_text().startswith('{"ts": "2024-01-01T00:00:00Z"')


@pytest.mark.parametrize("validate", [True, False])
def test_demo_runs_with_the_sdk_disabled(tmp_path: Path, validate: bool) -> None:
    """Today: FileNotFoundError on the demo's marker under OTEL_SDK_DISABLED=true."""
    root = tmp_path / "out"
    args = ["--bars", "30", "--root", str(root)] + ([] if validate else ["--no-validate"])
    done = demo(*args, OTEL_SDK_DISABLED="true")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "skipped (ensemble-otel is disabled" in done.stdout
    assert not (root / "logs").exists() and not (root / "state").exists()


def test_written_by_demo_reads_the_oldest_event_file_without_following_links(
        tmp_path: Path) -> None:
    from ensemble_otel.demo.cli import written_by_demo

    started = b'{"ts":"2024-03-01T00:00:00Z","event":"demo_started"}\n'
    other = b'{"ts":"2024-03-02T00:00:00Z","event":"order"}\n'
    root = tmp_path / "root"
    events = root / "logs" / "events" / "s1"
    events.mkdir(parents=True)
    (events / "2024-03-02.jsonl").write_bytes(other)
    assert not written_by_demo(root, "s1")
    (events / "2024-03-01.jsonl").write_bytes(started)
    assert written_by_demo(root, "s1")  # the oldest partition, not the newest
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "2024-03-01.jsonl").write_bytes(started)
    (root / "logs" / "events" / "s2").symlink_to(elsewhere, target_is_directory=True)
    assert not written_by_demo(root, "s2")
    (events / "2024-03-01.jsonl").unlink()
    (events / "2024-03-01.jsonl").symlink_to(elsewhere / "2024-03-01.jsonl")
    assert not written_by_demo(root, "s1")
