"""`ensemble-otel` command line: one subcommand per module, each registering itself."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable, Sequence

# subcommand -> module exposing `register(subparsers) -> None`; the parser it adds sets
# `func(args) -> int` as its default. Modules are imported only when their command runs.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "heartbeat": ("ensemble_otel.heartbeat_cli", "check the heartbeat file (liveness probe)"),
    "validate": ("ensemble_otel.validate", "validate emitted JSONL records"),
    "report": ("ensemble_otel.report.cli", "write a self-contained HTML report"),
    "demo": ("ensemble_otel.demo.cli", "replay real market data through a paper bot"),
    "status": ("ensemble_otel.status", "one line per strategy: heartbeat and buckets"),
    "reset": ("ensemble_otel.reset", "start a strategy's files over (state, records, heartbeat)"),
}


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for whole numbers >= ``minimum`` (the error says the rule)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be a whole number >= {minimum} (got {text!r})")
        return value

    return parse


def strategy_id(text: str) -> str:
    """An argparse ``type`` for a strategy id (the contract's pattern: no path in it)."""
    from ensemble_otel.contract.registry import STRATEGY_ID_PATTERN

    if not re.fullmatch(STRATEGY_ID_PATTERN, text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a strategy id (must match {STRATEGY_ID_PATTERN})")
    return text


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    from ensemble_otel._version import __version__

    parser = argparse.ArgumentParser(
        prog="ensemble-otel", description="Ensemble trading-bot telemetry tools."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(args_list)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return int(func(args))


if __name__ == "__main__":
    sys.exit(main())
