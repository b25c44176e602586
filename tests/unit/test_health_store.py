"""The store's rules, one test each, for the mutants random timing only finds by chance or
never: the day check of "already on disk", the 24h baseline after a restart without a state
file, the order of fsync and rename, a last line longer than the tail-read limit, and a
heartbeat exactly as old as the max age."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from unit_support import at, snapshot_records

from ensemble_otel import jsonl
from ensemble_otel.contract import registry as names
from ensemble_otel.heartbeat_cli import check
from ensemble_otel.testing import capture


def _state_path(root: Path) -> Path:
    return root / "state" / "health" / "s1.json"


def test_a_bar_in_a_day_already_on_disk_is_dropped_after_the_state_is_lost(root: Path) -> None:
    """Day 0's last bar is at 10:00; a bar on day 1 closes hour 10 and day 0. With the state
    lost, a replayed bar at 15:00 on day 0 is after every 1h record on disk but inside a day
    already written: it is dropped, and no hour of day 0 is written after its day."""
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(9, 30), equity=100.0)
        cap.health.maybe_emit(at(10, 0), equity=101.0)
        written = cap.health.maybe_emit(at(2, 0, days=1), equity=102.0)
        assert [r["period"] for r in written] == ["1h", "24h"]
    _state_path(root).unlink()
    with capture(root=root, strategy_id="s1") as cap:
        assert cap.health.maybe_emit(at(15, 0), equity=50.0) == []
        cap.health.maybe_emit(at(3, 0, days=1), equity=103.0)
        assert cap.metric(names.BARS_DROPPED).value == 1
        cap.health.maybe_emit(at(0, 5, days=2), equity=104.0)
    hours = snapshot_records(root, "1h", "s1")
    assert [r["ts"] for r in hours] == ["2024-03-01T09:00:00Z", "2024-03-01T10:00:00Z",
                                        "2024-03-02T03:00:00Z"]
    days = snapshot_records(root, "24h", "s1")
    assert [r["ts"] for r in days] == ["2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"]
    assert days[1]["bars"] == 1 and days[1]["peak_equity"] == 103.0  # no trace of 50


def test_the_24h_pnl_after_a_restart_without_a_state_file(root: Path) -> None:
    """The day's pnl baseline is the previous day's close (from the 24h record), not the
    last hour's close, when the state file is gone."""
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(20, 0), equity=100.0)
        cap.health.maybe_emit(at(0, 10, days=1), equity=110.0)  # closes day 0 at 100
        cap.health.maybe_emit(at(1, 10, days=1), equity=120.0)  # closes hour 00 at 110
        cap.health.maybe_emit(at(2, 10, days=1), equity=130.0)  # closes hour 01 at 120
    for path in _state_path(root).parent.iterdir():
        path.unlink()
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(3, 10, days=1), equity=140.0)
        written = cap.health.maybe_emit(at(0, 10, days=2), equity=150.0)
    [hour] = [r for r in written if r["period"] == "1h"]
    [day1] = [r for r in written if r["period"] == "24h"]
    assert hour["pnl"] == 140.0 - 120.0  # the last 1h record's close
    assert day1["pnl"] == 140.0 - 100.0  # the last 24h record's close
    assert day1["bars"] == 1  # what this run saw of the day (the rest died with the state)


def test_fsync_happens_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(("replace", os.path.basename(os.fspath(dst))))
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "state.json"
    jsonl.atomic_write_json(target, {"a": 1})
    assert [kind for kind, _ in calls] == ["fsync", "replace"]
    assert calls[0][1] != str(target) and calls[1][1] == target.name  # the temp file's fsync
    assert orjson.loads(target.read_bytes()) == {"a": 1}


def test_a_last_line_longer_than_the_tail_limit_is_not_cut(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"short": 1}\n' + b'{"long": "' + b"x" * 100 + b'"}\n')
    assert jsonl.last_line(path, max_bytes=64) is None  # never a fragment of the long line
    assert jsonl.last_line(path, max_bytes=4096) == b'{"long": "' + b"x" * 100 + b'"}'
    path.write_bytes(b"x" * 50 + b"\n")
    assert jsonl.last_line(path, max_bytes=64) == b"x" * 50  # whole file inside the limit


