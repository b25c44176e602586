"""A bot that queues OTLP work and then stops: how long does stopping take?

Run as ``python shutdown_bot.py MODE [TIMEOUT]`` with ``PAPER_TRADING_ROOT``,
``ENSEMBLE_STRATEGY_ID`` and the ``OTEL_EXPORTER_OTLP_*`` variables set. It records 30
bars (an hour closes), emits 5,000 events (more than one log batch queued), then:

- ``explicit``: prints ``stopping``, calls ``ensemble_otel.shutdown(timeout=TIMEOUT)`` and
  prints ``shutdown_s=<seconds>``;
- ``exit``: prints ``exiting unix=<time.time()>`` and ends; the shutdown at interpreter
  exit runs with its default timeout (the caller times the process's end).
"""

from __future__ import annotations

import sys
import time

import ensemble_otel


def main() -> None:
    mode = sys.argv[1]
    telemetry = ensemble_otel.configure()
    for i in range(30):
        telemetry.health.maybe_emit(1_700_000_000.0 + 180.0 * i, equity=100.0 + i,
                                    traded_notional=1.0)
    for i in range(5000):
        telemetry.events.emit("tick", i=i)
    if mode == "explicit":
        timeout = float(sys.argv[2])
        print("stopping", flush=True)
        started = time.monotonic()
        ensemble_otel.shutdown(timeout=timeout)
        print(f"shutdown_s={time.monotonic() - started:.3f}", flush=True)
    else:
        print(f"exiting unix={time.time():.6f}", flush=True)


if __name__ == "__main__":
    main()
