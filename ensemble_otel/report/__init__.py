"""`ensemble-otel report`: one self-contained HTML page from the files under PAPER_TRADING_ROOT.

Per strategy: equity with its running peak, drawdown with max drawdown, PnL per bucket,
turnover, risk warnings and breaches; a heartbeat header; a summary table computed from
every record; a validation summary of the files read. The page embeds its data, its
chart library (uPlot) and its script, and its Content-Security-Policy forbids any request.

    from ensemble_otel.report import write_report
    result = write_report(Path("paper_trading_outputs"))
    print(result.path)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .load import PERIODS, load
from .payload import build
from .render import render

__all__ = ["DEFAULT_ROOT", "PERIODS", "ReportResult", "default_root", "write_report"]

DEFAULT_ROOT = Path("paper_trading_outputs")
REPORT_NAME = "report.html"


def default_root() -> Path:
    """PAPER_TRADING_ROOT, else ./paper_trading_outputs."""
    return Path(os.environ.get("PAPER_TRADING_ROOT") or DEFAULT_ROOT)


@dataclass(frozen=True, slots=True)
class ReportResult:
    """What a report holds. `ok` is False when there was nothing to chart."""

    path: Path
    strategies: tuple[str, ...]  # every strategy with a section, charted or not
    charted: tuple[str, ...]  # strategies with at least one health snapshot
    records: int  # health snapshots shown (all of them, never downsampled)
    files: int
    lines: int
    bad_lines: int
    problems: tuple[str, ...]  # report-wide: what is missing

    @property
    def ok(self) -> bool:
        return bool(self.charted)


def write_report(
    root: Path,
    output: Path | None = None,
    *,
    strategies: Sequence[str] | None = None,
    period: str = "1h",
    start: float | None = None,
    end: float | None = None,
) -> ReportResult:
    """Write the report for `root` to `output` (default <root>/report.html).

    `start`/`end` are unix seconds (inclusive) on the bucket start; see
    `ensemble_otel.report.times.parse_bound` for the CLI's text forms. Bad or missing input
    never raises: the page says what is missing. Raises ValueError for a bad `period` or
    strategy id, and OSError only when the page itself cannot be written.
    """
    root = Path(root)
    output = Path(output) if output is not None else root / REPORT_NAME
    ds = load(root, period=period, strategies=list(strategies) if strategies else None,
              start=start, end=end)
    payload = build(ds, now=time.time())
    page = render(payload)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, output)
    return ReportResult(
        path=output,
        strategies=tuple(s.strategy_id for s in ds.strategies),
        charted=tuple(s.strategy_id for s in ds.strategies if s.snapshots),
        records=ds.records,
        files=len(ds.validation.files),
        lines=ds.validation.lines,
        bad_lines=ds.validation.bad_total,
        problems=tuple(ds.problems),
    )
