"""`ensemble-otel status`: one line per strategy; read-only, tolerant, never says healthy for
a dead bot or for nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from unit_support import DAY0

from ensemble_otel import cli
from ensemble_otel.paths import heartbeat_path, journal_path, state_path

SID = "st1"

# Two full hours and a part of the third, then SIGKILL: the state holds the open hour.
BOT = f"""
import os, signal
import ensemble_otel
t = ensemble_otel.configure(strategy_id="{SID}")
equity = 1000.0
for i in range(2 * 6 + 3):
    equity += 10.0 if i % 2 else -4.0
    t.health.maybe_emit({DAY0} + i * 600, equity=equity, traded_notional=100.0)
t.health.save_state()
print("done", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def killed_bot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("status") / "root"
    env = {**os.environ, "PAPER_TRADING_ROOT": str(root), "OTEL_SDK_DISABLED": "false"}
    env.pop("ENSEMBLE_STRATEGY_ID", None)
    done = subprocess.run([sys.executable, "-c", BOT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "done" in done.stdout, done.stderr
    return root


def test_one_line_per_strategy_with_buckets(killed_bot: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(["status", "--root", str(killed_bot)], capsys)
    assert code == 1  # the bot was killed: its heartbeat proves nothing
    lines = out.splitlines()
    assert len(lines) == 1
    text = lines[0]
    assert text.startswith(f"{SID} | heartbeat dead: pid ")
    assert "last 1h 2024-03-01T01:00:00Z" in text  # the second hour closed at the third's bar
    assert "open 1h 2024-03-01T02:00:00Z (3 bars)" in text
    assert "open 24h 2024-03-01T00:00:00Z (15 bars)" in text
    assert "last 24h none" in text


def test_json_output(killed_bot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(["status", "--root", str(killed_bot), "--format", "json", "--no-pid"],
                         capsys)
    doc = json.loads(out)
    (s,) = doc["strategies"]
    assert s["strategy_id"] == SID
    assert s["last"]["1h"]["ts"] == "2024-03-01T01:00:00Z"
    assert s["open"]["1h"]["bars"] == 3
    # equity: 1000 then -4/+10 alternately; 15 bars -> 1000 + 7*10 - 8*4 = 1038
    assert s["open"]["1h"]["equity"] == pytest.approx(1038.0)
    assert s["open"]["24h"]["bars"] == 15
    assert s["heartbeat"]["status"] in ("ok", "stale")
    assert doc["exit_code"] == code


def test_newest_journal_line_wins(killed_bot: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(killed_bot, root, symlinks=True)
    path = state_path(root, SID)
    state = json.loads(path.read_bytes())
    newer = {**state, "seq": state["seq"] + 5, "equity": 5.0}
    newer["buckets"]["1h"]["bars"] = 4
    with open(journal_path(path), "wb") as fh:
        fh.write(json.dumps({**state, "seq": state["seq"] + 1}).encode() + b"\n")
        fh.write(json.dumps(newer).encode() + b"\n")
        fh.write(b'{"seq": 99999, "torn')  # a torn tail is never taken
    _, out, _ = _main(["status", "--root", str(root), "--format", "json"], capsys)
    open_1h = json.loads(out)["strategies"][0]["open"]["1h"]
    assert open_1h["bars"] == 4 and open_1h["equity"] == 5.0


def test_empty_or_missing_root_is_not_healthy(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    code, out, _ = _main(["status", "--root", str(missing)], capsys)
    assert code == 1 and "no strategy under" in out and "does not exist" in out
    assert not missing.exists()  # read-only: nothing created
    code, out, _ = _main(["status", "--root", str(tmp_path)], capsys)
    assert code == 1 and "no strategy under" in out


def test_partial_and_hostile_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    hb = heartbeat_path(root, SID)
    hb.parent.mkdir(parents=True)
    hb.symlink_to("/dev/zero")
    snap = root / "logs/1h/health_snapshot" / SID / "2024-03-01.jsonl"
    snap.parent.mkdir(parents=True)
    snap.write_bytes(b'{"ts": "2024-03-01T00:00:00Z", "equity": 1e308, "pnl": -1e308}\n{"ts"')
    state = state_path(root, SID)
    state.parent.mkdir(parents=True)
    os.mkfifo(state)  # would block a naive reader
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    code, out, _ = _main(["status", "--root", str(root)], capsys)
    assert code == 1
    (text,) = out.splitlines()
    assert "heartbeat unreadable" in text and "symbolic link" in text
    assert "last 1h 2024-03-01T00:00:00Z equity 1e+308" in text and "pnl -1e+308" in text
    assert "FIFO" in text and "open 1h none" in text
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_names_are_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    sid = "x\nok: all fine\x1b[8m"
    snap = root / "logs/1h/health_snapshot" / sid / "2024-03-01.jsonl"
    snap.parent.mkdir(parents=True)
    snap.write_bytes(b'{"ts": "2024-03-01T00:00:00Z\\u001b[2J", "equity": 1}\n')
    code, out, _ = _main(["status", "--root", str(root)], capsys)
    assert code == 1
    assert len(out.splitlines()) == 1 and "\x1b" not in out and "x\\nok: all fine" in out


def test_live_strategy_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from ensemble_otel.heartbeat import Heartbeat
    from ensemble_otel.jsonl import atomic_write_json
    from ensemble_otel.settings import load_settings
    root = tmp_path / "root"
    beat = Heartbeat(load_settings({}, root=root, strategy_id=SID), "i")
    atomic_write_json(heartbeat_path(root, SID), beat.record(time.time(), "running"))
    code, out, _ = _main(["status", "--root", str(root)], capsys)
    assert code == 0 and out.startswith(f"{SID} | heartbeat ok: running")
    assert "last 1h none" in out and "open 1h none" in out
    assert _main(["status", "--root", str(root), "--strategy", "../x"], capsys)[0] == 2


def test_json_with_a_non_utf8_strategy_directory(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    sid = os.fsdecode(b"s-\xff")
    snap = root / "logs/1h/health_snapshot" / sid / "2024-03-01.jsonl"
    snap.parent.mkdir(parents=True)
    snap.write_bytes(b'{"ts": "2024-03-01T00:00:00Z", "equity": 1}\n')
    code, out, err = _main(["status", "--root", str(root), "--format", "json"], capsys)
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert doc["strategies"][0]["strategy_id"] == "s-\\xff"
    assert doc["strategies"][0]["last"]["1h"]["equity"] == 1


def test_open_buckets_from_a_close_journal_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Killed after a bucket close with no later state save: the newest state is the close's
    journal line (the view before the close and the closing bar's time), which status
    expands (redoing the close) like the state loader."""
    root = tmp_path / "root"
    bot = BOT.replace("t.health.save_state()\n", "")
    env = {**os.environ, "PAPER_TRADING_ROOT": str(root), "OTEL_SDK_DISABLED": "false",
           "ENSEMBLE_HEARTBEAT_INTERVAL": "3600"}
    env.pop("ENSEMBLE_STRATEGY_ID", None)
    done = subprocess.run([sys.executable, "-c", bot], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "done" in done.stdout, done.stderr
    newest = journal_path(state_path(root, SID)).read_bytes().splitlines()[-1]
    assert b'"view_format":2' in newest and b'"close":' in newest  # a close's line
    _, out, _ = _main(["status", "--root", str(root), "--format", "json", "--no-pid"],
                         capsys)
    (s,) = json.loads(out)["strategies"]
    # the two closed hours are in the journalled day bucket; the bars after the close were
    # never saved (the bot died before its next beat), so no open hour is claimed
    assert s["open"]["24h"]["bars"] == 12
    assert s["open"]["24h"]["equity"] == pytest.approx(1036.0)
    assert s["open"]["1h"] is None
    assert s["last"]["1h"]["ts"] == "2024-03-01T01:00:00Z"