def test_a_heartbeat_exactly_as_old_as_the_max_age_is_alive(tmp_path: Path) -> None:
    path = tmp_path / "s1.json"
    beat = {"ts": "2024-03-01T00:00:00Z", "unix": 1_709_251_200.0, "strategy_id": "s1",
            "schema_version": "1.1", "state": "running", "seq": 3, "pid": os.getpid(),
            "host": "another-host.example", "service_instance_id": "x", "uptime_s": 1.0,
            "interval_s": 10.0, "environment": "paper"}
    path.write_bytes(orjson.dumps(beat))
    assert check(path, 30.0, now=beat["unix"] + 30.0)[0] == 0
    assert check(path, 30.0, now=beat["unix"] + 30.001)[0] == 1
    assert time.time() > beat["unix"]


# -- restore: what a restart carries over, and what it refuses --------------------------------


def test_levels_carry_over_a_restart_before_any_bar(root: Path) -> None:
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 1), equity=100.0, realized_pnl=7.5, unrealized_pnl=-2.5,
                              open_positions=4)
    with capture(root=root, strategy_id="s1") as cap:
        assert cap.metric(names.PNL_REALIZED).value == 7.5
        assert cap.metric(names.PNL_UNREALIZED).value == -2.5
        assert cap.metric(names.POSITIONS_OPEN).value == 4


def _saved(root: Path) -> dict[str, Any]:
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 1), equity=100.0, realized_pnl=None)
        cap.health.maybe_emit(at(1, 1), equity=101.0, realized_pnl=None)
    state: dict[str, Any] = orjson.loads(_state_path(root).read_bytes())
    return state


BAD_STATES: list[tuple[str, Any, str]] = [
    # (where, bad value, the message that names it)
    ("total_bars", 1.5, "state['total_bars'] = 1.5 is not a whole number"),
    ("total_bars", True, "state['total_bars'] = True is not a whole number"),
    ("peak", "x", "state['peak'] = 'x' is not a finite number"),
    ("realized", "x", "state['realized'] = 'x' is not a finite number"),
    ("refused", -0.5, "state['refused'] = -0.5 is not a whole number"),
    ("1h.refused_base", "x", "state bucket 1h['refused_base'] = 'x' is not a whole number"),
    ("24h", None, "state bucket 24h is not an object"),
    ("-max_drawdown", None, "state has no 'max_drawdown'"),
]


@pytest.mark.parametrize(("where", "value", "message"), BAD_STATES,
                         ids=[w for w, _, _ in BAD_STATES])
def test_a_state_with_one_bad_field_is_refused_naming_it(
    root: Path, caplog: pytest.LogCaptureFixture, where: str, value: Any, message: str
) -> None:
    from ensemble_otel.health.store import check_state

    state = _saved(root)
    assert state["realized"] is None  # a null before the bad field: the check goes on
    if where.startswith("-"):
        del state[where[1:]]
    elif "." in where:
        period, key = where.split(".")
        state["buckets"][period][key] = value
    elif where in ("1h", "24h"):
        state["buckets"][where] = value
    else:
        state[where] = value
    with pytest.raises(ValueError) as info:
        check_state(state)
    assert str(info.value) == message
    _state_path(root).write_bytes(orjson.dumps(state))
    with capture(root=root, strategy_id="s1") as cap:
        assert _state_path(root).with_name("s1.json.corrupt").exists()
        assert any(message in r.getMessage() for r in caplog.records)
        cap.health.maybe_emit(at(2, 1), equity=102.0)


def test_read_saved_state_takes_the_higher_seq_and_none_when_nothing(root: Path) -> None:
    from ensemble_otel.health import read_saved_state

    assert read_saved_state(_state_path(root)) is None
    state = _saved(root)
    _state_path(root).write_bytes(orjson.dumps({k: v for k, v in state.items() if k != "seq"}))
    journal = _state_path(root).with_name("s1.json.wal")
    journal.write_bytes(orjson.dumps({**state, "seq": 1, "peak": 5.0}) + b"\n")
    newest = read_saved_state(_state_path(root))
    assert newest is not None and newest["peak"] == 5.0  # a file with no seq counts as 0


