"""Speed of ``ensemble-otel validate`` on a large JSONL file, against baselines run here.

The input: >= 200 MB of realistic records (hourly and daily health snapshots and events of
eight strategies, interleaved as one process would write them), generated into
``bench/_out/validate/records.jsonl`` (reused when current). One file of mixed kinds, so
the strict mode tells every line's kind from its fields.

Baselines, measured in the same run:

- ``jq`` doing the permissive field check (non-empty string strategy_id and
  schema_version) over the whole file; installed with apt-get when missing;
- the ``jsonschema`` package validating line by line against the record schemas
  (``json.loads`` + ``Draft202012Validator.iter_errors``, kind told from the fields),
  timed on a sample of lines and extrapolated per line to the whole file.

Both ``validate`` runs are the command line (``python -m ensemble_otel.validate``), start-up
included, as a user runs it. Targets: permissive >= 5x as fast as jq; strict >= 30x as
fast as jsonschema and no slower than jq. A smaller file with injected faults checks that
jq and the validator flag the same lines, so the comparison is of equal work.

    python bench/validate_bench.py            # ENSEMBLE_BENCH_QUICK=1: a 24 MB file
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from _common import OUT_DIR, QUICK, Row, print_rows, row, save

TARGET_BYTES = (24 if QUICK else 210) * 1_000_000
SAMPLE_LINES = 5_000 if QUICK else 20_000
GENERATOR_VERSION = "1"
JQ_FILTER = ('select((.strategy_id|type) != "string" or .strategy_id == "" '
             'or (.schema_version|type) != "string" or .schema_version == "") '
             '| input_line_number')
STRATEGIES = [f"ens-{n:02d}.{pair}" for n, pair in enumerate(
    ["eurusd", "gbpusd", "usdjpy", "goog", "aapl", "msft", "btcusd", "ethusd"])]
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _iso(t: datetime, micro: bool = False) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def _events(rng: random.Random, sid: str, hour: datetime) -> list[dict[str, Any]]:
    out = []
    for _ in range(rng.randint(1, 5)):
        ts = _iso(hour + timedelta(seconds=rng.uniform(0, 3599)), micro=True)
        base = {"ts": ts, "strategy_id": sid, "schema_version": "1.1"}
        kind = rng.random()
        if kind < 0.6:
            out.append({"ts": ts, "event": "order_filled", **base,
                        "symbol": sid.split(".")[1].upper(), "side": rng.choice(["buy", "sell"]),
                        "qty": rng.randrange(1, 500) * 100, "price": round(rng.uniform(1, 300), 5),
                        "order_id": f"{rng.getrandbits(48):012x}", "fee": round(rng.random(), 4)})
        elif kind < 0.9:
            out.append({"ts": ts, "event": "signal", **base, "name": "sma_cross",
                        "fast": rng.randint(5, 20), "slow": rng.randint(30, 90),
                        "value": rng.uniform(-1, 1)})
        else:
            out.append({"ts": ts, "event": "risk_warning", **base, "limit": "max_drawdown",
                        "value": rng.uniform(0.05, 0.2), "threshold": 0.1,
                        "message": "drawdown above the warning level"})
    return out


def _snapshot(rng: random.Random, sid: str, start: datetime, period: str,
              state: dict[str, float]) -> dict[str, Any]:
    state["equity"] *= 1 + rng.gauss(0, 0.002)
    state["peak"] = max(state["peak"], state["equity"])
    drawdown = 1 - state["equity"] / state["peak"]
    state["max_dd"] = max(state["max_dd"], drawdown)
    notional = rng.uniform(0, 50_000)
    span = timedelta(hours=1 if period == "1h" else 24)
    return {
        "ts": _iso(start), "period": period, "strategy_id": sid, "schema_version": "1.1",
        "equity": state["equity"], "peak_equity": state["peak"], "drawdown": drawdown,
        "max_drawdown": state["max_dd"], "pnl": rng.gauss(0, 150),
        "turnover": notional / state["equity"], "traded_notional": notional,
        "realized_pnl": rng.gauss(0, 500) if rng.random() < 0.9 else None,
        "unrealized_pnl": rng.gauss(0, 200) if rng.random() < 0.9 else None,
        "open_positions": rng.randint(0, 4), "risk_breaches": int(rng.random() < 0.02),
        "risk_warnings": int(rng.random() < 0.1), "bars": 60 if period == "1h" else 1440,
        "first_bar_ts": _iso(start), "last_bar_ts": _iso(start + span - timedelta(minutes=1)),
    }


def generate(path: Path, target: int) -> int:
    """Write realistic records until ``target`` bytes; returns the line count."""
    rng = random.Random(20240101)
    states = {s: {"equity": 100_000.0, "peak": 100_000.0, "max_dd": 0.0} for s in STRATEGIES}
    dumps = orjson.dumps
    size = lines = 0
    hour = 0
    with open(path, "wb") as fh:
        while size < target:
            start = T0 + timedelta(hours=hour)
            batch: list[dict[str, Any]] = []
            for sid in STRATEGIES:
                batch += _events(rng, sid, start)
                batch.append(_snapshot(rng, sid, start, "1h", states[sid]))
                if start.hour == 23:
                    day = start.replace(hour=0)
                    batch.append(_snapshot(rng, sid, day, "24h", states[sid]))
            data = b"\n".join(dumps(r) for r in batch) + b"\n"
            fh.write(data)
            size += len(data)
            lines += len(batch)
            hour += 1
    return lines


def records_file() -> tuple[Path, int]:
    directory = OUT_DIR / "validate"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "records.jsonl"
    stamp = directory / "records.stamp"
    want = f"{GENERATOR_VERSION} {TARGET_BYTES}"
    if path.exists() and stamp.exists() and stamp.read_text().split("\n")[0] == want:
        return path, int(stamp.read_text().split("\n")[1])
    t0 = time.perf_counter()
    lines = generate(path, TARGET_BYTES)
    stamp.write_text(f"{want}\n{lines}\n")
    print(f"generated {path} ({path.stat().st_size / 1e6:,.0f} MB, {lines:,} lines) "
          f"in {time.perf_counter() - t0:.1f}s", flush=True)
    return path, lines


def ensure_jq() -> str:
    found = shutil.which("jq")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("validate_bench: jq is missing and installing it needs root: apt-get install jq")
    print("installing jq with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "jq"],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which("jq")
    if not found:
        sys.exit("validate_bench: jq is still missing after apt-get install jq")
    return found


def _timed(cmd: list[str], expect_code: int = 0) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != expect_code:
        raise SystemExit(f"{cmd[:4]}... exited {proc.returncode}:\n"
                         f"{proc.stdout[-2000:].decode(errors='replace')}"
                         f"{proc.stderr[-2000:].decode(errors='replace')}")
    return elapsed, proc.stdout


def _validate_cmd(path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ensemble_otel.validate", *args, str(path)]


def jsonschema_checks_date_time() -> bool:
    from jsonschema import Draft202012Validator

    return "date-time" in Draft202012Validator.FORMAT_CHECKER.checkers


def jsonschema_per_line(path: Path, n: int) -> float:
    """Seconds per line for jsonschema on the first ``n`` lines (kind from the fields)."""
    from jsonschema import Draft202012Validator

    from ensemble_otel._validate_rules import kind_of
    from ensemble_otel.contract import schemas

    validators = {
        name: Draft202012Validator(schemas.load(name),
                                   format_checker=Draft202012Validator.FORMAT_CHECKER)
        for name in ("event", "health_snapshot_1h", "health_snapshot_24h", "heartbeat")
    }
    with open(path, "rb") as fh:
        sample = [fh.readline() for _ in range(n)]
    t0 = time.perf_counter()
    errors = 0
    for raw in sample:
        record = json.loads(raw)
        kind = kind_of(record)
        assert kind is not None
        errors += sum(1 for _ in validators[kind].iter_errors(record))
    elapsed = time.perf_counter() - t0
    assert errors == 0, errors
    return elapsed / n


def same_work_check(directory: Path, jq: str) -> None:
    """jq and the permissive validator flag the same lines of a file with faults."""
    rng = random.Random(7)
    path = directory / "faults.jsonl"
    lines = []
    bad = []
    for i in range(20_000):
        record: dict[str, Any] = {"ts": "2024-01-01T00:00:00Z", "event": "x",
                                  "strategy_id": "s1", "schema_version": "1.1", "n": i}
        if rng.random() < 0.01:
            field = rng.choice(["strategy_id", "schema_version"])
            fault = rng.choice(["", None, 5, "drop"])
            if fault == "drop":
                del record[field]
            else:
                record[field] = fault
            bad.append(i + 1)
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    _, out = _timed([jq, "-r", JQ_FILTER, str(path)])
    by_jq = [int(x) for x in out.split()]
    _, out = _timed(_validate_cmd(path, "--format", "json", "--max-errors", "0"), 1)
    by_us = sorted({v["line"] for v in json.loads(out)["violations"]})
    assert by_jq == bad == by_us, (len(by_jq), len(bad), len(by_us))
    print(f"same work: jq and validate flag the same {len(bad)} of {len(lines)} lines",
          flush=True)


def main() -> list[Row]:
    path, lines = records_file()
    size = path.stat().st_size
    jq = ensure_jq()
    same_work_check(path.parent, jq)
    repeat = 2 if QUICK else 3
    times: dict[str, float] = {"jq": float("inf"), "permissive": float("inf"),
                               "strict": float("inf"), "jsonschema": float("inf")}
    per_line = float("inf")
    for _ in range(repeat):  # interleaved, so a busy moment hits every contender alike
        t, out = _timed([jq, "-r", JQ_FILTER, str(path)])
        assert out == b"", out[:200]
        times["jq"] = min(times["jq"], t)
        t, out = _timed(_validate_cmd(path))
        assert out.startswith(b"OK (permissive)"), out
        times["permissive"] = min(times["permissive"], t)
        t, out = _timed(_validate_cmd(path, "--strict"))
        assert out.startswith(b"OK (strict)"), out
        times["strict"] = min(times["strict"], t)
        per_line = min(per_line, jsonschema_per_line(path, SAMPLE_LINES))
    times["jsonschema"] = per_line * lines

    mb = size / 1e6
    print(f"\ninput: {path} ({mb:,.0f} MB, {lines:,} lines); best of {repeat} runs; "
          f"jsonschema timed on {SAMPLE_LINES:,} lines ({per_line * 1e6:.1f} us/line) and "
          "extrapolated to the file; jsonschema's date-time format check is "
          + ("on" if jsonschema_checks_date_time() else
             "off (rfc3339-validator is not installed; the schema's pattern still applies)"))
    for name in ("jq", "permissive", "strict", "jsonschema"):
        extra = " (extrapolated)" if name == "jsonschema" else ""
        print(f"  {name:<11} {times[name]:8.2f} s  {mb / times[name]:8.1f} MB/s{extra}")
    print(f"  permissive is {times['jq'] / times['permissive']:.1f}x as fast as jq "
          "(target >= 5x)")
    print(f"  strict is {times['jsonschema'] / times['strict']:.1f}x as fast as jsonschema "
          f"(target >= 30x) and {times['jq'] / times['strict']:.1f}x as fast as jq "
          "(target >= 1x)\n", flush=True)
    return [
        row("validate", "jq field check, whole file", times["jq"], "s"),
        row("validate", "jsonschema line by line, extrapolated", times["jsonschema"], "s"),
        row("validate", "permissive vs jq field check", times["permissive"], "s",
            baseline="jq", base_value=times["jq"], at_most=1 / 5,
            target="<= 0.2x (>= 5x as fast)"),
        row("validate", "strict vs jsonschema", times["strict"], "s",
            baseline="jsonschema", base_value=times["jsonschema"], at_most=1 / 30,
            target="<= 0.033x (>= 30x as fast)"),
        row("validate", "strict vs jq field check", times["strict"], "s",
            baseline="jq", base_value=times["jq"], at_most=1.0,
            target="<= 1x (no slower)"),
    ]


if __name__ == "__main__":
    rows = main()
    print_rows(rows)
    save("validate", rows)
    sys.exit(0 if all(r.met is not False for r in rows) else 1)
