"""Run the paced bot against an OTLP endpoint (or none) and summarise what it measured.

Shared by tests/reliability/test_outage.py and the bench/ outage scripts.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reliability_support import bot_env

HERE = Path(__file__).resolve().parent
PACED_BOT = HERE / "paced_bot.py"
PROTOCOLS = ("grpc", "http/protobuf")
# what an export warning says (the SDK's exporter logs pass the shared filter with this
# prefix; GuardedExporter writes the second)
WARNING_MARKS = ("OTLP export is failing", "OTLP metric export failed")


def otlp_env(url: str | None, protocol: str = "grpc", *, interval_ms: int = 200,
             timeout_s: float = 1.0) -> dict[str, str]:
    """OTEL_* variables for OTLP metrics and logs to ``url`` (None: OTLP off)."""
    if url is None:
        return {}
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_METRIC_EXPORT_INTERVAL": str(interval_ms),
        "OTEL_EXPORTER_OTLP_TIMEOUT": f"{timeout_s:g}",
        # the log batch processor exports every 200 ms too (default 1 s)
        "OTEL_BLRP_SCHEDULE_DELAY": str(interval_ms),
    }


def percentile(values: list[int] | list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[rank - 1])


@dataclass
class Run:
    """One paced-bot run: its measurements, stderr and wall time."""

    label: str
    timings: dict[str, Any]
    stderr: str
    wall_s: float
    returncode: int
    root: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def quiet_us(self) -> list[float]:
        return [t / 1000 for t in self.timings["quiet"]]

    @property
    def closing_us(self) -> list[float]:
        return [t / 1000 for t in self.timings["closing"]]

    @property
    def emit_us(self) -> list[float]:
        return [t / 1000 for t in self.timings["emits"]]

    def stat(self, kind: str, q: float) -> float:
        """``kind`` in quiet, closing, emit; ``q`` a quantile, or -1 for the maximum."""
        values = getattr(self, f"{kind}_us")
        return max(values) if q < 0 else percentile(values, q)

    def median(self, kind: str) -> float:
        return float(statistics.median(getattr(self, f"{kind}_us")))

    @property
    def rss_mb(self) -> list[tuple[float, float]]:
        return [(t, kb / 1024) for t, kb in self.timings["rss"]]

    def rss_growth_mb(self, after: float = 0.25) -> float:
        """Largest RSS minus the RSS at fraction ``after`` of the run (after warm-up)."""
        samples = self.rss_mb
        if not samples:
            return math.nan
        cut = samples[-1][0] * after
        warm = next((mb for t, mb in samples if t >= cut), samples[-1][1])
        return max(mb for t, mb in samples if t >= cut) - warm

    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines()
                if any(mark in line for mark in WARNING_MARKS)]


def run_paced(root: Path, label: str, env: dict[str, str], *, timeout: float = 120.0,
              **bot: str) -> Run:
    """Run paced_bot.py once (fresh ``root``); ``bot`` are BOT_* settings without the prefix."""
    timings_path = root.with_name(root.name + ".timings.json")
    extra = {f"BOT_{k.upper()}": v for k, v in bot.items()}
    extra["BOT_TIMINGS"] = str(timings_path)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(PACED_BOT)], env=bot_env(root, **env, **extra),
                         capture_output=True, text=True, timeout=timeout, cwd=HERE)
    wall = time.monotonic() - t0
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    return Run(label, timings, out.stderr, wall, out.returncode, root)
