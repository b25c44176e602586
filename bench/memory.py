"""Memory: a million bars with the OTLP endpoint unreachable.

Each protocol runs in a fresh process: OTLP metrics and logs point at a loopback port where
nothing listens (connections refused), the export interval is short (200 ms), bars are a
minute apart (so ~16,700 hour and ~700 day closes, with events now and then). Resident
memory (VmRSS) is read after a warm-up of 100,000 bars and at the end. Target: it grows by
at most 20 MB.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import QUICK, Row, fresh_dir, print_rows, row, save

T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child(bars: int, warmup: int) -> None:
    import logging

    import ensemble_otel

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    telemetry = ensemble_otel.configure(heartbeat_interval=1.0)
    health, emit = telemetry.health, telemetry.events.emit
    start = rss_mb()
    warm = start
    t0 = time.monotonic()
    for i in range(bars):
        if i == warmup:
            warm = rss_mb()
        equity = 10_000.0 + (i % 997) - 498.0
        health.maybe_emit(T0 + i * 60.0, equity=equity, realized_pnl=1.0, unrealized_pnl=-2.0,
                          traded_notional=100.0 if i % 5 == 0 else 0.0, risk_breaches=0,
                          risk_warnings=1 if i % 1000 == 0 else 0, open_positions=1)
        if i % 10_000 == 0:
            emit("checkpoint", bar=i)
    elapsed = time.monotonic() - t0
    end = rss_mb()
    failures = sum(g.failures for g in telemetry._guarded)
    print(json.dumps({"start": start, "warm": warm, "end": end, "seconds": elapsed,
                      "export_failures": failures}), flush=True)
    os._exit(0)  # shutdown against a dead endpoint is not what is measured here


def main() -> list[Row]:
    bars = 200_000 if QUICK else 1_000_000
    warmup = 20_000 if QUICK else 100_000
    rows: list[Row] = []
    for protocol in ("grpc", "http/protobuf"):
        root = fresh_dir(f"memory_{protocol.replace('/', '_')}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ENSEMBLE_"))}
        env.update({
            "PAPER_TRADING_ROOT": str(root),
            "ENSEMBLE_STRATEGY_ID": "bench-memory",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        })
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(bars), str(warmup)], env=env,
            capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        warnings = [line for line in out.stderr.splitlines() if line.strip()]
        growth = result["end"] - result["warm"]
        rows.append(row("memory", f"RSS growth, {bars:,} bars, OTLP {protocol} refused "
                        f"(after warm-up {result['warm']:.0f} MB -> {result['end']:.0f} MB; "
                        f"{result['seconds']:.0f} s, {result['export_failures']} failed "
                        f"exports, {len(warnings)} stderr lines)", growth, "MB", at_most=20.0))
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        rows = main()
        print_rows(rows)
        save("memory", rows)
