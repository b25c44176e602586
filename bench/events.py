"""``events.emit()``: one JSONL line (and, with OTLP on, one OTel log record) per event.

OTLP off: ``emit()`` against ``orjson.dumps`` of the same record plus one ``os.write`` to a
file opened with ``O_APPEND`` (target <= 2x). OTLP on (the endpoint a loopback port where
nothing listens, the SDK's batch processor exporting in the background): the cost per
event, and where it goes (cProfile of the calling thread, top functions by own time).
"""

from __future__ import annotations

import cProfile
import gc
import io
import os
import pstats
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import QUICK, Row, fresh_dir, print_rows, row, save

FIELDS: dict[str, Any] = {"symbol": "EURUSD", "side": "buy", "qty": 1000, "price": 1.0875}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _best(fn: Any, n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def main() -> list[Row]:
    import orjson

    import ensemble_otel

    n = 2_000
    rounds = 10 if QUICK else 40
    rows: list[Row] = []

    root = fresh_dir("events_off")
    telemetry = ensemble_otel.configure(root=root, strategy_id="bench-events",
                                        heartbeat_interval=3600, otlp_metrics=False,
                                        otlp_logs=False)
    emit = telemetry.events.emit
    record = emit("order_filled", **FIELDS)  # the same dict the baseline writes
    fd = os.open(root / "baseline.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    opt = orjson.OPT_APPEND_NEWLINE
    dumps, write = orjson.dumps, os.write

    def baseline(k: int) -> None:
        for _ in range(k):
            write(fd, dumps(record, option=opt))

    def ours(k: int) -> None:
        for _ in range(k):
            emit("order_filled", symbol="EURUSD", side="buy", qty=1000, price=1.0875)

    gc.disable()
    best = {"baseline": float("inf"), "emit": float("inf")}
    for _ in range(rounds):  # interleaved rounds, best of each
        best["baseline"] = min(best["baseline"], _best(baseline, n, 1))
        best["emit"] = min(best["emit"], _best(ours, n, 1))
    gc.enable()
    os.close(fd)
    ensemble_otel.shutdown()
    rows.append(row("events", "baseline: orjson.dumps + os.write of the same record",
                    best["baseline"] / 1000, "us"))
    rows.append(row("events", "emit(), OTLP off", best["emit"] / 1000, "us",
                    baseline="orjson + write", base_value=best["baseline"] / 1000,
                    at_most=2.0))

    # OTLP on: logs exported by the SDK's BatchLogRecordProcessor to a refused loopback port
    root = fresh_dir("events_on")
    endpoint = f"http://127.0.0.1:{_free_port()}"
    saved = {k: os.environ.get(k) for k in ("OTEL_EXPORTER_OTLP_PROTOCOL",)}
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    try:
        telemetry = ensemble_otel.configure(root=root, strategy_id="bench-events-otlp",
                                            heartbeat_interval=3600, otlp_endpoint=endpoint,
                                            otlp_metrics=False, otlp_logs=True)
        emit = telemetry.events.emit
        emit("order_filled", **FIELDS)
        on = min(_best(ours, n, 1) for _ in range(max(3, rounds // 4)))
        profiler = cProfile.Profile()
        profiler.enable()
        ours(n)
        profiler.disable()
    finally:
        ensemble_otel.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    rows.append(row("events", "emit(), OTLP logs on (loopback, refused)", on / 1000, "us",
                    baseline="emit(), OTLP off", base_value=best["emit"] / 1000))
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(12)
    print("where emit() with OTLP on spends its time (cProfile, own time, "
          f"{n} events):")
    print("\n".join(line for line in out.getvalue().splitlines()
                    if line.strip() and not line.startswith(("   Ordered", "   List"))))
    return rows


if __name__ == "__main__":
    rows = main()
    print_rows(rows)
    save("events", rows)
