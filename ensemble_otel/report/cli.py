"""`ensemble-otel report [ROOT] [--strategy S ...] [--period 1h|24h] [--from T] [--to T] [-o FILE]`.

Prints the path of the page written. Exit 0 when something was charted, 1 when the page
could only say what is missing (it is still written), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ensemble_otel.cli import strategy_id
from ensemble_otel.terminal import escape

from . import PERIODS, REPORT_NAME, default_root, write_report
from .times import parse_bound


def _bound(end: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return parse_bound(text, end=end)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "time"  # argparse names the type in its error message
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report",
        description="Write one self-contained HTML page (opens offline) with each strategy's "
                    "equity, drawdown, PnL, turnover and risk charts, its heartbeat and a "
                    "validation summary of the files read.",
    )
    p.add_argument("root", nargs="?", type=Path, default=None, metavar="ROOT",
                   help="PAPER_TRADING_ROOT to read (default: $PAPER_TRADING_ROOT, else "
                        "./paper_trading_outputs)")
    p.add_argument("--strategy", action="append", metavar="S", dest="strategies",
                   type=strategy_id,
                   help="only this strategy id (repeat for several; default: all found)")
    p.add_argument("--period", choices=PERIODS, default="1h",
                   help="health snapshot bucket to chart (default: 1h)")
    p.add_argument("--from", dest="start", type=_bound(False), metavar="T",
                   help="first bucket start to show: YYYY-MM-DD, ISO-8601 (naive = UTC) or "
                        "unix seconds")
    p.add_argument("--to", dest="end", type=_bound(True), metavar="T",
                   help="last bucket start to show (inclusive; a date means its whole day)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help=f"where to write the page (default: ROOT/{REPORT_NAME})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root: Path = args.root if args.root is not None else default_root()
    if args.start is not None and args.end is not None and args.start > args.end:
        print("ensemble-otel report: --from must not be after --to", file=sys.stderr)
        return 2
    try:
        result = write_report(root, args.output, strategies=args.strategies,
                              period=args.period, start=args.start, end=args.end)
    except FileNotFoundError as exc:
        if args.output is not None:
            print(f"ensemble-otel report: cannot write the page: {escape(str(exc))}",
                  file=sys.stderr)
        else:
            print(f"ensemble-otel report: missing: {escape(exc.strerror or str(exc))}",
                  file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"ensemble-otel report: cannot write the page: {escape(str(exc))}",
              file=sys.stderr)
        return 1
    for problem in result.problems:
        print(f"ensemble-otel report: missing: {escape(problem)}", file=sys.stderr)
    if result.bad_lines:
        print(f"ensemble-otel report: skipped {result.bad_lines} bad lines of {result.lines} "
              "(listed in the page)", file=sys.stderr)
    print(escape(str(result.path)))
    return 0 if result.ok else 1
