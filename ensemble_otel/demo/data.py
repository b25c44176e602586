"""Real market bars bundled with backtesting.py (``backtesting/test/*.csv``), read with csv.

The files are read in place; the ``backtesting`` package itself (and pandas) is not
imported, which keeps the demo's start-up short.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ensemble_otel._time import parse_iso

DATASETS: dict[str, tuple[str, str]] = {
    # name -> (file, description)
    "EURUSD": ("EURUSD.csv", "EUR/USD hourly bars, April 2017 to February 2018"),
    "GOOG": ("GOOG.csv", "NASDAQ:GOOG daily bars, August 2004 to March 2013"),
}


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLC bar; ``ts`` is the bar's start in unix seconds (UTC)."""

    ts: float
    open: float
    high: float
    low: float
    close: float


def data_file(name: str) -> Path:
    """Path of a bundled data set; raises ValueError naming the rule when unavailable."""
    if name not in DATASETS:
        raise ValueError(f"--data={name!r}: must be one of {', '.join(DATASETS)}")
    spec = importlib.util.find_spec("backtesting")
    if spec is None or spec.origin is None:
        raise ValueError(
            "--data: the market data comes with the 'backtesting' package, which is not "
            "installed; install the demo extra: pip install 'ensemble-otel[demo]'"
        )
    path = Path(spec.origin).parent / "test" / DATASETS[name][0]
    if not path.is_file():
        raise ValueError(f"--data={name!r}: {path} is missing from the backtesting package")
    return path


def load_bars(name: str, limit: int | None = None) -> list[Bar]:
    """The first ``limit`` bars (all when None) of data set ``name``, oldest first."""
    bars: list[Bar] = []
    with data_file(name).open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        cols = {c: i for i, c in enumerate(header)}
        o, h, lo, c = cols["Open"], cols["High"], cols["Low"], cols["Close"]
        for row in reader:
            if limit is not None and len(bars) >= limit:
                break
            bars.append(Bar(parse_iso(row[0]), float(row[o]), float(row[h]), float(row[lo]),
                            float(row[c])))
    return bars
