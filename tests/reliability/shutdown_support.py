"""Runs of ``shutdown_bot.py`` against a misbehaving OTLP endpoint, timed from outside.

Shared by ``test_shutdown_bound.py`` and ``bench/shutdown.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BOT = Path(__file__).with_name("shutdown_bot.py")
STRATEGY = "stopping"


@dataclass
class Stop:
    """One stop: how long it took, and what was on disk while the network still hung."""

    mode: str
    seconds: float  # the shutdown() call (explicit) or script end -> process end (exit)
    stopped_on_disk_after_s: float | None  # when the beat said "stopped", from the start
    beat: dict[str, object]
    state: dict[str, object] | None
    events: int
    stderr: str


def bot_env(root: Path, url: str, protocol: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ENSEMBLE_"))}
    env.pop("PAPER_TRADING_ROOT", None)
    env.update(PAPER_TRADING_ROOT=str(root), ENSEMBLE_STRATEGY_ID=STRATEGY,
               OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    return env


def _read_beat(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_stop(root: Path, url: str, protocol: str, mode: str, timeout: float = 2.0) -> Stop:
    """Run the bot to its stop; watch its beat file while it stops."""
    args = [sys.executable, str(BOT), mode] + ([f"{timeout:g}"] if mode == "explicit" else [])
    proc = subprocess.Popen(args, env=bot_env(root, url, protocol), cwd=root.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # "stopping" or "exiting unix=..."
    began, began_unix = time.monotonic(), time.time()
    beat_path = root / "logs" / "heartbeat" / f"{STRATEGY}.json"
    stopped_after: float | None = None
    while proc.poll() is None and time.monotonic() - began < 60:
        if stopped_after is None and (_read_beat(beat_path) or {}).get("state") == "stopped":
            stopped_after = time.monotonic() - began
        time.sleep(0.01)
    ended_unix = time.time()
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"the bot failed ({proc.returncode}):\n{err}")
    if mode == "explicit":
        seconds = float(out.split("shutdown_s=")[1].split()[0])
    else:
        seconds = ended_unix - float(first.split("unix=")[1])
        began_unix = float(first.split("unix=")[1])
    if stopped_after is None and (_read_beat(beat_path) or {}).get("state") == "stopped":
        stopped_after = ended_unix - began_unix  # seen only after the process ended
    state_path = root / "state" / "health" / f"{STRATEGY}.json"
    events = sum(len(p.read_bytes().splitlines())
                 for p in (root / "logs" / "events" / STRATEGY).glob("*.jsonl"))
    return Stop(mode, seconds, stopped_after, _read_beat(beat_path) or {},
                json.loads(state_path.read_text()) if state_path.exists() else None,
                events, err)
