"""A paper bot driven line by line from stdin, for the full-disk and unwritable-root tests.

The bar series is ``replay_bot.bar`` (10-minute bars from 2024-01-01), with one event every
``BOT_EVENT_EVERY`` bars (default 5). Settings come from the environment
(PAPER_TRADING_ROOT, ENSEMBLE_STRATEGY_ID, OTEL_*; ``BOT_BEAT`` is the heartbeat interval).
Commands, one per line; each is answered with one line on stdout:

- ``bars N``: the next N bars; answers ``ok <bars so far> <records returned>``;
- ``quit``: shutdown; answers ``bye``.

Nothing catches exceptions here: one raised by the telemetry ends the bot with a traceback.
"""

from __future__ import annotations

import os
import sys

from replay_bot import T0, bar


def main() -> int:
    import ensemble_otel

    step = float(os.environ.get("BOT_STEP", "600"))
    every = int(os.environ.get("BOT_EVENT_EVERY", "5"))
    beat = float(os.environ.get("BOT_BEAT", "0.05"))
    telemetry = ensemble_otel.configure(heartbeat_interval=beat)
    health, emit = telemetry.health, telemetry.events.emit
    i = 0
    returned = 0
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "bars":
            for _ in range(int(args[0])):
                returned += len(health.maybe_emit(T0 + i * step, **bar(i)))  # type: ignore[arg-type]
                if i % every == 0:
                    emit("bar_done", bar=i)
                i += 1
            print(f"ok {i} {returned}", flush=True)
        elif command == "quit":
            break
        else:
            print(f"unknown command {command!r}", flush=True)
    ensemble_otel.shutdown()
    print("bye", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
