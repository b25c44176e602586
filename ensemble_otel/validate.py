"""`ensemble-otel validate PATH...`: check emitted JSONL records.

Permissive (default): every line is a JSON object with non-empty string ``strategy_id``
and ``schema_version``.

``--strict``: every line against its kind's schema (the kind from the file's location
under the root, else from its fields), unknown fields rejected, timestamps ISO-8601 UTC,
no duplicate (strategy_id, period, ts) bucket across all files, one schema_version per
strategy, the period and strategy_id matching the directory, ts matching the file's date.

Nothing read is a failure: no file, or no record, gives exit 1 ("nothing to validate
under PATH") unless ``--allow-empty``; ``--expect KIND[:N]`` asks for at least N records of
a kind (repeatable).

Only regular files are read (a FIFO, device or socket is refused, exit 2; ``-`` reads
standard input as a stream); a directory walk never follows a symbolic link; a line
longer than 16 MiB (``readers.MAX_LINE_BYTES``) is a violation and is skipped unread.

Output: ``file:line: reason`` per violation (the first ``--max-errors``, then a count of
the rest) and a summary line, control characters and non-UTF-8 bytes escaped;
``--format json`` for machines. Exit codes: 0 clean, 1 violations or unmet expectations,
2 usage error or unreadable input (named on stderr).

Also runs as ``python -m ensemble_otel.validate``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from ensemble_otel._validate_engine import Report, validate
from ensemble_otel.cli import int_at_least
from ensemble_otel.contract.registry import RECORD_KINDS_BY_NAME
from ensemble_otel.readers import MAX_LINE_BYTES
from ensemble_otel.terminal import escape, json_text

__all__ = ["Report", "main", "register", "run", "validate"]

DESCRIPTION = """\
Check emitted JSONL records (and heartbeat files).

permissive (default): every line is a JSON object with non-empty string
  strategy_id and schema_version.
--strict: every line against its kind's schema (kind from the file's place
  under the root, else from its fields): no unknown fields, ISO-8601 UTC
  timestamps, no duplicate (strategy_id, period, ts) bucket in any file, one
  schema_version per strategy, period and strategy_id matching the directory,
  ts matching the file name's date."""
EPILOG = f"""\
nothing read (no file, no record) fails unless --allow-empty; --expect KIND[:N]
  asks for at least N (default 1) records of KIND ({", ".join(RECORD_KINDS_BY_NAME)}).
only regular files are read (FIFOs, devices, sockets: exit 2; '-' is standard input);
  directory walks never follow symbolic links; a line over {MAX_LINE_BYTES} bytes is
  reported and skipped.
output: file:line: reason, one per violation, then a summary line (control characters
  and non-UTF-8 bytes escaped).
exit codes: 0 clean, 1 violations or unmet expectations, 2 usage error or unreadable
  input."""
DEFAULT_MAX_ERRORS = 50
PROGRESS_MIN_BYTES = 32 << 20
_PROG = "ensemble-otel validate"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="JSONL files or directories (searched recursively for *.jsonl "
                             "and heartbeat files); '-' reads standard input")
    parser.add_argument("--strict", action="store_true",
                        help="check every record against its kind's schema and the "
                             "cross-record rules")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default: text)")
    parser.add_argument("--max-errors", type=int_at_least(0), default=DEFAULT_MAX_ERRORS,
                        metavar="N",
                        help=f"show at most N violations (default {DEFAULT_MAX_ERRORS}, "
                             "0: all); the rest are counted")
    parser.add_argument("--jobs", type=int_at_least(1), default=None, metavar="N",
                        help="worker processes for large inputs (default: the usable cores)")
    parser.add_argument("--expect", type=expectation, action="append", default=[],
                        metavar="KIND[:N]",
                        help="fail unless at least N (default 1) records of KIND were read "
                             f"(repeatable; kinds: {', '.join(RECORD_KINDS_BY_NAME)})")
    parser.add_argument("--allow-empty", action="store_true",
                        help="exit 0 when nothing was read (default: 'nothing to validate' "
                             "is a failure)")


