"""Shared helpers of the benchmark scripts: timing, the machine, tables, results.

Every script measures its baseline in the same run and prints ratios; absolute numbers
depend on the machine, ratios much less. ``RESULTS`` collects rows for ``run_all.py``.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "_out"
QUICK = os.environ.get("ENSEMBLE_BENCH_QUICK", "") not in ("", "0")


@dataclass
class Row:
    """One line of the results table."""

    bench: str
    measure: str
    value: float
    unit: str
    baseline: str
    ratio: float | None  # value / baseline
    target: str  # e.g. "<= 2.0x"; "" when only reported
    met: bool | None  # None when there is no target

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.3f}x"
        met = "" if self.met is None else ("met" if self.met else "MISSED")
        return [self.bench, self.measure, f"{self.value:,.3f} {self.unit}", self.baseline,
                ratio, self.target, met]


RESULTS: list[Row] = []


def row(bench: str, measure: str, value: float, unit: str, *, baseline: str = "",
        base_value: float | None = None, at_most: float | None = None,
        target: str = "") -> Row:
    """Record (and return) a row; ``at_most`` is the target on the ratio (or the value)."""
    ratio = None if base_value is None else value / base_value
    met: bool | None = None
    if at_most is not None:
        met = (ratio if ratio is not None else value) <= at_most
        target = target or (f"<= {at_most:g}x" if ratio is not None else f"<= {at_most:g} {unit}")
    r = Row(bench, measure, value, unit, baseline, ratio, target, met)
    RESULTS.append(r)
    return r


def machine() -> dict[str, str]:
    """nproc, CPU model, Python: the facts a results table names."""
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(terse=True),
    }


def best_ns_per_op(
    run: Callable[[int], None], *, number: int, repeat: int,
    setup: Callable[[int], None] | None = None,
) -> float:
    """Best-of-``repeat`` nanoseconds per operation of ``run(number)`` (GC off while timed).

    ``setup(i)`` runs before repeat ``i``, untimed.
    """
    best = float("inf")
    for i in range(repeat):
        if setup is not None:
            setup(i)
        best = min(best, _timed(run, number) / number)
    return best


def _timed(run: Callable[[int], None], number: int) -> int:
    """Nanoseconds of ``run(number)`` with the garbage collector off."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        run(number)
        return time.perf_counter_ns() - t0
    finally:
        if gc_was:
            gc.enable()


def interleaved(
    runs: dict[str, Callable[[int], None]], *, number: int, repeat: int,
    setup: Callable[[str, int], None] | None = None,
) -> dict[str, float]:
    """Best ns/op of each run, the runs interleaved round by round (drift hits all alike)."""
    best = {name: float("inf") for name in runs}
    for i in range(repeat):
        for name, run in runs.items():
            if setup is not None:
                setup(name, i)
            best[name] = min(best[name], _timed(run, number) / number)
    return best


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(rows: Sequence[Row] | None = None) -> str:
    """A Markdown table of ``rows`` (all results by default)."""
    rows = RESULTS if rows is None else rows
    head = ["bench", "measure", "value", "baseline", "ratio", "target", ""]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def print_rows(rows: Sequence[Row]) -> None:
    print(table(rows))
    sys.stdout.flush()


def save(name: str, rows: Sequence[Row]) -> Path:
    """Write rows and the machine to bench/_out/<name>.json."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), "rows": [asdict(r) for r in rows]},
                               indent=2))
    return path


def fresh_dir(name: str) -> Path:
    """An empty directory bench/_out/<name> (removed first if it exists)."""
    import shutil

    path = OUT_DIR / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
