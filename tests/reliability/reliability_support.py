"""Helpers for the reliability tests: run the replay bot, read what it wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
BOT = HERE / "replay_bot.py"
STRATEGY = "rel-bot"


def bot_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a bot run: no OTEL_/ENSEMBLE_ variables from the shell."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "ENSEMBLE_")) and k != "PAPER_TRADING_ROOT"}
    env.update({"PAPER_TRADING_ROOT": str(root), "ENSEMBLE_STRATEGY_ID": STRATEGY,
                "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def start_bot(root: Path, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(BOT)], env=bot_env(root, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_bot(root: Path, timeout: float = 120.0, **extra: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, str(BOT)], env=bot_env(root, **extra),
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file parsed; a torn or invalid line fails the test."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path}: last line not terminated"
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise AssertionError(f"{path}:{n}: not JSON ({exc}): {line[:200]!r}") from None
    return out


def records(root: Path, period: str) -> list[dict[str, Any]]:
    directory = root / "logs" / period / "health_snapshot" / STRATEGY
    out: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.jsonl")):
        out.extend(read_lines(path))
    return out


def all_jsonl(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jsonl"))