@pytest.mark.parametrize("form", ["record", "line"])
def test_a_journalled_record_missing_from_its_file_is_appended_on_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """The close's journal line is written, the process dies before the append: the
    restart appends it (a record, or a JSON line as older versions kept it), once."""
    import shutil

    live, crashed = tmp_path / "live", tmp_path / "crashed"
    with capture(root=live, strategy_id="s1", heartbeat_interval=3600) as cap:
        cap.health.maybe_emit(at(0, 10), equity=100.0)
        monkeypatch.setattr(cap.health._store, "append", lambda *a: None)  # dies here
        [record] = cap.health.maybe_emit(at(1, 10), equity=101.0)
        shutil.copytree(live, crashed, ignore=shutil.ignore_patterns("*.lock", ".*.tmp"))
        monkeypatch.undo()
    from ensemble_otel.health import read_saved_state

    journal = _state_path(crashed).with_name("s1.json.wal")
    assert orjson.loads(journal.read_bytes().splitlines()[-1])["view"]  # the compact form
    state = read_saved_state(_state_path(crashed))
    assert state is not None and [item[2] for item in state["unwritten"]] == [record]
    if form == "line":  # the whole-document form, records as lines (older versions)
        state["unwritten"] = [[p, n, orjson.dumps(r).decode()] for p, n, r in state["unwritten"]]
        journal.write_bytes(orjson.dumps(state) + b"\n")
    assert snapshot_records(crashed, "1h", "s1") == []
    with capture(root=crashed, strategy_id="s1", heartbeat_interval=3600) as cap:
        assert snapshot_records(crashed, "1h", "s1") == [record]
        # the journal's state became the file's at once (nothing newer was saved yet)
        assert orjson.loads(_state_path(crashed).read_bytes())["seq"] == state["seq"]
        assert cap.health.last_ts == at(0, 10)  # the closing bar died with the process
        cap.health.maybe_emit(at(1, 10), equity=101.0)  # the bot replays it
        cap.health.maybe_emit(at(2, 10), equity=102.0)
    assert [r["ts"] for r in snapshot_records(crashed, "1h", "s1")] == [
        "2024-03-01T00:00:00Z", "2024-03-01T01:00:00Z"]


def test_a_version_1_state_continues_like_the_version_2_it_became(tmp_path: Path) -> None:
    """Version 1 counted the open hour in the day bucket and the totals; a restart from such
    a state gives the same records as one from the version-2 state of the same moment."""
    roots = {v: tmp_path / f"v{v}" for v in (1, 2)}
    for root in roots.values():
        with capture(root=root, strategy_id="s1") as cap:
            for minute in range(0, 150, 20):  # hours 0-2, hour 2 open
                cap.health.maybe_emit(at(0, minute), equity=100.0 + minute, risk_breaches=1,
                                      traded_notional=2.0, risk_warnings=minute % 3)
    state = orjson.loads(_state_path(roots[1]).read_bytes())
    hour, day = state["buckets"]["1h"], state["buckets"]["24h"]
    assert hour["bars"] == 2 and day["bars"] == 6
    for key, total in (("bars", "total_bars"), ("notional", "total_notional"),
                       ("breaches", "total_breaches"), ("warnings", "total_warnings")):
        day[key] += hour[key]
        state[total] += hour[key]
    state["version"] = 1
    _state_path(roots[1]).write_bytes(orjson.dumps(state))
    for root in roots.values():
        with capture(root=root, strategy_id="s1") as cap:
            cap.health.maybe_emit(at(2, 50), equity=90.0, risk_breaches=1, traded_notional=3.0)
            cap.health.maybe_emit(at(0, 10, days=1), equity=95.0)
            assert cap.metric(names.BARS).value == 10
            assert cap.metric(names.RISK_BREACHES).value == 9
    for period in ("1h", "24h"):
        assert snapshot_records(roots[1], period, "s1") == snapshot_records(roots[2], period, "s1")
    [day0] = snapshot_records(roots[1], "24h", "s1")
    assert (day0["bars"], day0["risk_breaches"], day0["traded_notional"]) == (9, 9, 19.0)


def test_a_journal_without_a_state_file_is_restored(tmp_path: Path) -> None:
    """A crash before the first beat's save leaves only the journal: the restart continues
    from its newest line (the bars of the closed hours count, the open hour's died)."""
    import shutil

    live, crashed = tmp_path / "live", tmp_path / "crashed"
    with capture(root=live, strategy_id="s1", heartbeat_interval=3600) as cap:
        for minute in range(0, 130, 20):
            cap.health.maybe_emit(at(0, minute), equity=100.0 + minute)
        shutil.copytree(live, crashed, ignore=shutil.ignore_patterns("*.lock", ".*.tmp"))
    assert not _state_path(crashed).exists()
    with capture(root=crashed, strategy_id="s1", heartbeat_interval=3600) as cap:
        assert cap.health.last_ts == at(1, 40)  # the last bar before the newest close
        assert cap.health.total_bars == 6 and cap.health.peak == 200.0
