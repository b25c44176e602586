"""Restarts: the open bucket, peak and max drawdown continue; a bucket on disk is never
written twice; a corrupt state file is set aside; one live process per root and strategy."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from unit_support import DAY0, at, snapshot_records

import ensemble_otel
from ensemble_otel import ConfigError, health
from ensemble_otel.contract import registry as names
from ensemble_otel.testing import Capture, capture


@contextmanager
def run(root: Path, strategy: str = "s1", **settings: Any) -> Iterator[Capture]:
    """One life of the bot: configure, yield, shut down (a clean stop)."""
    with capture(root=root, strategy_id=strategy, **settings) as cap:
        yield cap


def _state_path(root: Path, strategy: str = "s1") -> Path:
    return root / "state" / "health" / f"{strategy}.json"


def _hours(root: Path, strategy: str = "s1") -> list[dict[str, Any]]:
    return snapshot_records(root, "1h", strategy)


def _days(root: Path, strategy: str = "s1") -> list[dict[str, Any]]:
    return snapshot_records(root, "24h", strategy)


# -- clean restarts ---------------------------------------------------------------------------


def test_restart_mid_hour_continues_the_open_bucket(root: Path) -> None:
    with run(root) as cap:
        cap.health.maybe_emit(at(0, 10), equity=100.0, traded_notional=5.0, risk_breaches=1)
        cap.health.maybe_emit(at(0, 20), equity=120.0, risk_warnings=2)
    assert _hours(root) == []
    with run(root) as cap:
        cap.health.maybe_emit(at(0, 30), equity=110.0, traded_notional=7.0)
        cap.health.maybe_emit(at(0, 40), equity=90.0, risk_breaches=1)
        [record] = cap.health.maybe_emit(at(1, 5), equity=95.0)
    assert record["bars"] == 4
    assert record["traded_notional"] == 12.0 and record["turnover"] == 12.0 / 90.0
    assert (record["risk_breaches"], record["risk_warnings"]) == (2, 2)
    assert (record["first_bar_ts"], record["last_bar_ts"]) == (
        "2024-03-01T00:10:00Z", "2024-03-01T00:40:00Z")
    assert record["peak_equity"] == 120.0
    assert record["drawdown"] == record["max_drawdown"] == 1 - 90 / 120
    assert record["pnl"] == 90.0 - 100.0  # the first equity came from the first run
    assert _hours(root) == [record]


def test_restart_keeps_peak_and_max_drawdown(root: Path) -> None:
    with run(root) as cap:
        cap.health.maybe_emit(at(0, 0), equity=150.0)
        cap.health.maybe_emit(at(0, 30), equity=200.0)
        cap.health.maybe_emit(at(1, 0), equity=150.0)  # drawdown 0.25
        cap.health.maybe_emit(at(2, 0), equity=170.0)
    with run(root) as cap:
        # before any bar of the new run, the gauges carry on
        assert cap.metric(names.EQUITY_PEAK).value == 200.0
        assert cap.metric(names.DRAWDOWN_MAX).value == 1 - 150 / 200
        assert cap.metric(names.EQUITY).value == 170.0
        assert cap.metric(names.BARS).value == 4
        [hour2] = cap.health.maybe_emit(at(3, 0), equity=180.0)
        assert cap.metric(names.DRAWDOWN).value == 1 - 180 / 200  # not reset to 0
        cap.health.maybe_emit(at(4, 0), equity=100.0)
        [hour4] = cap.health.maybe_emit(at(5, 0), equity=210.0)
        [hour5] = cap.health.maybe_emit(at(6, 0), equity=200.0)
    assert (hour2["ts"][11:13], hour2["peak_equity"], hour2["max_drawdown"]) == (
        "02", 200.0, 1 - 150 / 200)
    assert hour2["pnl"] == 170.0 - 150.0  # previous bucket's close came from the first run
    assert hour4["drawdown"] == hour4["max_drawdown"] == 1 - 100 / 200  # deeper, old peak
    assert (hour5["peak_equity"], hour5["drawdown"], hour5["max_drawdown"]) == (
        210.0, 0.0, 1 - 100 / 200)
    assert [r["ts"][11:13] for r in _hours(root)] == ["00", "01", "02", "03", "04", "05"]


def test_restart_in_a_later_hour_and_day(root: Path) -> None:
    with run(root) as cap:
        cap.health.maybe_emit(at(22, 10), equity=100.0, traded_notional=1.0)
        cap.health.maybe_emit(at(23, 50), equity=101.0, traded_notional=2.0)
    with run(root) as cap:
        written = cap.health.maybe_emit(at(2, 0, days=1), equity=99.0, traded_notional=4.0)
        assert [(r["period"], r["ts"]) for r in written] == [
            ("1h", "2024-03-01T23:00:00Z"), ("24h", "2024-03-01T00:00:00Z")]
        cap.health.maybe_emit(at(0, 0, days=2), equity=98.0)
    [day1, day2] = _days(root)
    assert (day1["bars"], day1["traded_notional"], day1["equity"]) == (2, 3.0, 101.0)
    assert (day2["bars"], day2["traded_notional"], day2["pnl"]) == (1, 4.0, 99.0 - 101.0)
    assert [r["ts"][11:13] for r in _hours(root)] == ["22", "23", "02"]


def test_many_restarts_equal_one_uninterrupted_run(tmp_path: Path) -> None:
    bars = [(DAY0 + i * 1500.0, 1000.0 + 40 * ((i * 7) % 11) - 3 * i, float(i % 4))
            for i in range(120)]  # 25-minute bars over two days and a bit

    def feed(cap: Capture, chunk: list[tuple[float, float, float]]) -> None:
        for ts, equity, notional in chunk:
            cap.health.maybe_emit(ts, equity=equity, traded_notional=notional,
                                  risk_warnings=int(notional) % 2)

    with run(tmp_path / "straight") as cap:
        feed(cap, bars)
    cuts = [0, 7, 8, 31, 50, 51, 77, 119, 120]
    for a, b in itertools.pairwise(cuts):
        with run(tmp_path / "restarted") as cap:
            feed(cap, bars[a:b])
    for period in ("1h", "24h"):
        straight = snapshot_records(tmp_path / "straight", period, "s1")
        restarted = snapshot_records(tmp_path / "restarted", period, "s1")
        assert restarted == straight, period
    assert len(_hours(tmp_path / "straight")) > 40 and len(_days(tmp_path / "straight")) == 2


def test_state_is_saved_by_the_heartbeat(root: Path) -> None:
    with run(root, heartbeat_interval=0.05) as cap:
        cap.health.maybe_emit(at(0, 1), equity=100.0)
        cap.health.maybe_emit(at(0, 2), equity=101.0)
        deadline = time.monotonic() + 10
        while True:
            try:
                state = orjson.loads(_state_path(root).read_bytes())
            except (FileNotFoundError, orjson.JSONDecodeError):
                state = {}
            if state.get("last_ts") == at(0, 2):
                break
            assert time.monotonic() < deadline, "the state was not saved by a beat"
            time.sleep(0.02)


def test_strategies_sharing_a_root_are_independent(root: Path) -> None:
    with run(root, "a") as a:
        a.health.maybe_emit(at(0, 1), equity=100.0)
        a.health.maybe_emit(at(1, 1), equity=50.0)
    with run(root, "b") as b:
        assert b.metrics(names.EQUITY) == []
        b.health.maybe_emit(at(0, 1), equity=7.0)
        [record] = b.health.maybe_emit(at(1, 1), equity=8.0)
    assert record["peak_equity"] == 7.0 and record["strategy_id"] == "b"
    assert [r["equity"] for r in _hours(root, "a")] == [100.0]


# -- exactly once after a crash ------------------------------------------------------------------


def test_bucket_on_disk_is_not_written_again_with_a_rewound_state(root: Path) -> None:
    """A crash after the append and before the state save leaves an older state file."""
    with run(root) as cap:
        cap.health.maybe_emit(at(0, 10), equity=100.0)
        cap.health.maybe_emit(at(0, 50), equity=104.0)
    old_state = _state_path(root).read_bytes()
    with run(root) as cap:
        [closed] = cap.health.maybe_emit(at(1, 5), equity=103.0)
    _state_path(root).write_bytes(old_state)  # the save after the append never happened
    with run(root) as cap:
        # the bot replays from its own checkpoint: the bar that closed hour 0 comes again
        # a bar the first life never saw, inside the hour already on disk: dropped
        assert cap.health.maybe_emit(at(0, 55), equity=500.0) == []
        again = cap.health.maybe_emit(at(1, 5), equity=103.0)
        assert [r for r in again if r["period"] == "1h"] == []
        cap.health.maybe_emit(at(1, 30), equity=102.0)
        [hour1] = cap.health.maybe_emit(at(2, 0), equity=101.0)
    assert _hours(root) == [closed, hour1]
    assert hour1["bars"] == 2 and hour1["pnl"] == 102.0 - 104.0
    assert hour1["peak_equity"] == 104.0  # the dropped 500 left no trace


def test_bucket_on_disk_is_not_written_again_without_a_state_file(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with run(root) as cap:
        cap.health.maybe_emit(at(0, 10), equity=100.0)
        cap.health.maybe_emit(at(0, 20), equity=120.0)
        cap.health.maybe_emit(at(0, 50), equity=90.0)
        [closed] = cap.health.maybe_emit(at(1, 5), equity=95.0)
    _state_path(root).unlink()
    with run(root) as cap:
        # recovered from the newest record: peak, max drawdown, the last bar's time
        assert cap.health.maybe_emit(at(0, 45), equity=1.0) == []  # in hour 0, on disk
        assert cap.health.maybe_emit(at(0, 59), equity=1.0) == []
        cap.health.maybe_emit(at(1, 5), equity=95.0)
        assert cap.metric(names.BARS_DROPPED).value == 2
        assert cap.metric(names.EQUITY_PEAK).value == 120.0
        assert cap.metric(names.DRAWDOWN_MAX).value == 1 - 90 / 120
        [hour1] = cap.health.maybe_emit(at(2, 0), equity=96.0)
    assert _hours(root) == [closed, hour1]
    assert hour1["pnl"] == 95.0 - 90.0 and hour1["peak_equity"] == 120.0


def test_crash_replay_from_the_start_writes_each_bucket_once(root: Path) -> None:
    """A bot that replays its whole history after a crash: bars already seen are dropped."""
    bars = [(at(0, 10 * i), 100.0 + i) for i in range(30)]  # five hours of 10-minute bars
    with run(root) as cap:
        for ts, equity in bars[:17]:
            cap.health.maybe_emit(ts, equity=equity)
    with run(root) as cap:
        for ts, equity in bars:
            cap.health.maybe_emit(ts, equity=equity)
        assert cap.metric(names.BARS_DROPPED).value == 17
    hours = _hours(root)
    assert [r["ts"][11:13] for r in hours] == ["00", "01", "02", "03"]
    assert all(r["bars"] == 6 for r in hours)


# -- the state journal: bucket closes append, beats and shutdown replace ------------------------


def _journal_path(root: Path, strategy: str = "s1") -> Path:
    return root / "state" / "health" / f"{strategy}.json.wal"


def _feed(cap: Capture, bars: list[tuple[float, float]]) -> None:
    for ts, equity in bars:
        if ts > cap.health.last_ts:  # a bot resuming after the last bar the telemetry kept
            cap.health.maybe_emit(ts, equity=equity, traded_notional=equity / 100)


BARS_3H = [(at(0, 10 * i), 100.0 + (i * 7) % 13) for i in range(18)]  # three hours
BARS_6H = BARS_3H + [(at(3, 10 * i), 90.0 + (i * 5) % 11) for i in range(18)]


def test_bucket_close_appends_to_the_journal_and_replaces_nothing(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replaced: list[str] = []
    real_replace = os.replace

    def replace(src: Any, dst: Any, **dir_fds: Any) -> None:
        if "dst_dir_fd" in dir_fds:  # renamed within its directory's descriptor
            dst = os.path.join(os.readlink(f"/proc/self/fd/{dir_fds['dst_dir_fd']}"), dst)
        if "health" in str(dst):  # the heartbeat's file is replaced at every beat
            replaced.append(str(dst))
        real_replace(src, dst if not dir_fds else os.path.basename(dst), **dir_fds)

    with run(root, heartbeat_interval=3600) as cap:
        monkeypatch.setattr(os, "replace", replace)
        _feed(cap, BARS_3H)
        assert replaced == []  # two closes, no file replaced
        lines = _journal_path(root).read_bytes().splitlines()
        assert [orjson.loads(x)["last_ts"] for x in lines] == [at(0, 50), at(1, 50)]
        newest = health.read_saved_state(_state_path(root))
        assert newest is not None and newest["unwritten"] != []  # written ahead of records
        assert newest["buckets"]["1h"]["start"] == at(2)
    monkeypatch.undo()
    # shutdown: the whole state in the file, the journal gone
    assert replaced == [str(_state_path(root))]
    assert not _journal_path(root).exists()
    assert orjson.loads(_state_path(root).read_bytes())["last_ts"] == at(2, 50)


@pytest.mark.parametrize("tail", ["", "torn", "stale"])
def test_crash_resumes_from_the_journal(tmp_path: Path, tail: str) -> None:
    """A copy of the root taken while the bot runs is what a crash leaves: the state file
    is older than the journal. The restart continues from the journal's newest whole line
    (a torn last line is ignored, a journal older than the file is not taken) and writes
    the same records as an uninterrupted run."""
    with run(tmp_path / "straight", heartbeat_interval=3600) as cap:
        _feed(cap, BARS_6H)
    crashed = tmp_path / "crashed"
    with run(tmp_path / "live", heartbeat_interval=3600) as cap:
        _feed(cap, BARS_3H[:4])
        cap.health.save_state()  # the state file, as a beat writes it
        _feed(cap, BARS_3H)
        shutil.copytree(tmp_path / "live", crashed,
                        ignore=shutil.ignore_patterns("*.lock", ".*.tmp"))
    journal = _journal_path(crashed)
    if tail == "torn":
        with open(journal, "ab") as fh:
            fh.write(b'{"version": 2, "seq": 99, "la')
    if tail == "stale":  # crashed between replacing the file and emptying the journal
        state = orjson.loads(_state_path(crashed).read_bytes())
        newest = health.read_saved_state(_state_path(crashed))
        assert newest is not None and newest["seq"] > state["seq"]
        _state_path(crashed).write_bytes(orjson.dumps(
            {**state, "seq": newest["seq"] + 1, "peak": 1e6}))
    with run(crashed, heartbeat_interval=3600) as cap:
        assert journal.read_bytes() == b""  # emptied before anything is appended
        if tail == "stale":
            assert cap.health.peak == 1e6  # the file was the newer
            return
        assert cap.health.last_ts == at(1, 50)  # the open hour's bars died with the process
        _feed(cap, BARS_6H)
    for period in ("1h", "24h"):
        assert snapshot_records(crashed, period, "s1") == snapshot_records(
            tmp_path / "straight", period, "s1"), period
    assert not list(crashed.rglob("*.torn")) and not list(crashed.rglob("*.corrupt"))


def test_corrupt_journal_is_set_aside(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with run(root, heartbeat_interval=3600) as cap:
        _feed(cap, BARS_3H)
    _journal_path(root).write_bytes(b"not json\n")
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    with run(root, heartbeat_interval=3600) as cap:
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "s1.json.wal" in errors[0], errors
        assert (_journal_path(root).with_name("s1.json.wal.corrupt").read_bytes()
                == b"not json\n")
        assert cap.health.last_ts == at(2, 50)  # the state file was good
        [hour2] = cap.health.maybe_emit(at(3, 0), equity=100.0)
    assert hour2["bars"] == 6


# -- corrupt state -------------------------------------------------------------------------------


def _valid_state(root: Path) -> dict[str, Any]:
    with run(root) as cap:
        cap.health.maybe_emit(at(0, 10), equity=100.0)
        cap.health.maybe_emit(at(0, 20), equity=200.0)
        cap.health.maybe_emit(at(1, 10), equity=150.0)
        cap.health.maybe_emit(at(2, 10), equity=160.0)
        cap.health.maybe_emit(at(2, 20), equity=170.0)
    return orjson.loads(_state_path(root).read_bytes())


def _garble(state: dict[str, Any], how: str) -> bytes:
    if how == "bytes":
        return b"\x00\xff not json"
    if how == "truncated":
        return orjson.dumps(state)[:40]
    if how == "empty":
        return b""
    if how == "list":
        return b"[1, 2]"
    if how == "version":
        return orjson.dumps({**state, "version": 999})
    if how == "strategy":
        return orjson.dumps({**state, "strategy_id": "someone-else"})
    if how == "peak-type":
        return orjson.dumps({**state, "peak": "high"})
    if how == "missing":
        return orjson.dumps({k: v for k, v in state.items() if k != "buckets"})
    if how == "bucket-types":
        buckets = {**state["buckets"], "1h": {**state["buckets"]["1h"], "start": "noon"}}
        return orjson.dumps({**state, "buckets": buckets, "equity": "lots"})
    if how == "bucket-null":
        buckets = {**state["buckets"], "24h": None}
        return orjson.dumps({**state, "buckets": buckets})
    raise AssertionError(how)


CORRUPTIONS = ["bytes", "truncated", "empty", "list", "version", "strategy", "peak-type",
               "missing", "bucket-types", "bucket-null"]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupt_state_is_set_aside_and_peak_recovered(
    root: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    state = _valid_state(root)
    bad = _garble(state, how)
    _state_path(root).write_bytes(bad)
    records_before = _hours(root)
    assert [r["ts"][11:13] for r in records_before] == ["00", "01"]
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    before = set(threading.enumerate())
    with run(root) as cap:
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert str(_state_path(root)) in errors[0] and ".corrupt" in errors[0]
        aside = _state_path(root).with_name("s1.json.corrupt")
        assert aside.read_bytes() == bad
        # hour 01 is on disk: a late bar cannot reopen it and nothing is written twice
        assert cap.health.maybe_emit(at(1, 50), equity=1.0) == []
        cap.health.maybe_emit(at(2, 30), equity=120.0)
        # recovered from the newest records: the peak of 200 and its drawdown survive
        assert cap.metric(names.EQUITY_PEAK).value == 200.0
        assert cap.metric(names.DRAWDOWN).value == 1 - 120 / 200
        [hour2] = cap.health.maybe_emit(at(3, 0), equity=121.0)
    assert _hours(root) == [*records_before, hour2]
    assert hour2["pnl"] == 120.0 - 150.0
    assert hour2["max_drawdown"] == 1 - 120 / 200
    assert set(threading.enumerate()) <= before


# -- one live process per root and strategy -------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    import ensemble_otel

    ensemble_otel.configure(root=sys.argv[1], strategy_id=sys.argv[2], heartbeat_interval=3600)
    print("holding", flush=True)
    sys.stdin.read()  # until the test closes stdin
    ensemble_otel.shutdown()
    """
)


