"""`ensemble-otel demo`: replay real market data through an instrumented paper bot.

The bot trades an SMA(10/30) crossover with paper fills (market orders at the next bar's
open, commission) under position and drawdown limits, and reports through ensemble-otel:
the heartbeat, events (orders, fills, risk warnings and breaches) and 1h / 24h health
snapshots under the root. It ends with a summary, validates its own files (strict) and
writes the HTML report.

The demo replays history, so it starts its strategy's files over on each run
(``configure(fresh=True)``, as ``ensemble-otel reset`` does), but only files it wrote
itself: records whose first event is the demo's ``demo_started``. It refuses to touch
anything else, and a strategy a live process holds.
SIGTERM or Ctrl-C stops it after the current bar; shutdown writes the ``stopped`` beat.

Under ``opentelemetry-instrument`` the settings come from the environment
(``ENSEMBLE_STRATEGY_ID``, ``PAPER_TRADING_ROOT``, ``OTEL_EXPORTER_OTLP_ENDPOINT``); the
telemetry configured before the demo started is used as is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import ensemble_otel
from ensemble_otel._time import iso_seconds
from ensemble_otel.cli import int_at_least
from ensemble_otel.contract.registry import EVENT, RECORD_KINDS
from ensemble_otel.demo.bot import PROFILES, PaperBot, RunResult
from ensemble_otel.demo.data import DATASETS, load_bars
from ensemble_otel.paths import record_files, state_path, strategy_path
from ensemble_otel.readers import open_regular


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be bar-seconds per wall second, a number > 0 (got {text!r})") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"must be bar-seconds per wall second, a number > 0 (got {text!r})")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "demo", help="replay real market data through an instrumented paper bot",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", choices=tuple(DATASETS), default="EURUSD",
                        help="EURUSD: hourly bars 2017-2018; GOOG: daily bars 2004-2013 "
                             "(default EURUSD)")
    parser.add_argument("--speed", type=_speed, default=None, metavar="X",
                        help="pace the replay at X bar-seconds per wall second (3600: one "
                             "bar-hour a second); default: as fast as possible")
    parser.add_argument("--bars", type=int_at_least(1), default=None, metavar="N",
                        help="replay only the first N bars")
    parser.add_argument("--root", default=None,
                        help="PAPER_TRADING_ROOT (default: env, else ./paper_trading_outputs)")
    parser.add_argument("--strategy", default=None,
                        help="strategy id (default: ENSEMBLE_STRATEGY_ID, else demo-sma-<data>)")
    parser.add_argument("--otlp-endpoint", default=None, metavar="URL",
                        help="also export metrics and logs over OTLP to URL "
                             "(protocol: OTEL_EXPORTER_OTLP_PROTOCOL, default grpc)")
    parser.add_argument("--no-validate", action="store_true",
                        help="skip validating the files at the end")
    parser.add_argument("--no-report", action="store_true",
                        help="skip writing the HTML report at the end")
    parser.set_defaults(func=run)


# -- the strategy's files -------------------------------------------------------------------

def strategy_paths(root: Path, strategy_id: str) -> list[Path]:
    """Every file or directory of ``strategy_id`` under ``root``, from the contract."""
    # the heartbeat is a file; record kinds partition files in the strategy's directory
    return [strategy_path(root, kind, strategy_id) for kind in RECORD_KINDS]


def _records_exist(root: Path, strategy_id: str) -> bool:
    return any(p.is_dir() and not p.is_symlink() and any(p.iterdir())
               for p in strategy_paths(root, strategy_id))


def _history(root: Path, strategy_id: str) -> bool:
    """Whether the strategy has records or a bar state under ``root``."""
    state = state_path(root, strategy_id)
    return _records_exist(root, strategy_id) or state.exists() or state.is_symlink()


def written_by_demo(root: Path, strategy_id: str) -> bool:
    """Whether the strategy's oldest event is the demo's ``demo_started`` (a bounded read
    of one line, no symlink followed)."""
    files = record_files(root, EVENT, strategy_id)  # oldest first; no symlink followed
    if not files:
        return False
    try:
        fd = open_regular(files[0].path, root=root)
    except OSError:
        return False
    try:
        first = os.read(fd, 1 << 16).split(b"\n", 1)[0]
    finally:
        os.close(fd)
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("event") == "demo_started"


# -- running ----------------------------------------------------------------------------------

def _configure(args: argparse.Namespace) -> Any:
    """The process's telemetry: the one already configured (opentelemetry-instrument), or new."""
    overrides: dict[str, Any] = {}
    if args.strategy is not None:
        overrides["strategy_id"] = args.strategy
    if args.root is not None:
        overrides["root"] = args.root
    if args.otlp_endpoint is not None:
        overrides["otlp_endpoint"] = args.otlp_endpoint
    current = ensemble_otel.get_telemetry()
    if current is None:
        if args.strategy is None and not os.environ.get("ENSEMBLE_STRATEGY_ID", "").strip():
            overrides["strategy_id"] = f"demo-sma-{args.data.lower()}"
        settings = ensemble_otel.load_settings(**overrides)
        if _history(settings.root, settings.strategy_id) and not written_by_demo(
                settings.root, settings.strategy_id):
            raise ensemble_otel.ConfigError(
                "--root/--strategy", str(settings.root),
                f"{settings.root} already holds records of strategy "
                f"{settings.strategy_id!r} that the demo did not write; the demo replays old "
                "market data and would not overwrite them. Use another --root or --strategy.")
        # start over: the strategy's state, records and heartbeat go (under its lock)
        return ensemble_otel.configure(**overrides, fresh=True)
    # configured before the demo started (opentelemetry-instrument): settings must agree
    telemetry = ensemble_otel.configure(**overrides)
    s = telemetry.settings
    if not s.disabled and _records_exist(s.root, s.strategy_id):
        raise ensemble_otel.ConfigError(
            "PAPER_TRADING_ROOT", str(s.root),
            f"already holds records of strategy {s.strategy_id!r}; under "
            "opentelemetry-instrument the demo cannot start them over: use an empty root",
        )
    return telemetry


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[list[str]]:
    received: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        bars = load_bars(args.data, args.bars)
    except ValueError as exc:
        print(f"ensemble-otel demo: {exc}", file=sys.stderr)
        return 2
    try:
        telemetry = _configure(args)
    except ensemble_otel.ConfigError as exc:
        print(f"ensemble-otel demo: {exc}", file=sys.stderr)
        return 2
    settings = telemetry.settings
    bot = PaperBot(telemetry, PROFILES[args.data])
    stop = threading.Event()
    started = time.monotonic()
    with _stop_on_signals(stop) as received:
        telemetry.events.emit("demo_started", data=args.data, bars=len(bars),
                              speed=args.speed, symbol=bot.profile.symbol)
        try:
            result = bot.run(bars, speed=args.speed, stop=stop)
            telemetry.events.emit(
                "demo_finished", bars=result.bars, fills=result.fills,
                final_equity=round(result.final_equity, 2),
                max_drawdown=round(result.max_drawdown, 6),
                stopped_by=received[0] if received else None)
        finally:
            ensemble_otel.shutdown()
    result.events += 2
    elapsed = time.monotonic() - started
    print_summary(result, settings, args, elapsed, received, out)
    code = 0
    if settings.disabled:  # OTEL_SDK_DISABLED=true: nothing was written to check
        out.write("validation and report: skipped (ensemble-otel is disabled: "
                  "OTEL_SDK_DISABLED=true)\n")
        return code
    if not args.no_validate:
        code = _validate(settings.root, settings.strategy_id, out)
    if not args.no_report:
        _report(settings.root, out)
    return code


