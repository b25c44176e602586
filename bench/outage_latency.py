"""Per-bar latency while the collector is down: refusing, black-holing, slow; vs OTLP off.

A paced bot (tests/reliability/paced_bot.py: 2,000 bars one every millisecond of wall time,
an event every 10 bars, a burst of 2,500 events) runs with OTLP metrics and logs going to
a loopback endpoint that refuses connections, black-holes them (accepts, never answers),
answers after 1 s (slow), or answers at once (healthy, for reference), over gRPC and over
HTTP/protobuf, with a 200 ms export interval and a 1 s export timeout (3 s for slow). The
same bot with OTLP off is the baseline. The runs are interleaved round by round (drift and
other load hit all alike); each figure is the median over the rounds of the run's median.

Target: the median bar (a bar that closes nothing, and a closing bar) within 1.2x of OTLP
off. Also printed: the 99th percentile and the slowest bar, the median ``emit()`` against
the healthy endpoint's, the RSS growth after a quarter of the run, export warnings on
stderr, and how long shutdown took.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reliability"))

from _common import QUICK, Row, fresh_dir, print_rows, row, save
from otlp_endpoints import BlackHole, Endpoint, Refusing, slow
from outage_support import PROTOCOLS, Run, otlp_env, run_paced

BOT = {"bars": "2000", "pace": "0.001", "event_every": "10", "burst": "2500", "beat": "1"}
SLOW_DELAY_S = 1.0
TARGET = 1.2
KINDS = ("refusing", "black-hole", "slow", "healthy")


def _endpoint(kind: str, protocol: str) -> Endpoint:
    if kind == "refusing":
        return Refusing()
    if kind == "black-hole":
        return BlackHole()
    return slow(protocol, SLOW_DELAY_S if kind == "slow" else 0.0)


def measure(rounds: int) -> dict[str, list[Run]]:
    """Every scenario ``rounds`` times, interleaved; returns runs by label."""
    out_dir = fresh_dir("outage_latency")
    runs: dict[str, list[Run]] = {}
    for r in range(rounds):
        scenarios: list[tuple[str, Callable[[], Run]]] = [
            ("off", lambda r=r: run_paced(out_dir / f"off-{r}", "off", {}, **BOT))]
        for protocol in PROTOCOLS:
            for kind in KINDS:
                def one(kind: str = kind, protocol: str = protocol, r: int = r) -> Run:
                    with _endpoint(kind, protocol) as endpoint:
                        timeout = 3 * SLOW_DELAY_S if kind == "slow" else 1.0
                        name = f"{kind}-{protocol.split('/')[0]}-{r}"
                        run = run_paced(out_dir / name, f"{kind} {protocol}",
                                        otlp_env(endpoint.url, protocol, timeout_s=timeout),
                                        **BOT)
                        run.extra["requests"] = dict(endpoint.requests)
                        return run
                scenarios.append((f"{kind} {protocol}", one))
        for label, go in scenarios:
            run = go()
            if run.returncode != 0:
                raise SystemExit(f"{label}: the bot failed:\n{run.stderr[-3000:]}")
            runs.setdefault(label, []).append(run)
            print(f"  round {r + 1}/{rounds} {label:26s} quiet p50 {run.median('quiet'):6.2f} us"
                  f"  closing p50 {run.median('closing'):7.1f} us  emit p50 "
                  f"{run.median('emit'):6.1f} us  shutdown {run.timings['shutdown_ms']:6.0f} ms",
                  flush=True)
    return runs


def _med(runs: list[Run], f: Callable[[Run], float]) -> float:
    return float(statistics.median(f(run) for run in runs))


def main(rounds: int | None = None) -> list[Row]:
    rounds = rounds or (1 if QUICK else 2)
    runs = measure(rounds)
    off = runs["off"]
    rows: list[Row] = []
    for kind in ("quiet", "closing"):
        base = _med(off, lambda run, k=kind: run.median(k))  # type: ignore[misc]
        what = "bar closing nothing" if kind == "quiet" else "closing bar"
        rows.append(row("outage", f"OTLP off: median {what}", base, "us"))
        for label, group in runs.items():
            if label == "off" or label.startswith("healthy"):
                continue
            value = _med(group, lambda run, k=kind: run.median(k))  # type: ignore[misc]
            p99 = _med(group, lambda run, k=kind: run.stat(k, 0.99))  # type: ignore[misc]
            worst = max(run.stat(kind, -1) for run in group)
            base99 = _med(off, lambda run, k=kind: run.stat(k, 0.99))  # type: ignore[misc]
            rows.append(row(
                "outage", f"{label}: median {what} (p99 {p99:.0f} us vs {base99:.0f} us off; "
                f"slowest {worst / 1000:.1f} ms)", value, "us", baseline="OTLP off",
                base_value=base, at_most=TARGET))
    for protocol in PROTOCOLS:
        healthy = runs[f"healthy {protocol}"]
        base = _med(healthy, lambda run: run.median("emit"))
        for kind in ("refusing", "black-hole", "slow"):
            group = runs[f"{kind} {protocol}"]
            burst = _med(group, lambda run: run.timings["burst_ns"] / run.timings["burst"])
            rows.append(row(
                "outage", f"{kind} {protocol}: median emit() (burst of 2,500: "
                f"{burst / 1000:.1f} us an event)", _med(group, lambda run: run.median("emit")),
                "us", baseline=f"healthy {protocol}", base_value=base))
    for label, group in runs.items():
        if label == "off":
            continue
        warnings = max(len(run.warnings()) for run in group)
        shutdown = max(run.timings["shutdown_ms"] for run in group)
        growth = max(run.rss_growth_mb() for run in group)
        rows.append(row("outage", f"{label}: shutdown (worst; {warnings} export warning(s) a "
                        f"run; RSS growth {growth:.1f} MB)", shutdown, "ms"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of every scenario (default 2; 1 with ENSEMBLE_BENCH_QUICK)")
    args = parser.parse_args()
    result = main(args.rounds)
    print_rows(result)
    save("outage_latency", result)