@contextmanager
def holder(root: Path, strategy: str) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSEMBLE_", "OTEL_"))}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), strategy],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)


def test_second_process_with_the_same_root_and_strategy_is_refused(root: Path) -> None:
    with holder(root, "s1") as proc:
        before = set(threading.enumerate())
        with pytest.raises(ConfigError) as info:
            ensemble_otel.configure(root=root, strategy_id="s1")
        text = str(info.value)
        assert info.value.field == "strategy_id"
        assert f"pid {proc.pid}" in text and "another live process" in text
        assert str(root) in text
        assert ensemble_otel.get_telemetry() is None
        assert set(threading.enumerate()) <= before
        # the holder's files are untouched by the refused attempt
        beat = orjson.loads((root / "logs" / "heartbeat" / "s1.json").read_bytes())
        assert beat["pid"] == proc.pid
        # another strategy under the same root, and the same strategy elsewhere, are fine
        other = ensemble_otel.configure(root=root, strategy_id="s2")
        ensemble_otel.shutdown()
        assert other.closed
        elsewhere = ensemble_otel.configure(root=root.parent / "elsewhere", strategy_id="s1")
        ensemble_otel.shutdown()
        assert elsewhere.closed
    # once the holder is gone the strategy can be taken over
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1")
    assert telemetry.settings.strategy_id == "s1"


