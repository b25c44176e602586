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

import contextlib
import errno
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ensemble_otel.contract.registry import REPORT_PATH
from ensemble_otel.paths import report_path

from .load import PERIODS, load
from .payload import build
from .render import render

__all__ = ["DEFAULT_ROOT", "PERIODS", "ReportResult", "default_root", "write_report"]

DEFAULT_ROOT = Path("paper_trading_outputs")
REPORT_NAME = REPORT_PATH  # relative to the root


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


PAGE_MODE = 0o640


def write_page(output: Path, data: bytes) -> None:
    """Replace ``output`` with ``data``: a temp file with an unpredictable name created
    beside it (O_EXCL, never through a symbolic link), mode 0640 whatever the umask, then
    renamed over ``output`` (a link at ``output`` is replaced, not followed)."""
    tmp = output.with_name(f".{output.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 PAGE_MODE)
    try:
        os.fchmod(fd, PAGE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, output)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
    strategy id, FileNotFoundError when `root` does not exist and no `output` is given (the
    root is never created), and OSError when the page itself cannot be written.
    """
    root = Path(root)
    if output is None:
        if not root.is_dir():  # never create the root it was pointed at
            raise FileNotFoundError(
                errno.ENOENT, f"the root directory {root} does not exist (nothing written; "
                "-o FILE writes a page that says so)", str(root))
        output = report_path(root)
    output = Path(output)
    ds = load(root, period=period, strategies=list(strategies) if strategies else None,
              start=start, end=end)
    payload = build(ds, now=time.time())
    page = render(payload)
    output.parent.mkdir(parents=True, exist_ok=True)  # an explicit -o FILE's directory
    write_page(output, page.encode("utf-8"))
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