def expectation(text: str) -> tuple[str, int]:
    """An argparse ``type`` for ``KIND[:N]``."""
    kind, _, count = text.partition(":")
    if kind not in RECORD_KINDS_BY_NAME:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown record kind {kind!r} (one of {', '.join(RECORD_KINDS_BY_NAME)})")
    return kind, int_at_least(1)(count) if count else 1


def register(subparsers: Any) -> None:
    """Add the ``validate`` subcommand to ``ensemble-otel``."""
    parser = subparsers.add_parser(
        "validate", help="validate emitted JSONL records", description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)


class Progress:
    """A one-line progress bar on a terminal (stderr)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        frac = min(1.0, done / total)
        filled = int(frac * self.width)
        rate = done / max(time.monotonic() - self.started, 1e-6) / 1e6
        self.stream.write(f"\rvalidating [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{frac:4.0%} {done / 1e6:,.0f}/{total / 1e6:,.0f} MB "
                          f"{rate:,.0f} MB/s")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _input_bytes(paths: Sequence[str]) -> int:
    total = 0
    for path in paths:
        try:
            if os.path.isdir(path):
                for top, _, names in os.walk(path):  # sizes only: nothing is opened
                    total += sum(_size(os.path.join(top, n)) for n in names)
            elif path != "-":
                total += _size(path)
        except OSError:
            continue
    return total


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def run(args: argparse.Namespace, stdout: TextIO | None = None,
        stderr: TextIO | None = None) -> int:
    """Run the command for parsed ``args``; returns the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    progress = None
    if err.isatty() and _input_bytes(args.paths) >= PROGRESS_MIN_BYTES:
        progress = Progress(err)
    try:
        report = validate(args.paths, strict=args.strict, cap=args.max_errors,
                          workers=args.jobs, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    wanted: list[tuple[str | None, int]] = [] if args.allow_empty else [(None, 1)]
    report.expect(wanted + list(args.expect), ", ".join(args.paths))
    if args.format == "json":
        out.write(orjson.dumps(as_json(report), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        write_text(report, out)
    for name in report.unreadable:
        err.write(f"{_PROG}: cannot read {escape(name)}\n")
    return report.exit_code


def as_json(report: Report) -> dict[str, Any]:
    """The ``--format json`` document."""
    return {
        "ok": report.exit_code == 0,
        "exit_code": report.exit_code,
        "mode": "strict" if report.strict else "permissive",
        "files": report.files,
        "lines": report.lines,
        "records": report.records,
        "bytes": report.bytes,
        "violation_count": report.violation_count,
        "violations_shown": len(report.violations),
        "violations_omitted": report.omitted,
        "unreadable": [json_text(name) for name in report.unreadable],
        "kinds": report.kinds,
        "unmet": [json_text(text) for text in report.unmet],
        "violations": [
            {"file": json_text(v.file), "line": v.line, "rule": v.rule, "field": v.field,
             "message": json_text(v.message)}
            for v in report.violations
        ],
    }


def write_text(report: Report, out: TextIO) -> None:
    for v in report.violations:
        out.write(f"{escape(str(v))}\n")
    if report.omitted:
        out.write(f"... and {_n(report.omitted, 'more violation')} (--max-errors 0 shows all)\n")
    mode = "strict" if report.strict else "permissive"
    head = "OK" if report.exit_code == 0 else "FAILED"
    unreadable = f", {len(report.unreadable)} unreadable" if report.unreadable else ""
    for text in report.unmet:
        out.write(f"{escape(text)}\n")
    out.write(f"{head} ({mode}): {_n(report.violation_count, 'violation')} in "
              f"{_n(report.files, 'file')}{unreadable}, {_n(report.lines, 'line')}, "
              f"{_n(report.records, 'record')}\n")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ensemble_otel.validate", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