def test_lock_is_released_by_a_killed_process(root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSEMBLE_", "OTEL_"))}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), "s1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == "holding\n"
    proc.kill()
    proc.wait(timeout=60)
    assert proc.stdin is not None
    proc.stdin.close()
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1")
    assert isinstance(telemetry, ensemble_otel.Telemetry)


def test_copying_a_root_copies_the_state(tmp_path: Path) -> None:
    with run(tmp_path / "a") as cap:
        cap.health.maybe_emit(at(0, 1), equity=10.0)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with run(tmp_path / "b") as cap:
        assert cap.metric(names.EQUITY_PEAK).value == 10.0


def _problems(state: dict[str, Any], t0: float, equity_at: Any) -> list[str]:
    """What is wrong with a saved state of the bar series below (a bar a minute from t0,
    traded_notional 1.0 each, equity ``equity_at(i)`` at bar i): [] when it holds whole bars
    (counts, sums, times and levels agree)."""
    bad = []
    seen = round((state["last_ts"] - t0) / 60) + 1
    hour, day = state["buckets"]["1h"], state["buckets"]["24h"]
    if state["total_bars"] + hour["bars"] != seen:
        bad.append(f"bars {state['total_bars']} + {hour['bars']} != {seen}")
    if state["total_notional"] + hour["notional"] != float(seen):
        bad.append(f"notional {state['total_notional']} + {hour['notional']}")
    if hour["bars"] and state["last_ts"] - hour["start"] != (hour["bars"] - 1) * 60:
        bad.append(f"open hour {hour}")
    if state["equity"] != equity_at(seen - 1):
        bad.append(f"equity {state['equity']} for bar {seen}")
    if day["bars"] + hour["bars"] != (state["last_ts"] - day["start"]) / 60 + 1 and \
            day["bars"] + hour["bars"] > 0 and day["start"] >= 0:
        bad.append(f"day {day['bars']} + {hour['bars']}")
    return bad


def _bar(i: int, t0: float, equity: float) -> tuple[float, dict[str, Any]]:
    """Bar i, every other one on the general path (open_positions None)."""
    return t0 + i * 60.0, dict(equity=equity, realized_pnl=0.0, unrealized_pnl=0.0,
                               traded_notional=1.0, risk_breaches=0, risk_warnings=0,
                               open_positions=None if i % 2 else 0)


def test_state_saved_by_beats_during_bars_is_always_consistent(root: Path) -> None:
    """The beat thread saves the state while the bar thread runs: every saved copy must
    hold whole bars (counts, sums and times agree), never half of one."""
    bad: list[str] = []
    copies: list[dict[str, Any]] = []
    stop = threading.Event()
    t0 = at(0)

    def equity_at(i: int) -> float:
        return 1000.0 + i % 97

    def watch() -> None:
        path = _state_path(root)
        while not stop.is_set():
            try:
                state = orjson.loads(path.read_bytes())
            except FileNotFoundError:
                time.sleep(0.001)
                continue
            copies.append(state)
            bad.extend(_problems(state, t0, equity_at))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        with run(root, heartbeat_interval=0.002) as cap:
            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                for i in range(6000):  # a bar a minute for 100 hours, both bar paths
                    ts, fields = _bar(i, t0, equity_at(i))
                    cap.health.maybe_emit(ts, **fields)
                    if i % 500 == 0:
                        time.sleep(0.01)  # let beats land mid-hour too
            finally:
                stop.set()
                watcher.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(copies) > 20, "the watcher saw too few saved states to mean anything"
    assert bad == [], bad[:5]


def test_save_state_during_a_tight_bar_loop_is_prompt_and_whole(root: Path) -> None:
    """Bars in a tight loop on one thread while another thread saves the state again and
    again, threads switched as often as the interpreter allows: no save is starved (each
    gets the state of a bar boundary without waiting out the copy timeout), and every saved
    state holds whole bars. Equity falls on every bar, so each bar deepens the drawdown
    (a call inside the bar: a point where the interpreter may switch threads mid-bar)."""
    t0 = at(0)
    saves: list[tuple[float, dict[str, Any]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def equity_at(i: int) -> float:
        return 1_000_000.0 - i

    def saver(cap: Capture) -> None:
        path = _state_path(root)
        try:
            while not stop.is_set():
                began = time.monotonic()
                assert cap.health.save_state(fsync=False)
                took = time.monotonic() - began
                saves.append((took, orjson.loads(path.read_bytes())))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    interval = sys.getswitchinterval()
    with run(root, heartbeat_interval=3600) as cap:
        ts, fields = _bar(0, t0, equity_at(0))
        cap.health.maybe_emit(ts, **fields)
        thread = threading.Thread(target=saver, args=(cap,))
        sys.setswitchinterval(1e-6)
        try:
            thread.start()
            for i in range(1, 20_000):  # 333 hours: bucket closes too
                ts, fields = _bar(i, t0, equity_at(i))
                cap.health.maybe_emit(ts, **fields)
        finally:
            stop.set()
            thread.join(timeout=60)
            sys.setswitchinterval(interval)
        assert not thread.is_alive(), "a save never returned"
        final = cap.health.state()
    assert errors == []
    assert len(saves) > 20, "too few saves to mean anything"
    problems = [p for _, state in saves for p in _problems(state, t0, equity_at)]
    assert problems == [], problems[:5]
    # bounded: a save waits COPY_TIMEOUT at most for the bar thread's copy (the bound here
    # is generous for a busy machine; a starving copy loop took minutes), and the saved
    # copies follow the bars (never an older one after a newer one)
    assert max(took for took, _ in saves) < 10 * health.COPY_TIMEOUT
    stamps = [state["last_ts"] for _, state in saves]
    assert stamps == sorted(stamps) and len(set(stamps)) > 10
    assert final["last_ts"] == t0 + 19_999 * 60.0


def test_state_during_a_stalled_bucket_close_is_the_last_whole_state(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket close that stalls (here building its record blocks) on the bar thread:
    state() on another thread waits at most its timeout and returns the newest whole state
    (the bars before the close), never half a close; the observable callbacks do not wait
    at all and read that same state; once the close is done, copies hold it."""
    from ensemble_otel.health import closes

    with run(root) as cap:
        h = cap.health
        h.maybe_emit(at(0, 10), equity=100.0, traded_notional=1.0)
        h.maybe_emit(at(0, 20), equity=110.0, traded_notional=2.0)
        before = h.state()
        entered, release = threading.Event(), threading.Event()
        build = closes.record

        def stalled(*args: Any) -> Any:
            entered.set()
            release.wait(60)
            return build(*args)

        monkeypatch.setattr(closes, "record", stalled)
        closed: list[list[dict[str, Any]]] = []
        bar_thread = threading.Thread(
            target=lambda: closed.append(h.maybe_emit(at(1, 5), equity=120.0)))
        bar_thread.start()
        try:
            assert entered.wait(60)
            during = h.state(timeout=0.2)
            # a reader's collection meanwhile: the callbacks read the last whole state
            assert cap.metric(names.BARS).value == 2
            assert cap.metric(names.EQUITY).value == 110.0
            assert cap.metric(names.TRADED_NOTIONAL).value == 3.0
        finally:
            release.set()
            bar_thread.join(60)
        monkeypatch.undo()
        after = h.state()
    assert during == before
    assert [r["ts"] for r in closed[0]] == ["2024-03-01T00:00:00Z"]
    assert (after["total_bars"], after["buckets"]["1h"]["bars"]) == (2, 1)
    assert after["equity"] == 120.0 and after["last_ts"] == at(1, 5)


def test_one_collection_reads_one_bar_while_bars_arrive(root: Path) -> None:
    """A reader collecting on its own thread while bars arrive in a tight loop: within one
    collection every instrument comes from the same bar (counts, sums, levels and the bar
    time agree), even with threads switched as often as the interpreter allows."""
    t0 = at(0)
    bad: list[str] = []
    seen: list[float] = []
    stop = threading.Event()

    def equity_at(i: int) -> float:
        return 1000.0 + (i * 37) % 101

    def reader(cap: Capture) -> None:
        while not stop.is_set():
            points = {(p.name, p.attributes.get(names.PERIOD_ATTRIBUTE)): p.value
                      for p in cap.collect()}
            if (names.BAR_TIMESTAMP, None) not in points:
                continue  # no whole copy since the first bar yet: nothing observed
            ts = points[(names.BAR_TIMESTAMP, None)]
            i = round((ts - t0) / 60)
            seen.append(ts)
            got = (points[(names.BARS, None)], points[(names.TRADED_NOTIONAL, None)],
                   points[(names.EQUITY, None)], points[(names.DRAWDOWN, None)])
            peak = points[(names.EQUITY_PEAK, None)]
            want = (i + 1, float(i + 1), equity_at(i), 1.0 - equity_at(i) / peak)
            if got != want or peak != max(equity_at(k) for k in range(i + 1)):
                bad.append(f"bar {i}: {got} != {want}, peak {peak}")

    interval = sys.getswitchinterval()
    with run(root, heartbeat_interval=3600) as cap:
        ts, fields = _bar(0, t0, equity_at(0))
        cap.health.maybe_emit(ts, **fields)
        thread = threading.Thread(target=reader, args=(cap,))
        sys.setswitchinterval(1e-6)
        try:
            thread.start()
            i, enough = 1, False
            # bucket closes too; bars keep coming until the reader has collected enough
            # different bars (bars are far cheaper than collections, and on a loaded machine
            # the reader may get few turns while 6000 of them run)
            while i < 6000 or (not enough and i < 600_000):
                ts, fields = _bar(i, t0, equity_at(i))
                cap.health.maybe_emit(ts, **fields)
                i += 1
                if i % 200 == 0:
                    enough = len(seen) > 20 and len(set(seen)) > 10
        finally:
            stop.set()
            thread.join(60)
            sys.setswitchinterval(interval)
    assert len(seen) > 10 and len(set(seen)) > 5, "too few collections to mean anything"
    assert bad == [], bad[:5]
