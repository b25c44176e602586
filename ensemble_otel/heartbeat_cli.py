"""`ensemble-otel heartbeat check`: a liveness probe and a CI smoke step.

Exit 0 when the beat file proves a live process: a regular file (no link, FIFO or device;
at most 64 KiB) matching the heartbeat schema, for the strategy asked, whose ts and unix
agree, not from the future (beyond --max-skew), in state starting or running, written by
a process that still runs when the beat names this host (unless --no-pid), and no older
than --max-age (default: 3 x the interval_s the file itself states; a beat exactly that
old still passes). Exit 1 with a one-line reason otherwise; 2 on usage.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ensemble_otel import _validate_rules as rules
from ensemble_otel._time import parse_iso
from ensemble_otel.contract.registry import HEARTBEAT
from ensemble_otel.heartbeat import (
    DEFAULT_MAX_SKEW,
    INTERVALS_PER_MAX_AGE,
    process_start,
    read_heartbeat,
)
from ensemble_otel.paths import heartbeat_path
from ensemble_otel.settings import ConfigError, load_settings
from ensemble_otel.terminal import escape

ALIVE = ("starting", "running")
TS_TOLERANCE = 1.0  # seconds ts and unix may differ (a hand-written ts has whole seconds)
PID_START_TOLERANCE = 5.0  # seconds, when telling a reused pid without pid_start


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a beat file says: ``status`` is ok, missing, unreadable, mismatch, future,
    stopped/stopping (the state), dead or stale; ``reason`` is one line (not escaped)."""

    status: str
    reason: str
    beat: dict[str, Any] | None = None
    age: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def code(self) -> int:
        return 0 if self.ok else 1


def _age_text(seconds: float) -> str:
    return f"{seconds:.1f}s" if abs(seconds) < 1e15 else f"{seconds:.3g}s"


def assess(path: Path, strategy_id: str | None = None, *, max_age: float | None = None,
           max_skew: float = DEFAULT_MAX_SKEW, check_pid: bool = True,
           now: float | None = None, root: Path | None = None) -> Verdict:
    """Judge the beat file at ``path`` (under ``root``: no linked directory between them is
    followed); nothing here raises on what the file holds."""
    try:
        beat = read_heartbeat(path, root)
    except FileNotFoundError:
        return Verdict("missing", f"missing: {path} does not exist")
    except (OSError, ValueError) as exc:
        return Verdict("unreadable", f"unreadable: {path}: {exc}")
    problems = [p for p in rules.check_record(beat, HEARTBEAT) if p.rule != "unknown-field"]
    if problems:  # an unknown field is tolerated: a newer writer may add one
        return Verdict("unreadable", f"unreadable: {path}: not a heartbeat: "
                       f"{'; '.join(p.message for p in problems)}", beat)
    if strategy_id is not None and beat["strategy_id"] != strategy_id:
        return Verdict("mismatch", f"mismatch: strategy_id is {beat['strategy_id']!r} in "
                       f"{path}, expected {strategy_id!r}", beat)
    unix = float(beat["unix"])
    age = (time.time() if now is None else now) - unix
    if -age > max_skew:
        return Verdict("future", f"future: heartbeat is from the future: unix {beat['unix']} "
                       f"is {_age_text(-age)} ahead of this clock (allowed skew "
                       f"{max_skew:g}s; {path})", beat, age)
    try:
        ts_unix = parse_iso(beat["ts"])
    except (ValueError, OverflowError):
        ts_unix = math.nan
    if not abs(ts_unix - unix) <= TS_TOLERANCE:
        return Verdict("mismatch", f"mismatch: ts {beat['ts']} and unix {beat['unix']} "
                       f"disagree ({path})", beat, age)
    state, pid = beat["state"], beat["pid"]
    if state not in ALIVE:
        return Verdict(state, f"{state}: {path} says state={state!r} (pid {pid})", beat, age)
    if check_pid and beat["host"] == socket.gethostname():
        why = _not_running(beat)
        if why is not None:
            return Verdict("dead", f"dead: pid {pid} is not running{why} (host "
                           f"{beat['host']}, {path}; --no-pid skips this)", beat, age)
    if max_age is None:
        max_age = INTERVALS_PER_MAX_AGE * float(beat["interval_s"])
    if age > max_age:
        return Verdict("stale", f"stale: last beat {_age_text(age)} ago > max age "
                       f"{max_age:g}s ({path})", beat, age)
    return Verdict("ok", f"ok: {state}, last beat {_age_text(max(age, 0.0))} ago (seq "
                   f"{beat['seq']}, pid {pid})", beat, age)


