"""``make bench``: every benchmark, one table, and the machine it ran on.

ENSEMBLE_BENCH_QUICK=1 runs shorter (fewer rounds and bars); the table is also written to
bench/_out/results.md. ``--soak`` also runs the soaks (soak_sigkill.py, soak_outage.py:
several minutes each; their own reports, not table rows).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import closing_bar
import events
import memory
import outage_latency
import per_bar
import replay
import shutdown
import startup
from _common import OUT_DIR, RESULTS, machine, save, table


def main() -> int:
    parser = argparse.ArgumentParser(description="every benchmark, one table")
    parser.add_argument("--soak", action="store_true", help="also run the soak scripts")
    args = parser.parse_args()
    m = machine()
    print(f"machine: nproc={m['nproc']}, CPU: {m['cpu']}, {m['python']}, {m['platform']}")
    for module in (per_bar, closing_bar, replay, startup, events, memory, outage_latency,
                   shutdown):
        print(f"\n## {module.__name__}", flush=True)
        module.main()
    soaks = ("soak_sigkill.py", "soak_outage.py") if args.soak else ()
    for script in ("validate_bench.py", "report_bench.py", *soaks):  # reports of their own
        print(f"\n## {script}", flush=True)
        subprocess.run([sys.executable, str(Path(__file__).resolve().parent / script)], check=False)
    text = table()
    print("\n" + text)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "results.md").write_text(
        f"nproc={m['nproc']}, CPU: {m['cpu']}, {m['python']}\n\n{text}\n")
    save("all", RESULTS)
    missed = [r for r in RESULTS if r.met is False]
    for r in missed:
        print(f"MISSED: {r.bench}: {r.measure} ({r.ratio or r.value:.3f} vs {r.target})")
    return 0  # a missed target is reported, with its profile, not a failed run


if __name__ == "__main__":
    sys.exit(main())
