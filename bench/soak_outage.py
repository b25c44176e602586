"""Outage soak: minutes of bars in real time while the OTLP endpoint flaps.

The paced bot (tests/reliability/paced_bot.py: a bar every 5 ms of wall time, an event
every 10 bars) exports OTLP metrics and logs to one loopback port whose behaviour changes
every ``--phase`` seconds: healthy (answers at once), refusing (nothing listens),
black-holing (accepts, never answers), slow (answers after 2 s), healthy again, and so on.
The exporter keeps the SDK's default timeout (10 s) unless ``--timeout`` says otherwise.

Printed per protocol: resident memory over time; per-bar percentiles (bars that close
nothing, closing bars) and ``emit()`` percentiles against a run with OTLP off of the same
length; the export requests each phase received (does export resume after an outage, and
how soon); export warnings on stderr against one per 60 s; the records against a run with
OTLP off (every hourly and daily record, equal); how long shutdown took.

    .venv/bin/python bench/soak_outage.py [--minutes 3] [--phase 15] [--protocol both]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reliability"))

from _common import fresh_dir
from otlp_endpoints import BlackHole, Endpoint, Refusing, free_port, slow
from outage_support import PROTOCOLS, Run, otlp_env, run_paced
from reliability_support import records

PHASES = ("healthy", "refusing", "black-hole", "slow")
SLOW_DELAY_S = 2.0


class Flapper:
    """Changes what listens on one port every ``phase_s`` seconds, in a thread."""

    def __init__(self, protocol: str, phase_s: float) -> None:
        self.protocol = protocol
        self.phase_s = phase_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log: list[dict[str, Any]] = []  # one entry per phase
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flapper", daemon=True)
        self._t0 = time.monotonic()

    def _endpoint(self, kind: str) -> Endpoint:
        if kind == "refusing":
            return Refusing(self.port)
        if kind == "black-hole":
            return BlackHole(self.port)
        return slow(self.protocol, SLOW_DELAY_S if kind == "slow" else 0.0, self.port)

    def _run(self) -> None:
        for kind in itertools.cycle(PHASES):
            if self._stop.is_set():
                return
            start = time.monotonic() - self._t0
            endpoint = None
            for _ in range(50):  # the port may linger a moment after the last phase
                try:
                    endpoint = self._endpoint(kind)
                    break
                except OSError:
                    time.sleep(0.1)
            if endpoint is None:
                self.log.append({"phase": kind, "start": start, "error": "could not bind"})
                continue
            with endpoint:
                self._stop.wait(self.phase_s)
            self.log.append({"phase": kind, "start": round(start, 1),
                             "requests": dict(endpoint.requests)})

    def __enter__(self) -> Flapper:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _pcts(values: list[float]) -> str:
    ordered = sorted(values)

    def q(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return (f"p50 {q(0.5):8.1f}  p99 {q(0.99):8.1f}  p99.9 {q(0.999):8.1f}  "
            f"max {ordered[-1]:9.1f} us  (n={len(ordered)})")


def report(run: Run, off: Run, flapper: Flapper) -> list[str]:
    """Print the soak's figures; return the violations found."""
    bad: list[str] = []
    print(f"\n== {run.label}: {run.timings['run_s']:.0f} s of bars, shutdown "
          f"{run.timings['shutdown_ms'] / 1000:.1f} s")
    print("resident memory (s: MB):  " + "  ".join(
        f"{t:.0f}: {mb:.1f}" for t, mb in run.rss_mb))
    growth = run.rss_growth_mb()
    print(f"RSS growth after the first quarter: {growth:.1f} MB")
    for kind in ("quiet", "closing", "emit"):
        print(f"{kind:8s} flapping  {_pcts(getattr(run, f'{kind}_us'))}")
        print(f"{'':8s} OTLP off  {_pcts(getattr(off, f'{kind}_us'))}")
    for kind in ("quiet", "closing"):
        ratio = run.median(kind) / off.median(kind)
        print(f"median {kind} bar vs OTLP off: {ratio:.2f}x")
    print("phases (start s, what listened, requests received):")
    for entry in flapper.log:
        print(f"  {entry['start']:7.1f}  {entry['phase']:10s}  "
              f"{entry.get('requests', entry.get('error'))}")
    warnings = run.warnings()
    allowed = math.floor(run.wall_s / 60) + 1
    print(f"export warnings on stderr: {len(warnings)} (at most {allowed} at one a minute)")
    other = [line for line in run.stderr.splitlines() if line.strip() and line not in warnings]
    if len(warnings) > allowed:
        bad.append(f"{len(warnings)} warnings > {allowed}")
    if other:
        bad.append(f"other stderr lines: {other[:5]}")
    for period in ("1h", "24h"):
        got, want = records(run.root, period), records(off.root, period)
        print(f"{period} records: {len(got)} (OTLP off: {len(want)}), equal: {got == want}")
        if got != want:
            bad.append(f"{period} records differ from OTLP off")
    if run.stat("quiet", -1) > 50_000 or run.stat("closing", -1) > 50_000:
        bad.append("a bar took more than 50 ms")
    if run.stat("emit", -1) > 50_000:
        bad.append("an emit() took more than 50 ms")
    healthy_after_outage = [e for e in flapper.log[1:] if e["phase"] == "healthy"]
    if healthy_after_outage and not any(e.get("requests", {}).get("/v1/metrics")
                                        for e in healthy_after_outage):
        bad.append("no metrics export reached a healthy endpoint after an outage")
    for b in bad:
        print(f"VIOLATION: {b}")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--phase", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--pace", type=float, default=0.005, help="seconds between bars")
    parser.add_argument("--interval-ms", type=int, default=500, help="metric export interval")
    parser.add_argument("--timeout", type=float, default=10.0, help="OTLP export timeout, s")
    parser.add_argument("--protocol", choices=[*PROTOCOLS, "both"], default="both")
    args = parser.parse_args()
    protocols = PROTOCOLS if args.protocol == "both" else (args.protocol,)
    bars = int(args.minutes * 60 / args.pace)
    bot = {"bars": str(bars), "pace": str(args.pace), "event_every": "10",
           "rss_every": "10", "beat": "1"}
    out = fresh_dir("soak_outage")
    print(f"{bars} bars, one every {args.pace * 1000:g} ms; phases of {args.phase:g} s: "
          f"{', '.join(PHASES)}; export interval {args.interval_ms} ms, timeout "
          f"{args.timeout:g} s", flush=True)
    off = run_paced(out / "off", "OTLP off", {}, timeout=args.minutes * 60 + 300, **bot)
    if off.returncode != 0:
        print(off.stderr[-3000:])
        return 1
    violations: list[str] = []
    for protocol in protocols:
        flapper = Flapper(protocol, args.phase)
        with flapper:
            run = run_paced(out / protocol.split("/")[0], f"flapping {protocol}",
                            otlp_env(flapper.url, protocol, interval_ms=args.interval_ms,
                                     timeout_s=args.timeout),
                            timeout=args.minutes * 60 + 300, **bot)
        if run.returncode != 0:
            print(run.stderr[-3000:])
            violations.append(f"{protocol}: the bot failed")
            continue
        with contextlib.suppress(KeyboardInterrupt):
            violations += [f"{protocol}: {v}" for v in report(run, off, flapper)]
    print(f"\n{len(violations)} violation(s)")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