def _not_running(beat: dict[str, Any]) -> str | None:
    """None when the beat's pid runs here as the same process; else the detail."""
    pid = beat["pid"]
    if pid <= 0:
        return ""
    try:
        os.kill(pid, 0)
    except OverflowError:
        return ""
    except OSError as exc:
        if exc.errno != errno.EPERM:  # EPERM: it runs, as another user
            return ""
    started = process_start(pid)
    if started is None:
        return ""  # gone between the two looks (or no /proc: kill said it runs)
    recorded = beat.get("pid_start")
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        if recorded != started:
            return " (the pid now belongs to another program)"
        return None
    booted = _boot_time()
    if booted is None:
        return None
    began = booted + started / os.sysconf("SC_CLK_TCK")
    telemetry_began = float(beat["unix"]) - float(beat["uptime_s"])
    if began > telemetry_began + PID_START_TOLERANCE:
        return " (the pid now belongs to another program, started after the beat's)"
    return None


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def check(path: Path, max_age: float | None = None, now: float | None = None,
          **options: Any) -> tuple[int, str]:
    """(exit code, one-line reason) for the beat file at ``path``; see :func:`assess`."""
    verdict = assess(path, max_age=max_age, now=now, **options)
    return verdict.code, verdict.reason


def _positive(option: str, value: float | None) -> None:
    if value is not None and (not value > 0 or value == math.inf):
        raise ConfigError(option, value, "must be a number of seconds > 0")


def _run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    try:
        settings = load_settings(env, strategy_id=args.strategy, root=args.root)
        _positive("--max-age", args.max_age)
        if not args.max_skew >= 0 or args.max_skew == math.inf:
            raise ConfigError("--max-skew", args.max_skew, "must be a number of seconds >= 0")
    except ConfigError as exc:
        print(f"ensemble-otel heartbeat check: {escape(str(exc))}", file=sys.stderr)
        return 2
    verdict = assess(heartbeat_path(settings.root, settings.strategy_id),
                     settings.strategy_id, max_age=args.max_age, max_skew=args.max_skew,
                     check_pid=not args.no_pid, root=settings.root)
    print(escape(verdict.reason), file=sys.stdout if verdict.ok else sys.stderr)
    return verdict.code


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("heartbeat", help="heartbeat file tools")
    sub = parser.add_subparsers(dest="heartbeat_command", metavar="ACTION", required=True)
    chk = sub.add_parser(
        "check", help="exit 0 when the heartbeat proves a live bot, 1 otherwise",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chk.add_argument("--root", help="PAPER_TRADING_ROOT (default: env or ./paper_trading_outputs)")
    chk.add_argument("--strategy", help="strategy id (default: ENSEMBLE_STRATEGY_ID or 'default')")
    chk.add_argument("--max-age", type=float, default=None,
                     help="seconds (default: 3 x the interval_s written in the file)")
    chk.add_argument("--max-skew", type=float, default=DEFAULT_MAX_SKEW, metavar="SECONDS",
                     help="how far in the future a beat may be (clock skew; default "
                          f"{DEFAULT_MAX_SKEW:g})")
    chk.add_argument("--no-pid", action="store_true",
                     help="do not check that the beat's pid runs on this host (containers "
                          "with their own pid namespace)")
    chk.set_defaults(func=_run)
