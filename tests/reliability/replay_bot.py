"""A paper bot for the reliability tests: replays a fixed bar series from where it stopped.

It reads the bar time of the last bar the telemetry kept (``health.last_ts``, restored
from the state file or the records) and continues with the next bar of the same series,
so a run killed at any moment and restarted yields the same records as one run. Settings
come from the environment (PAPER_TRADING_ROOT, ENSEMBLE_STRATEGY_ID, OTEL_*); BOT_BARS,
BOT_STEP (seconds between bars), BOT_BEAT (heartbeat interval) and BOT_EVENT_EVERY shape
the run; BOT_LAZY=1 makes each bar when it is due instead of all before the first (a long
series then starts at once). With BOT_TIMINGS=path the per-bar call times (ns) and RSS are
written there.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def bar(i: int) -> dict[str, float | int | None]:
    """Bar i of the series (deterministic, with drawdowns and recoveries)."""
    x = (i * 2654435761) % 2**32 / 2**32  # a cheap hash in [0, 1)
    equity = 10_000.0 * (1.0 + 0.2 * math.sin(i / 97.0) + 0.05 * math.sin(i / 7.0) + 0.01 * x)
    return {
        "equity": equity,
        "realized_pnl": round(100.0 * math.sin(i / 31.0), 6),
        "unrealized_pnl": None if i % 11 == 0 else round(50.0 * x - 25.0, 6),
        "traded_notional": 0.0 if i % 3 else round(1000.0 * x, 6),
        "risk_breaches": 1 if i % 101 == 0 else 0,
        "risk_warnings": 1 if i % 13 == 0 else 0,
        "open_positions": i % 4,
    }


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    import ensemble_otel

    bars = int(os.environ.get("BOT_BARS", "3000"))
    step = float(os.environ.get("BOT_STEP", "600"))
    every = int(os.environ.get("BOT_EVENT_EVERY", "50"))
    timings_path = os.environ.get("BOT_TIMINGS")
    telemetry = ensemble_otel.configure(
        heartbeat_interval=float(os.environ.get("BOT_BEAT", "0.05")))
    health = telemetry.health
    last = health.last_ts
    start = 0 if last == -math.inf else round((last - T0) / step) + 1
    lazy = os.environ.get("BOT_LAZY", "") == "1"
    series = [] if lazy else [bar(i) for i in range(start, bars)]
    times: list[int] = []
    closing: list[int] = []
    rss_start = rss_kb()
    clock = time.perf_counter_ns
    for n, i in enumerate(range(start, bars)):
        t0 = clock()
        values = bar(i) if lazy else series[n]
        written = health.maybe_emit(T0 + i * step, **values)  # type: ignore[arg-type]
        elapsed = clock() - t0
        (closing if written else times).append(elapsed)
        if i % every == 0:
            telemetry.events.emit("bar_done", bar=i)
    rss_end = rss_kb()
    t0 = clock()
    ensemble_otel.shutdown()
    shutdown_ms = (clock() - t0) / 1e6
    if timings_path:
        with open(timings_path, "w") as fh:
            json.dump({"times": times, "closing": closing, "rss_start_kb": rss_start,
                       "rss_end_kb": rss_end, "shutdown_ms": shutdown_ms,
                       "start": start}, fh)
    print("done", start, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