# -- the end: summary, validation, report ---------------------------------------------------

def print_summary(result: RunResult, settings: Any, args: argparse.Namespace, elapsed: float,
                  received: list[str], out: TextIO) -> None:
    root = Path(settings.root).resolve()
    sid = settings.strategy_id
    p = PROFILES[args.data]
    change = result.final_equity / result.initial_equity - 1.0
    span = (f"{iso_seconds(result.first_ts)} .. {iso_seconds(result.last_ts)}"
            if result.first_ts is not None and result.last_ts is not None else "none")
    stopped = f" (stopped by {received[0]})" if received else ""
    w = out.write
    w(f"ensemble-otel demo: {DATASETS[args.data][1]}, SMA(10/30) crossover, paper fills\n")
    w(f"  strategy       {sid}  ({p.symbol}, {settings.environment})\n")
    w(f"  bars           {result.bars}{stopped}  {span}  in {elapsed:.1f}s\n")
    w(f"  trades         {result.orders} orders, {result.fills} fills\n")
    w(f"  equity         {result.initial_equity:,.2f} -> {result.final_equity:,.2f}  "
      f"({change:+.2%})\n")
    w(f"  max drawdown   {result.max_drawdown:.2%}\n")
    w(f"  risk           {result.risk_warnings} warnings, {result.risk_breaches} breaches\n")
    w(f"  records        1h: {result.records['1h']}  24h: {result.records['24h']}  "
      f"events: {result.events}  (the open hour and day close when a later bar arrives)\n")
    w(f"files under {root}:\n")
    for path in strategy_paths(root, sid):
        rel = path.relative_to(root)
        if path.is_dir():
            n = sum(1 for _ in path.glob("*.jsonl"))
            w(f"  {rel}/  ({n} file{'s' if n != 1 else ''})\n")
        elif path.exists():
            w(f"  {rel}\n")
    if settings.otlp_metrics or settings.otlp_logs:
        w(f"  (also exported over OTLP to {settings.otlp_endpoint or 'the OTEL_* endpoint'})\n")


def _validate(root: Path, strategy_id: str, out: TextIO) -> int:
    try:
        from ensemble_otel.validate import validate, write_text
    except ImportError:
        out.write("validation: skipped (ensemble_otel.validate is not available)\n")
        return 0
    paths = [str(p) for p in strategy_paths(Path(root), strategy_id) if p.exists()]
    report = validate(paths, strict=True, workers=1)
    out.write("validation: ")
    write_text(report, out)
    return 0 if report.exit_code == 0 else 1


def _report(root: Path, out: TextIO) -> None:
    try:
        from ensemble_otel.report import write_report
    except ImportError:
        out.write("report: skipped (ensemble_otel.report is not available)\n")
        return
    try:
        result = write_report(Path(root))
    except OSError as exc:
        out.write(f"report: not written: {exc}\n")
        return
    out.write(f"report: {Path(result.path).resolve()}\n")
