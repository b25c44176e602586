"""The bar that closes a bucket: build the 1h record (and at midnight the 24h one) from the
view table, append the state to the journal (write-ahead), append the records.

Baseline, same run: ``orjson.dumps`` of the same records plus one ``os.write`` each to a
file opened with ``O_APPEND`` (the least a durable JSONL writer does). Microseconds per
closing bar, median over many hours, and the ratio to the baseline (target: <= 10x).
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import QUICK, Row, fresh_dir, median, print_rows, row, save

T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def _baseline_ns(records: list[dict[str, Any]], fd: int) -> int:
    import orjson

    opt = orjson.OPT_APPEND_NEWLINE
    t0 = time.perf_counter_ns()
    for record in records:
        os.write(fd, orjson.dumps(record, option=opt))
    return time.perf_counter_ns() - t0


def main() -> list[Row]:
    import ensemble_otel

    hours = 300 if QUICK else 2400  # 100 days: 100 day closes
    root = fresh_dir("closing_bar")
    telemetry = ensemble_otel.configure(
        root=root, strategy_id="bench-closing", heartbeat_interval=3600,
        otlp_metrics=False, otlp_logs=False)
    health = telemetry.health
    sink = os.open(root / "baseline.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    timings: dict[int, list[int]] = {1: [], 2: []}  # by records written
    base: dict[int, list[int]] = {1: [], 2: []}
    health.maybe_emit(T0 + 60.0, equity=10_000.0)
    gc.disable()
    try:
        for h in range(1, hours + 1):
            start = T0 + h * 3600.0
            equity = 10_000.0 + (h * 37 % 101) - 50.0
            t0 = time.perf_counter_ns()
            written = health.maybe_emit(
                start, equity=equity, realized_pnl=1.0, unrealized_pnl=-2.0,
                traded_notional=100.0, risk_breaches=0, risk_warnings=0, open_positions=1)
            elapsed = time.perf_counter_ns() - t0
            if h > 3 and written:  # the first closes warm caches and open the files
                timings[len(written)].append(elapsed)
                base[len(written)].append(_baseline_ns(written, sink))
            for minute in (15, 30, 45):  # untimed bars inside the hour
                health.maybe_emit(start + minute * 60.0, equity=equity + minute,
                                  realized_pnl=1.0, unrealized_pnl=-2.0, traded_notional=10.0,
                                  risk_breaches=0, risk_warnings=0, open_positions=1)
    finally:
        gc.enable()
        os.close(sink)
    ensemble_otel.shutdown()

    rows = []
    for n, label in ((1, "1h record"), (2, "1h + 24h records")):
        closing = median(timings[n]) / 1000
        floor = median(base[n]) / 1000
        rows.append(row("closing bar", f"baseline: orjson.dumps + os.write, {label}", floor, "us"))
        rows.append(row("closing bar", f"maybe_emit closing {label} (median of "
                        f"{len(timings[n])})", closing, "us", baseline="orjson + write",
                        base_value=floor, at_most=10.0))
    return rows


if __name__ == "__main__":
    rows = main()
    print_rows(rows)
    save("closing_bar", rows)
