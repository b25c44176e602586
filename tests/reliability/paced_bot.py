"""A paper bot whose bars arrive in real time, for the collector-outage tests and soaks.

The bar series is ``replay_bot.bar`` (10-minute bars from 2024-01-01); bars are spaced
``BOT_PACE`` seconds of wall-clock time apart (the export and heartbeat threads run in
between, as in a live bot). Settings come from the environment (PAPER_TRADING_ROOT,
ENSEMBLE_STRATEGY_ID, OTEL_*); besides:

- ``BOT_BARS`` bars (default 1500), ``BOT_PACE`` seconds between bars (default 0.002),
  ``BOT_STEP`` bar-time seconds between bars (default 600), ``BOT_BEAT`` heartbeat interval;
- ``BOT_EVENT_EVERY``: one event every that many bars (default 10);
- ``BOT_BURST``: that many events in one go after the first tenth of the bars (default 0;
  more than the OTLP log queue holds shows whether ``emit()`` waits for the exporter);
- ``BOT_RSS_EVERY``: seconds between resident-memory samples (default 0.25);
- ``BOT_TIMINGS``: where the measurements go (JSON): per-bar call times in ns (bars that
  closed nothing and closing bars apart), ``emit()`` times, the burst's time, RSS samples
  ``[seconds since the first bar, kB]``, the run's and the shutdown's duration.
"""

from __future__ import annotations

import json
import os
import sys
import time

from replay_bot import T0, bar, rss_kb


def main() -> int:
    import ensemble_otel

    bars = int(os.environ.get("BOT_BARS", "1500"))
    pace = float(os.environ.get("BOT_PACE", "0.002"))
    step = float(os.environ.get("BOT_STEP", "600"))
    every = int(os.environ.get("BOT_EVENT_EVERY", "10"))
    burst = int(os.environ.get("BOT_BURST", "0"))
    rss_every = float(os.environ.get("BOT_RSS_EVERY", "0.25"))
    timings_path = os.environ.get("BOT_TIMINGS")

    telemetry = ensemble_otel.configure(heartbeat_interval=float(os.environ.get("BOT_BEAT", "0.1")))
    health, emit = telemetry.health, telemetry.events.emit
    series = [bar(i) for i in range(bars)]
    quiet: list[int] = []  # bars that closed nothing
    closing: list[int] = []
    emits: list[int] = []
    burst_ns = 0
    rss: list[tuple[float, int]] = []
    clock = time.perf_counter_ns
    start = time.monotonic()
    next_rss = start
    for i in range(bars):
        due = start + i * pace
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        t0 = clock()
        written = health.maybe_emit(T0 + i * step, **series[i])  # type: ignore[arg-type]
        elapsed = clock() - t0
        (closing if written else quiet).append(elapsed)
        if i % every == 0:
            t0 = clock()
            emit("bar_done", bar=i)
            emits.append(clock() - t0)
        if burst and i == bars // 10:
            t0 = clock()
            for k in range(burst):
                emit("burst", k=k)
            burst_ns = clock() - t0
        if now >= next_rss:
            rss.append((round(now - start, 3), rss_kb()))
            next_rss = now + rss_every
    run_s = time.monotonic() - start
    rss.append((round(run_s, 3), rss_kb()))
    t0 = clock()
    ensemble_otel.shutdown()
    shutdown_ms = (clock() - t0) / 1e6
    if timings_path:
        with open(timings_path, "w") as fh:
            json.dump({"quiet": quiet, "closing": closing, "emits": emits,
                       "burst_ns": burst_ns, "burst": burst, "rss": rss, "run_s": run_s,
                       "shutdown_ms": shutdown_ms}, fh)
    print("done", bars, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
