"""A bot that stops dead (``os._exit``) at one named step of the health store.

    python crash_bot.py ROOT STEP N

replays ``series()`` from where its state says (bars after the last one kept), saves the
state every SAVE_EVERY bars as a beat would, and exits with code 86 at the N-th time the
store reaches STEP (``ensemble_otel.health.store.STEPS``, or ``save:during-replace``: the
temp file is written, the rename has not happened). STEP ``none`` runs to the end and shuts
down cleanly. Exit 0 means the step was never reached.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

STRATEGY = "crash-bot"
SAVE_EVERY = 25
CRASHED = 86


def series() -> list[tuple[float, dict[str, float | int]]]:
    """10-minute bars over two and a half days from 2024-03-01T00:05Z."""
    t0 = 1_709_251_500.0
    out = []
    for i in range(360):
        out.append((t0 + 600.0 * i, {
            "equity": 1000.0 + 37 * ((i * 7) % 13) - 2.5 * i,
            "traded_notional": float((i * 11) % 5),
            "risk_warnings": i % 2,
            "open_positions": i % 3,
        }))
    return out


def main(root: str, step: str, nth: int) -> int:
    import ensemble_otel

    telemetry = ensemble_otel.configure(root=root, strategy_id=STRATEGY,
                                        heartbeat_interval=3600, otlp_metrics=False,
                                        otlp_logs=False)
    health = telemetry.health
    seen = [0]

    def crash_here(name: str) -> None:
        if name == step:
            seen[0] += 1
            if seen[0] == nth:
                os._exit(CRASHED)

    health._store.hook = crash_here
    if step == "save:during-replace":
        state_file = str(health.state_path)
        real_replace = os.replace

        def replace(src: Any, dst: Any, **dir_fds: Any) -> None:
            where = os.fspath(dst)
            if "dst_dir_fd" in dir_fds:  # renamed within its directory's descriptor
                where = os.path.join(os.readlink(f"/proc/self/fd/{dir_fds['dst_dir_fd']}"),
                                     where)
            if where == state_file:
                crash_here(step)
            real_replace(src, dst, **dir_fds)

        os.replace = replace  # type: ignore[assignment]
    for i, (ts, fields) in enumerate(series()):
        if ts > health.last_ts:
            health.maybe_emit(ts, **fields)
        if i % SAVE_EVERY == SAVE_EVERY - 1:
            health.save_state()
    ensemble_otel.shutdown()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
