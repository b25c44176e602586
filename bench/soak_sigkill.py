"""SIGKILL soak: hundreds of random kills of a bot, then the records against one clean run.

The long form of tests/reliability/test_sigkill.py. The replay bot
(tests/reliability/replay_bot.py) replays a fixed series of 10-minute bars and continues
from where its state says after every restart; it is killed with SIGKILL at a random moment
20-400 ms after it starts (imports, start-up, bars, bucket closes, state and heartbeat
writes), again and again. After every kill: every JSONL line parses, no hourly or daily
bucket appears twice or out of order, peak equity and max drawdown never go back, the
heartbeat file is valid JSON. At the end the bot runs to the end of the series and every
record must equal an uninterrupted run's. Prints the counts and every violation; exits 1
when there was one.

    .venv/bin/python bench/soak_sigkill.py [--kills 300] [--bars 1000000] [--window 0.02 0.4]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reliability"))

from _common import OUT_DIR
from reliability_support import STRATEGY, all_jsonl, records, run_bot, start_bot


def _violations(root: Path) -> list[str]:
    """What is wrong with the files under ``root`` right now (empty when nothing)."""
    out: list[str] = []
    beat = root / "logs" / "heartbeat" / f"{STRATEGY}.json"
    if beat.exists():
        try:
            orjson.loads(beat.read_bytes())
        except orjson.JSONDecodeError as exc:
            out.append(f"heartbeat not JSON: {exc}")
    for path in all_jsonl(root):
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            out.append(f"{path}: last line not terminated")
        for n, line in enumerate(data.splitlines(), 1):
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                out.append(f"{path}:{n}: not JSON: {line[:120]!r}")
    for period in ("1h", "24h"):
        try:
            recs = records(root, period)
        except AssertionError as exc:  # reported above
            out.append(str(exc))
            continue
        starts = [r["ts"] for r in recs]
        if len(starts) != len(set(starts)):
            out.append(f"{period}: a bucket written twice")
        if starts != sorted(starts):
            out.append(f"{period}: buckets out of order")
        for before, after in itertools.pairwise(recs):
            if after["peak_equity"] < before["peak_equity"]:
                out.append(f"{period} {after['ts']}: peak equity went back")
            if after["max_drawdown"] < before["max_drawdown"]:
                out.append(f"{period} {after['ts']}: max drawdown went back")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=300)
    parser.add_argument("--bars", type=int, default=1_000_000, help="10-minute bars in the series")
    parser.add_argument("--window", type=float, nargs=2, default=(0.020, 0.400),
                        metavar=("MIN", "MAX"), help="kill this many seconds after the start")
    parser.add_argument("--seed", type=int, default=20240101)
    args = parser.parse_args()
    base = OUT_DIR / "soak_sigkill"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    bars = str(args.bars)

    t0 = time.monotonic()
    reference = base / "reference"
    run_bot(reference, timeout=1200, BOT_BARS=bars, BOT_BEAT="0.05", BOT_LAZY="1")
    expected = {p: records(reference, p) for p in ("1h", "24h")}
    print(f"reference: {len(expected['1h'])} hourly, {len(expected['24h'])} daily records "
          f"({time.monotonic() - t0:.1f} s)", flush=True)

    root = base / "killed"
    rng = random.Random(args.seed)
    violations: list[tuple[int, str]] = []
    progressed = 0  # kills after which more hours were on disk than before
    hours_seen = 0
    torn_before = 0
    t0 = time.monotonic()
    for k in range(1, args.kills + 1):
        proc = start_bot(root, BOT_BARS=bars, BOT_BEAT="0.05", BOT_LAZY="1")
        time.sleep(rng.uniform(*args.window))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        violations.extend((k, v) for v in _violations(root))
        try:
            hours = len(records(root, "1h"))
        except AssertionError:  # a torn line: counted as a violation above
            hours = hours_seen
        progressed += hours > hours_seen
        hours_seen = max(hours_seen, hours)
        if k % 50 == 0 or k == args.kills:
            torn = len(list(root.rglob("*.torn")))
            print(f"  {k:4d} kills: {hours_seen} hourly records on disk, {progressed} kills "
                  f"after progress, {torn - torn_before} torn tails set aside, "
                  f"{len(violations)} violations ({time.monotonic() - t0:.0f} s)", flush=True)
            torn_before = torn
    if hours_seen >= len(expected["1h"]):
        print("note: the bot reached the end of the series before the kills ended; "
              "use more --bars")
    run_bot(root, timeout=1200, BOT_BARS=bars, BOT_BEAT="0.05", BOT_LAZY="1")  # to the end
    violations.extend((args.kills + 1, v) for v in _violations(root))
    for period in ("1h", "24h"):
        got: list[dict[str, Any]] = records(root, period)
        if got != expected[period]:
            lost = {r["ts"] for r in expected[period]} - {r["ts"] for r in got}
            diff = sum(a != b for a, b in zip(got, expected[period], strict=False))
            violations.append((args.kills + 1, f"{period}: {len(got)} records vs "
                               f"{len(expected[period])} uninterrupted, {len(lost)} missing, "
                               f"{diff} differing"))
    torn = sorted(str(p.relative_to(root)) for p in root.rglob("*.torn"))
    print(f"\n{args.kills} kills, {progressed} after progress; {len(torn)} torn tail(s) set "
          f"aside {torn}; final records equal an uninterrupted run's: "
          f"{not any(v[1].startswith(('1h:', '24h:')) for v in violations)}")
    for k, v in violations:
        print(f"VIOLATION after kill {k}: {v}")
    print(f"{len(violations)} violation(s)")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
