"""Shutdown wall time against a dead collector, vs the timeout it was given.

A bot (tests/reliability/shutdown_bot.py: 30 bars, 5,000 events queued for OTLP logs, a
final metric export due) stops while its OTLP endpoint black-holes (accepts TCP, never
answers) or refuses (closed port), over gRPC and over HTTP/protobuf, with the exporters'
default 10 s timeout. Two ways of stopping:

- ``ensemble_otel.shutdown(timeout=2.0)``: the call's duration;
- the shutdown at interpreter exit (default timeout ``DEFAULT_SHUTDOWN_TIMEOUT``, 2 s):
  from the script's last line to the process's end, interpreter teardown included.

Target: <= timeout + 0.5 s in every case. Also printed: when the ``stopped`` beat was on
disk (seconds after the stop began), which must come before the network flush gives up.
Each case runs ``--rounds`` times (default 3, 1 with ENSEMBLE_BENCH_QUICK); the worst is
kept.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reliability"))

from _common import QUICK, Row, print_rows, row, save
from otlp_endpoints import BlackHole, Endpoint, Refusing
from outage_support import PROTOCOLS
from shutdown_support import run_stop

from ensemble_otel._process import DEFAULT_SHUTDOWN_TIMEOUT

TIMEOUT_S = 2.0
SLACK_S = 0.5


def _endpoint(kind: str) -> Endpoint:
    return BlackHole() if kind == "black-hole" else Refusing()


def main(rounds: int | None = None) -> list[Row]:
    rounds = rounds or (1 if QUICK else 3)
    rows: list[Row] = []
    print(f"{'protocol':<14}{'endpoint':<12}{'stop':<10}{'timeout':>8}{'worst s':>9}"
          f"{'stopped beat on disk after s':>30}")
    for protocol in PROTOCOLS:
        for kind in ("black-hole", "refusing"):
            for mode in ("explicit", "exit"):
                timeout = TIMEOUT_S if mode == "explicit" else DEFAULT_SHUTDOWN_TIMEOUT
                worst, beat_at = 0.0, 0.0
                for _ in range(rounds):
                    with tempfile.TemporaryDirectory(prefix="ensemble-bench-") as tmp:
                        root = Path(tmp) / "root"
                        root.mkdir()
                        with _endpoint(kind) as endpoint:
                            stop = run_stop(root, endpoint.url, protocol, mode, timeout)
                    worst = max(worst, stop.seconds)
                    beat_at = max(beat_at, stop.stopped_on_disk_after_s or float("nan"))
                print(f"{protocol:<14}{kind:<12}{mode:<10}{timeout:>8.1f}{worst:>9.3f}"
                      f"{beat_at:>30.3f}", flush=True)
                rows.append(row("shutdown", f"{mode} stop, {protocol}, {kind}", worst, "s",
                                baseline=f"timeout {timeout:g} s", at_most=timeout + SLACK_S,
                                target=f"<= {timeout + SLACK_S:g} s"))
    print_rows(rows)
    save("shutdown", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    main(args.rounds)
