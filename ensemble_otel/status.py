"""`ensemble-otel status [--root R] [--format json]`: one line per strategy under a root.

Each line: the heartbeat (judged as `ensemble-otel heartbeat check` does), the last closed
1h and 24h buckets (equity, drawdown, PnL) from the newest record files, and the open
(partial) buckets from the health state file ``state/health/<strategy>.json`` and its
journal ``.wal`` (the newest whole line wins, by ``seq``).

Read-only and tolerant: missing, partial or torn files are said, never fatal; nothing is
created; files are opened as the other readers do (regular files only, no symbolic link
followed, bounded reads). Exit 0 when every strategy's heartbeat proves a live process,
1 when one does not or no strategy is found, 2 on usage.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from ensemble_otel._time import iso_seconds
from ensemble_otel.cli import strategy_id
from ensemble_otel.contract.registry import HEALTH_1H, HEALTH_24H, RecordKind
from ensemble_otel.health.store import expand
from ensemble_otel.heartbeat import DEFAULT_MAX_SKEW
from ensemble_otel.heartbeat_cli import Verdict, assess
from ensemble_otel.paths import heartbeat_path, journal_path, scan, state_path, strategies
from ensemble_otel.readers import MAX_LINE_BYTES, last_whole_line, open_regular, read_limited
from ensemble_otel.terminal import escape, json_text

PERIODS: tuple[tuple[str, RecordKind], ...] = (("1h", HEALTH_1H), ("24h", HEALTH_24H))
BUCKET_FIELDS = ("ts", "equity", "drawdown", "pnl", "bars")
STATE_MAX_BYTES = MAX_LINE_BYTES


@dataclass(slots=True)
class StrategyStatus:
    """What the files under a root say about one strategy."""

    strategy_id: str
    heartbeat: Verdict
    last: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # period -> bucket
    open: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what could not be read, in words


def _json(data: bytes) -> Any:
    return orjson.loads(data)


def last_bucket(root: Path, kind: RecordKind, sid: str, problems: list[str]
                ) -> dict[str, Any] | None:
    """The newest whole record of the newest partition file of ``kind``, or None."""
    files = scan(root, kind, sid)
    problems.extend(f"{path.relative_to(root)}: {why}" for path, why in files.refused)
    for rf in reversed(files.files):  # newest partition first; an empty file: the one before
        try:
            fd = open_regular(rf.path, root=root)
            try:
                line = last_whole_line(fd, MAX_LINE_BYTES)
            finally:
                os.close(fd)
            if line is None:
                continue
            record = _json(line)
        except (OSError, ValueError) as exc:
            problems.append(f"{rf.path.relative_to(root)}: last line unreadable: {exc}")
            return None
        if not isinstance(record, dict):
            problems.append(f"{rf.path.relative_to(root)}: last line is not a JSON object")
            return None
        return {k: record.get(k) for k in BUCKET_FIELDS}
    return None


def saved_state(root: Path, sid: str, problems: list[str]) -> dict[str, Any] | None:
    """The newest health state: the state file's or its journal's newest whole line."""
    path = state_path(root, sid)
    found: list[dict[str, Any]] = []
    for where, read in ((path, lambda: read_limited(path, STATE_MAX_BYTES, root=root)),
                        (journal_path(path), lambda: _journal_line(journal_path(path), root))):
        try:
            data = read()
            if data is None:
                continue
            state = expand(_json(data))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
            problems.append(f"{where.relative_to(root)}: unreadable: {exc}")
            continue
        if isinstance(state, dict):
            found.append(state)
    return max(found, key=lambda s: _number(s.get("seq")) or 0, default=None)


def _journal_line(path: Path, root: Path) -> bytes | None:
    fd = open_regular(path, root=root)
    try:
        return last_whole_line(fd, MAX_LINE_BYTES)
    finally:
        os.close(fd)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def open_buckets(state: dict[str, Any] | None) -> dict[str, dict[str, Any] | None]:
    """The open 1h and 24h buckets a state holds (None: none open, or no state).

    The state's day bucket counts closed hours only; the open hour's bars are added to it.
    PnL is against the previous bucket's close, else the strategy's first equity.
    """
    out: dict[str, dict[str, Any] | None] = {}
    buckets = state.get("buckets") if state else None
    hour_bars = 0.0
    for period, _ in PERIODS:
        bucket = buckets.get(period) if isinstance(buckets, dict) else None
        bars = _number(bucket.get("bars")) if isinstance(bucket, dict) else None
        bars = (bars or 0.0) + (hour_bars if period == "24h" else 0.0)
        if period == "1h":
            hour_bars = bars
        if not isinstance(bucket, dict) or not bars:
            out[period] = None
            continue
        assert state is not None
        equity, prev = _number(state.get("equity")), _number(bucket.get("prev_close"))
        if prev is None:
            prev = _number(state.get("first_equity"))
        start = _number(bucket.get("start"))
        out[period] = {
            "ts": _iso(start),
            "equity": equity,
            "drawdown": _number(state.get("drawdown")),
            "pnl": None if equity is None or prev is None else equity - prev,
            "bars": int(bars),
        }
    return out


def _iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    try:
        return iso_seconds(unix)
    except (OverflowError, ValueError, OSError):
        return None


def collect(root: Path, ids: list[str] | None = None, *, check_pid: bool = True,
            max_skew: float = DEFAULT_MAX_SKEW, now: float | None = None
            ) -> list[StrategyStatus]:
    """The status of each strategy found under ``root`` (or of ``ids``)."""
    out = []
    for sid in ids or strategies(root):
        problems: list[str] = []
        verdict = assess(heartbeat_path(root, sid), sid, check_pid=check_pid,
                         max_skew=max_skew, now=now, root=root)
        last = {period: last_bucket(root, kind, sid, problems) for period, kind in PERIODS}
        status = StrategyStatus(sid, verdict, last, open_buckets(saved_state(root, sid, problems)),
                                problems)
        out.append(status)
    return out


# --- output --------------------------------------------------------------------------------


def _money(value: Any) -> str:
    v = _number(value)
    if v is None:
        return "?"
    return f"{v:,.2f}" if abs(v) < 1e15 else f"{v:.6g}"


def _signed(value: Any) -> str:
    v = _number(value)
    if v is None:
        return "?"
    return f"{v:+,.2f}" if abs(v) < 1e15 else f"{v:+.6g}"


def _percent(value: Any) -> str:
    v = _number(value)
    if v is None:
        return "?"
    return f"{v * 100:.2f}%" if abs(v) < 1e13 else f"{v:.3g}x"


def _bucket_text(label: str, bucket: dict[str, Any] | None) -> str:
    if bucket is None:
        return f"{label} none"
    bars = f" ({bucket['bars']} bars)" if bucket.get("bars") is not None else ""
    return (f"{label} {bucket.get('ts') or '?'}{bars} equity {_money(bucket.get('equity'))} "
            f"dd {_percent(bucket.get('drawdown'))} pnl {_signed(bucket.get('pnl'))}")


def line(status: StrategyStatus) -> str:
    """One text line (not yet escaped)."""
    hb = status.heartbeat
    parts = [status.strategy_id, f"heartbeat {hb.reason}"]
    parts += [_bucket_text(f"last {p}", status.last.get(p)) for p, _ in PERIODS]
    parts += [_bucket_text(f"open {p}", status.open.get(p)) for p, _ in PERIODS]
    if status.problems:
        parts.append("problems: " + "; ".join(status.problems))
    return " | ".join(parts)


def as_json(root: Path, found: list[StrategyStatus], code: int) -> dict[str, Any]:
    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return json_text(value)
        if isinstance(value, dict):
            return {json_text(str(k)): clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return clean({
        "root": str(root),
        "exit_code": code,
        "strategies": [
            {"strategy_id": s.strategy_id,
             "heartbeat": {"status": s.heartbeat.status, "reason": s.heartbeat.reason,
                           "state": (s.heartbeat.beat or {}).get("state"),
                           "age_s": s.heartbeat.age},
             "last": s.last, "open": s.open, "problems": s.problems}
            for s in found
        ],
    })


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    root = Path(args.root if args.root is not None
                else os.environ.get("PAPER_TRADING_ROOT") or "paper_trading_outputs")
    if not args.max_skew >= 0 or args.max_skew == math.inf:
        err.write(f"ensemble-otel status: --max-skew: {escape(str(args.max_skew))} must be a "
                  "number of seconds >= 0\n")
        return 2
    found = collect(root, args.strategies, check_pid=not args.no_pid, max_skew=args.max_skew)
    code = 0 if found and all(s.heartbeat.ok for s in found) else 1
    if args.format == "json":
        out.write(orjson.dumps(as_json(root, found, code), option=orjson.OPT_INDENT_2).decode()
                  + "\n")
    elif not found:
        why = "" if root.is_dir() else " (the directory does not exist)"
        out.write(f"no strategy under {escape(str(root))}{why}\n")
    for status in found if args.format == "text" else ():
        out.write(escape(line(status)) + "\n")
    return code


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "status", help="one line per strategy: heartbeat, last buckets, open bucket",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", help="PAPER_TRADING_ROOT (default: env or ./paper_trading_outputs)")
    p.add_argument("--strategy", action="append", dest="strategies", metavar="S",
                   type=strategy_id,
                   help="only this strategy (repeatable; default: every one found)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--no-pid", action="store_true",
                   help="do not check that a beat's pid runs on this host")
    p.add_argument("--max-skew", type=float, default=DEFAULT_MAX_SKEW, metavar="SECONDS",
                   help=f"how far in the future a beat may be (default {DEFAULT_MAX_SKEW:g})")
    p.set_defaults(func=run)
