"""`ensemble-otel heartbeat check`: a liveness probe and a CI smoke step.

Exit 0 when the beat file is fresh and the state is alive (starting or running); 1 with a
one-line reason when it is stale, stopping or stopped, missing or unreadable; 2 on usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ensemble_otel.heartbeat import read_heartbeat
from ensemble_otel.settings import ConfigError, load_settings

ALIVE = ("starting", "running")


def check(path: Path, max_age: float, now: float | None = None) -> tuple[int, str]:
    """(exit code, one-line reason) for the beat file at ``path``."""
    try:
        beat = read_heartbeat(path)
    except FileNotFoundError:
        return 1, f"missing: {path} does not exist"
    except (OSError, ValueError) as exc:
        return 1, f"unreadable: {path}: {exc}"
    unix = beat.get("unix")
    state = beat.get("state")
    if not isinstance(unix, (int, float)) or isinstance(unix, bool):
        return 1, f"unreadable: {path}: field 'unix' is not a number"
    age = (time.time() if now is None else now) - float(unix)
    if state not in ALIVE:
        return 1, f"{state}: {path} says state={state!r} (pid {beat.get('pid')})"
    if age > max_age:
        return 1, f"stale: last beat {age:.1f}s ago > max age {max_age:g}s ({path})"
    return 0, f"ok: {state}, last beat {max(age, 0.0):.1f}s ago (seq {beat.get('seq')}, " \
              f"pid {beat.get('pid')})"


def _run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    try:
        settings = load_settings(env, strategy_id=args.strategy, root=args.root)
        max_age = args.max_age
        if max_age is None:
            max_age = 3 * settings.heartbeat_interval
        elif not max_age > 0:
            raise ConfigError("--max-age", max_age, "must be a number of seconds > 0")
    except ConfigError as exc:
        print(f"ensemble-otel heartbeat check: {exc}", file=sys.stderr)
        return 2
    code, reason = check(settings.heartbeat_path, max_age)
    print(reason, file=sys.stdout if code == 0 else sys.stderr)
    return code


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("heartbeat", help="heartbeat file tools")
    sub = parser.add_subparsers(dest="heartbeat_command", metavar="ACTION", required=True)
    chk = sub.add_parser(
        "check", help="exit 0 when the heartbeat is fresh and alive, 1 otherwise",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chk.add_argument("--root", help="PAPER_TRADING_ROOT (default: env or ./paper_trading_outputs)")
    chk.add_argument("--strategy", help="strategy id (default: ENSEMBLE_STRATEGY_ID or 'default')")
    chk.add_argument("--max-age", type=float, default=None,
                     help="seconds (default: 3 x ENSEMBLE_HEARTBEAT_INTERVAL)")
    chk.set_defaults(func=_run)
