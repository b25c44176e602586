"""The demo paper bot on real bars (backtesting.py's bundled EUR/USD and GOOG data).

The drawdown the demo reports is checked against its own equity curve, recomputed with
numpy, and against the health records it wrote; the paper account is checked against
its fills. The CLI, SIGTERM handling and the smoke harness run as subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from collector_support import require_binary, wait_until
from otlp_receiver import OtlpReceiver

from ensemble_otel.contract.registry import EQUITY, STRATEGY_ID_ATTRIBUTE
from ensemble_otel.demo.bot import PROFILES, PaperBot
from ensemble_otel.demo.data import load_bars
from ensemble_otel.testing import capture

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("ensemble-otel"))
_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "PAPER_TRADING_ROOT", "PYTHONPATH",
         "STRATEGY_ID", "SCHEMA_VERSION")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENSEMBLE_", "OTEL_")) and k not in _DROP}
    env.update(extra)
    return env


def records(root: Path, kind: str, strategy: str) -> list[dict[str, Any]]:
    directory = (root / "logs" / "events" / strategy if kind == "events"
                 else root / "logs" / kind / "health_snapshot" / strategy)
    out: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.jsonl")):
        out.extend(json.loads(line) for line in path.read_text().splitlines())
    return out


def unix(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def demo(*args: str, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "demo", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or clean_env())


def summary_value(stdout: str, label: str) -> str:
    match = re.search(rf"^\s+{label}\s+(.*)$", stdout, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{stdout}"
    return match.group(1)


# -- in process: the numbers ----------------------------------------------------------------

@pytest.mark.parametrize(("data", "n"), [("EURUSD", 500), ("GOOG", 500)])
def test_reported_drawdown_is_the_drawdown_of_the_equity_curve(
    tmp_path: Path, data: str, n: int
) -> None:
    bars = load_bars(data, n)
    assert len(bars) == n
    with capture(root=tmp_path, strategy_id="demo") as cap:
        result = PaperBot(cap.telemetry, PROFILES[data]).run(bars)
    assert result.bars == n and len(result.equity) == n
    ts = np.array([t for t, _ in result.equity])
    equity = np.array([e for _, e in result.equity])
    assert np.all(np.diff(ts) > 0)
    # backtesting.py's definition, recomputed independently from the curve
    peak = np.maximum.accumulate(equity)
    drawdown = 1.0 - equity / peak
    assert result.max_drawdown == pytest.approx(drawdown.max(), rel=1e-12, abs=1e-15)
    assert result.max_drawdown > 0.001  # the slice really draws down: the check is not vacuous
    assert result.final_equity == equity[-1]

    # every hourly record agrees with the curve at its bucket's last bar
    hourly = records(tmp_path, "1h", "demo")
    assert len(hourly) == result.records["1h"] > 0
    index = {t: i for i, t in enumerate(ts)}
    for rec in hourly:
        i = index[unix(rec["last_bar_ts"])]
        assert rec["equity"] == pytest.approx(equity[i], rel=1e-12)
        assert rec["peak_equity"] == pytest.approx(peak[i], rel=1e-12)
        assert rec["drawdown"] == pytest.approx(drawdown[i], rel=1e-9, abs=1e-12)
        assert rec["max_drawdown"] == pytest.approx(drawdown[: i + 1].max(), rel=1e-9, abs=1e-12)
    assert hourly[-1]["max_drawdown"] <= result.max_drawdown + 1e-12
    daily = records(tmp_path, "24h", "demo")
    assert len(daily) == result.records["24h"] > 0
    for rec in daily:
        i = index[unix(rec["last_bar_ts"])]
        assert rec["equity"] == pytest.approx(equity[i], rel=1e-12)


def test_paper_account_adds_up_from_its_fills(tmp_path: Path) -> None:
    bars = load_bars("EURUSD", 500)
    with capture(root=tmp_path, strategy_id="demo") as cap:
        bot = PaperBot(cap.telemetry, PROFILES["EURUSD"])
        result = bot.run(bars)
    events = records(tmp_path, "events", "demo")
    fills = [e for e in events if e["event"] == "order_filled"]
    orders = [e for e in events if e["event"] == "order_submitted"]
    assert len(fills) == result.fills > 0 and len(orders) == result.orders
    assert sum(e["event"] == "risk_warning" for e in events) == result.risk_warnings
    assert sum(e["event"] == "risk_breach" for e in events) == result.risk_breaches
    # every order was filled at the open of the bar after it was submitted
    opens = {b.ts: b.open for b in bars}
    times = [b.ts for b in bars]
    submitted = {e["order_id"]: unix(e["bar_ts"]) for e in orders}
    for f in fills:
        filled_at = unix(f["bar_ts"])
        assert times[times.index(submitted[f["order_id"]]) + 1] == filled_at
        assert f["price"] == opens[filled_at]
    # cash and position from the fills alone give the final equity
    cash = PROFILES["EURUSD"].cash
    position = 0.0
    for f in fills:
        signed = f["qty"] if f["side"] == "buy" else -f["qty"]
        cash -= signed * f["price"] + f["commission"]
        position += signed
    assert position == bot.broker.qty
    assert cash + position * bars[-1].close == pytest.approx(result.final_equity, abs=0.01)


# -- the command ------------------------------------------------------------------------------

def test_demo_command_on_a_short_slice(tmp_path: Path) -> None:
    root = tmp_path / "out"
    done = demo("--bars", "500", "--root", str(root))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert summary_value(out, "bars").startswith("500 ")
    reported = float(summary_value(out, "max drawdown").rstrip("%")) / 100
    assert re.search(r"^validation: OK \(strict\)", out, re.MULTILINE), out
    report = re.search(r"^report: (.+)$", out, re.MULTILINE)
    assert report and Path(report.group(1)).is_file()
    sid = "demo-sma-eurusd"
    assert f"logs/heartbeat/{sid}.json" in out
    beat = json.loads((root / "logs" / "heartbeat" / f"{sid}.json").read_text())
    assert beat["state"] == "stopped"
    # the drawdown of the equity series in the hourly records (bucket ends only) can miss
    # intra-hour troughs, never exceed what the bot saw on every bar
    hourly = records(root, "1h", sid)
    eq = np.array([r["equity"] for r in hourly])
    from_records = (1.0 - eq / np.maximum.accumulate(eq)).max()
    assert from_records <= reported + 5e-5
    assert hourly[-1]["max_drawdown"] <= reported + 5e-5  # the open hour is not a record yet
    assert max(r["max_drawdown"] for r in hourly) >= from_records - 1e-12
    counts = re.search(r"1h: (\d+)\s+24h: (\d+)\s+events: (\d+)", out)
    assert counts and int(counts.group(1)) == len(hourly)
    assert int(counts.group(2)) == len(records(root, "24h", sid))
    assert int(counts.group(3)) == len(records(root, "events", sid))


def test_demo_runs_again_from_scratch(tmp_path: Path) -> None:
    root = tmp_path / "out"
    first = demo("--bars", "200", "--root", str(root), "--no-report")
    second = demo("--bars", "200", "--root", str(root), "--no-report")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert summary_value(second.stdout, "records") == summary_value(first.stdout, "records")
    hourly = records(root, "1h", "demo-sma-eurusd")
    assert len(hourly) == len({r["ts"] for r in hourly}) == 199  # not written twice


def test_demo_leaves_records_it_did_not_write_alone(tmp_path: Path) -> None:
    root = tmp_path / "out"
    mine = root / "logs" / "1h" / "health_snapshot" / "live-bot" / "2024-01-01.jsonl"
    mine.parent.mkdir(parents=True)
    mine.write_text('{"ts": "2024-01-01T00:00:00Z"}\n')
    done = demo("--bars", "50", "--root", str(root), "--strategy", "live-bot")
    assert done.returncode == 2
    assert "live-bot" in done.stderr and "did not write" in done.stderr
    assert mine.read_text() == '{"ts": "2024-01-01T00:00:00Z"}\n'


def test_demo_goog_daily(tmp_path: Path) -> None:
    root = tmp_path / "out"
    done = demo("--data", "GOOG", "--bars", "300", "--root", str(root), "--no-report")
    assert done.returncode == 0, done.stderr
    sid = "demo-sma-goog"
    hourly, daily = records(root, "1h", sid), records(root, "24h", sid)
    assert len(hourly) == len(daily) == 299  # one bar a day: every hour closed is a day
    assert all(r["bars"] == 1 for r in daily)


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--bars", "0"], "--bars"), (["--bars", "x"], "--bars"), (["--speed", "-5"], "--speed"),
     (["--speed", "nan"], "--speed"), (["--data", "BTCUSD"], "--data"),
     (["--strategy", "../up"], "strategy_id")],
)
def test_bad_arguments(tmp_path: Path, args: list[str], named: str) -> None:
    done = demo(*args, "--root", str(tmp_path / "out"))
    assert done.returncode == 2
    assert named in done.stderr, done.stderr
    assert not (tmp_path / "out" / "logs").exists()


def test_sigterm_stops_the_paced_demo_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "out"
    sid = "demo-sma-eurusd"
    heartbeat = root / "logs" / "heartbeat" / f"{sid}.json"
    proc = subprocess.Popen(
        [CLI, "demo", "--root", str(root), "--speed", "36000", "--no-report"],  # 10 bars a s
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env(ENSEMBLE_HEARTBEAT_INTERVAL="0.5"))
    try:
        wait_until(lambda: heartbeat.exists() and json.loads(heartbeat.read_text())["seq"] >= 3,
                   timeout=30, interval=0.05, message="the paced demo never beat")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "(stopped by SIGTERM)" in out
    bars = int(summary_value(out, "bars").split()[0])
    assert 0 < bars < 5000
    assert json.loads(heartbeat.read_text())["state"] == "stopped"
    assert re.search(r"^validation: OK", out, re.MULTILINE), out


def test_demo_exports_over_otlp(tmp_path: Path) -> None:
    with OtlpReceiver() as rx:
        done = demo("--bars", "100", "--root", str(tmp_path / "out"), "--no-report",
                    "--otlp-endpoint", rx.endpoint,
                    env=clean_env(OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf"))
        assert done.returncode == 0, done.stderr
        points = wait_until(lambda: [p for p in rx.points() if p.name == EQUITY], timeout=10,
                            message="no equity point received")
        events = wait_until(lambda: [r for r in rx.logs() if r.event_name == "order_filled"],
                            timeout=10, message="no order_filled log record received")
    assert {p.resource[STRATEGY_ID_ATTRIBUTE] for p in points} == {"demo-sma-eurusd"}
    final = float(summary_value(done.stdout, "equity").split("->")[1].split()[0]
                  .replace(",", ""))
    assert points[-1].value == pytest.approx(final, abs=0.01)  # exported at shutdown
    assert events[0].resource[STRATEGY_ID_ATTRIBUTE] == "demo-sma-eurusd"


# -- the smoke harness ------------------------------------------------------------------------

def _smoke(tmp_path: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    bash = require_binary("bash", "apt-get install bash")
    return subprocess.run(
        [bash, str(REPO / "scripts" / "smoke.sh"), *command], capture_output=True, text=True,
        timeout=300, env=clean_env(SMOKE_DIR=str(tmp_path / "smoke"), VENV=str(
            Path(sys.executable).parent.parent), **env))


def test_smoke_harness_passes_on_the_demo(tmp_path: Path) -> None:
    started = time.monotonic()
    done = _smoke(tmp_path, SMOKE_SECONDS="2")
    assert done.returncode == 0, done.stdout + done.stderr
    for n in ("1/5", "2/5", "3/5", "4/5", "5/5"):
        assert f"== smoke [{n}]" in done.stdout
    assert "SMOKE OK" in done.stdout
    assert "heartbeat state: stopped" in done.stdout
    assert "(stopped by SIGTERM)" in done.stdout
    assert time.monotonic() - started < 120


def test_smoke_harness_fails_when_no_heartbeat_appears(tmp_path: Path) -> None:
    """A bot with ensemble-otel switched off never beats: step 2 fails, naming why."""
    done = _smoke(tmp_path, sys.executable, "-c", "import time; time.sleep(60)",
                  SMOKE_TIMEOUT="3", OTEL_SDK_DISABLED="true")
    assert done.returncode == 1
    assert "SMOKE FAILED at step 2/5: no heartbeat file after 3s" in done.stderr


def test_smoke_harness_fails_when_sigterm_is_not_handled(tmp_path: Path) -> None:
    """A bot that dies on SIGTERM without shutting down: step 4 says so."""
    bot = tmp_path / "bot.py"
    bot.write_text("import signal, os, time\n"
                   "signal.signal(signal.SIGTERM, lambda *a: os._exit(0))\n"
                   "time.sleep(60)\n")
    done = _smoke(tmp_path, sys.executable, str(bot), SMOKE_SECONDS="1")
    assert done.returncode == 1
    assert re.search(r"SMOKE FAILED at step 4/5: heartbeat state is '(running|starting)' after "
                     r"SIGTERM \(expected 'stopped'\)", done.stderr), done.stderr


def test_smoke_harness_fails_when_expected_records_are_missing(tmp_path: Path) -> None:
    """A bot that beats and stops cleanly but writes no event: `validate --expect` in step 5
    fails instead of passing on what is not there."""
    bot = tmp_path / "bot.py"
    bot.write_text("import signal, sys, time\n"
                   "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
                   "time.sleep(60)\n")
    done = _smoke(tmp_path, sys.executable, str(bot), SMOKE_SECONDS="1",
                  SMOKE_EXPECT="heartbeat event")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "expected at least 1 event record, found 0" in done.stdout
    assert "SMOKE FAILED at step 5/5" in done.stderr
