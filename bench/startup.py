"""Start-up: a fresh interpreter until the first heartbeat is on disk.

Measured: ``python -c "import ensemble_otel; ensemble_otel.configure()"`` (OTLP not
configured, so no exporter is imported) from spawning the process to ``configure()``
returning (the start-up beat is on disk by then), against a bare SDK ``MeterProvider`` with
the OTLP metric exporter imported (HTTP/protobuf and gRPC, each its own baseline). Each
child prints ``time.monotonic_ns()`` (one clock for all processes on Linux) and leaves with
``os._exit`` so teardown is not counted; whole-process wall time is reported too. Fresh
subprocesses, interleaved, medians.

Target: <= 1.1x the HTTP baseline (the lighter, stricter one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import QUICK, Row, median, print_rows, row, save

_END = "import os, time; print(time.monotonic_ns(), flush=True); os._exit(0)"
PROGRAMS = {
    "ensemble_otel.configure()": "import ensemble_otel; ensemble_otel.configure(); " + _END,
    "SDK MeterProvider + OTLP/HTTP exporter imported": (
        "from opentelemetry.sdk.metrics import MeterProvider; "
        "from opentelemetry.exporter.otlp.proto.http.metric_exporter import "
        "OTLPMetricExporter; MeterProvider(); " + _END),
    "SDK MeterProvider + OTLP/gRPC exporter imported": (
        "from opentelemetry.sdk.metrics import MeterProvider; "
        "from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import "
        "OTLPMetricExporter; MeterProvider(); " + _END),
    "python -c pass (interpreter alone)": "pass; " + _END,
}


def _env(root: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "ENSEMBLE_")) and k != "PAPER_TRADING_ROOT"}
    env["PAPER_TRADING_ROOT"] = root
    env["ENSEMBLE_STRATEGY_ID"] = "bench-startup"
    return env


def run_once(code: str, env: dict[str, str]) -> tuple[float, float]:
    """(ms until the child's marker, ms until the process exited)."""
    t0 = time.monotonic_ns()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    t1 = time.monotonic_ns()
    marker = int(out.stdout.strip().splitlines()[-1])
    return (marker - t0) / 1e6, (t1 - t0) / 1e6


def main() -> list[Row]:
    runs = 8 if QUICK else 30
    times: dict[str, list[float]] = {name: [] for name in PROGRAMS}
    walls: dict[str, list[float]] = {name: [] for name in PROGRAMS}
    with tempfile.TemporaryDirectory(prefix="ensemble-bench-") as tmp:
        env = _env(tmp)
        for code in PROGRAMS.values():  # warm the page cache and the bytecode caches
            run_once(code, env)
        for _ in range(runs):
            for name, code in PROGRAMS.items():
                ready, wall = run_once(code, env)
                times[name].append(ready)
                walls[name].append(wall)
        beat = Path(tmp) / "logs" / "heartbeat" / "bench-startup.json"
        assert beat.is_file(), "configure() left no heartbeat"
    ours = median(times["ensemble_otel.configure()"])
    http = median(times["SDK MeterProvider + OTLP/HTTP exporter imported"])
    grpc = median(times["SDK MeterProvider + OTLP/gRPC exporter imported"])
    rows = [row("start-up", f"{name} (median of {runs}; process exit "
                f"{median(walls[name]):.0f} ms)", median(times[name]), "ms")
            for name in PROGRAMS if name != "ensemble_otel.configure()"]
    rows.append(row("start-up", "configure() until the first heartbeat is on disk", ours, "ms",
                    baseline="SDK + OTLP/HTTP", base_value=http, at_most=1.1))
    rows.append(row("start-up", "configure() until the first heartbeat is on disk", ours, "ms",
                    baseline="SDK + OTLP/gRPC", base_value=grpc))
    return rows


if __name__ == "__main__":
    rows = main()
    print_rows(rows)
    save("startup", rows)
