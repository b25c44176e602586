"""The health store in detail: the journal line of a close and its redo, the state document of a
view, saving (its steps, its seq, its error), reading saved states back and setting bad
ones aside, the newest record on disk, and the records a crash left unwritten."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from unit_support import bare_ledger, read_jsonl

from ensemble_otel import paths
from ensemble_otel.health import store as store_mod
from ensemble_otel.health.ledger import Ledger
from ensemble_otel.health.store import (
    STATE_VERSION,
    Store,
    close_line,
    expand,
    read_saved_state,
    state_from,
)
from ensemble_otel.health.views import AT, STATE_ATTRS, take
from ensemble_otel.jsonl import JsonlAppender

H0 = 1_709_251_200.0  # 2024-03-01T00:00:00Z


def _ledger() -> Ledger:
    ledger: Ledger = bare_ledger()
    return ledger


def _view(**changes: Any) -> tuple[Any, ...]:
    ledger = _ledger()
    ledger.maybe_emit(H0 + 60, equity=100.0, realized_pnl=1.0, traded_notional=10.0,
                      risk_breaches=1, risk_warnings=2, open_positions=3)
    ledger.maybe_emit(H0 + 3660, equity=80.0, traded_notional=5.0, risk_warnings=1)
    values = list(take(ledger))
    for name, value in changes.items():
        values[AT[name]] = value
    return tuple(values)


def _store(root: Path, strategy: str = "s1") -> Store:
    return Store(root, paths.state_path(root, strategy), strategy, JsonlAppender())


# -- the state document and its compact form -------------------------------------------------


def test_state_of_a_view() -> None:
    state = state_from(_view(), "s1")
    assert state == {
        "version": STATE_VERSION, "strategy_id": "s1", "equity": 80.0, "first_equity": 100.0,
        "peak": 100.0, "drawdown": 1.0 - 80.0 / 100.0, "max_drawdown": 1.0 - 80.0 / 100.0,
        "realized": None, "unrealized": None, "positions": None, "last_ts": H0 + 3660,
        "total_bars": 1, "total_notional": 10.0, "total_breaches": 1, "total_warnings": 2,
        "dropped": 0, "refused": 0,
        "buckets": {
            "1h": {"bars": 1, "breaches": 0, "first_ts": H0 + 3660, "last_pnl": None,
                   "last_start": None, "last_ts": H0 + 3660, "last_turnover": None,
                   "last_written": -1, "notional": 5.0, "prev_close": None,
                   "refused_base": 0, "start": int(H0) + 3600, "warnings": 1},
            "24h": {"bars": 1, "breaches": 1, "first_ts": H0 + 60, "last_pnl": None,
                    "last_start": None, "last_ts": H0 + 60, "last_turnover": None,
                    "last_written": -1, "notional": 10.0, "prev_close": None,
                    "refused_base": 0, "start": int(H0), "warnings": 2}},
        "unwritten": []}
    assert STATE_VERSION == 2


def test_state_before_the_first_bar_and_at_a_peak_of_zero() -> None:
    state = state_from(take(_ledger()), "s1")
    assert state["equity"] is None and state["drawdown"] == 0.0 and state["last_ts"] is None
    assert "last_ts" in state["buckets"]["1h"] and state["buckets"]["1h"]["last_ts"] == 0.0
    assert state_from(_view(peak=0.0, equity=-5.0), "s1")["drawdown"] == 0.0
    assert state_from(_view(peak=-1.0, equity=-5.0), "s1")["drawdown"] == 0.0


def _after_close_line(view: tuple[Any, ...], strategy_id: str, seq: int) -> dict[str, Any]:
    """The journal line of a close as earlier versions wrote it: the view after the close."""
    return {"version": STATE_VERSION, "strategy_id": strategy_id, "seq": seq,
            "last_ts": view[AT["last_ts"]], "view_format": 1, "view": view}


def test_a_journal_line_of_an_earlier_version_expands_to_the_state() -> None:
    view = _view()
    expanded = expand(orjson.loads(orjson.dumps(_after_close_line(view, "s1", 7))))
    assert expanded == {**state_from(view, "s1"), "seq": 7}


def test_a_journal_line_of_an_earlier_version_carries_its_unwritten_records() -> None:
    record = {"ts": "2024-03-01T00:00:00Z", "equity": 1.5}
    view = _view(_unwritten=(("1h", "2024-03-01.jsonl", record),))
    data = orjson.loads(orjson.dumps(_after_close_line(view, "s1", 3)))
    assert expand(data)["unwritten"] == [["1h", "2024-03-01.jsonl", record]]


def _before_and_after_a_close() -> tuple[tuple[Any, ...], tuple[Any, ...], float]:
    """The view of a ledger before a close that closes an hour and a day, and after it."""
    from ensemble_otel.health.closes import close

    ledger = _ledger()
    ledger.maybe_emit(H0 + 60, equity=100.0, realized_pnl=1.0, traded_notional=10.0,
                      risk_breaches=1, risk_warnings=2, open_positions=3)
    ledger.maybe_emit(H0 + 3660, equity=80.0, traded_notional=5.0, risk_warnings=1)
    ledger.maybe_emit(H0 + 7200, equity="x")  # refused: counted in the records
    before = take(ledger)
    t = H0 + 86400 + 120.5
    ledger._rolling = True
    _, items = close(ledger, t, before, "s1", "1.1")
    ledger._unwritten = items
    ledger._rolling = False
    return before, take(ledger), t


def test_a_close_line_holds_the_view_before_the_close_and_its_bar_time() -> None:
    before, _, t = _before_and_after_a_close()
    line = close_line(before, t, "s1", "1.1", 7)
    assert line == {"version": STATE_VERSION, "strategy_id": "s1", "seq": 7,
                    "last_ts": H0 + 3660, "view_format": 2, "close": t,
                    "schema_version": "1.1", "view": before}


def test_a_close_line_expands_to_the_state_after_the_close() -> None:
    before, after, t = _before_and_after_a_close()
    expanded = expand(orjson.loads(orjson.dumps(close_line(before, t, "s1", "1.1", 7))))
    assert expanded == {**state_from(after, "s1"), "seq": 7}
    names = [(period, name) for period, name, _ in expanded["unwritten"]]
    assert names == [("1h", "2024-03-01.jsonl"), ("24h", "2024-03.jsonl")]
    hour = expanded["unwritten"][0][2]
    assert (hour["ts"], hour["equity"], hour["bars"], hour["bars_refused"],
            hour["schema_version"]) == ("2024-03-01T01:00:00Z", 80.0, 1, 1, "1.1")
    assert expanded["unwritten"][1][2]["bars"] == 2


@pytest.mark.parametrize(("change", "message"), [
    ({"close": "x"}, r"^state close = 'x' is not a bar time \(unix seconds, "),
    ({"close": True}, r"^state close = True is not a bar time"),
    ({"close": float("nan")}, r"^state close = nan is not a bar time"),
    ({"close": 1e300}, r"^state close = 1e\+300 is not a bar time"),
    ({"close": None}, r"^state close = None is not a bar time"),
    ({"close": 253402300800.0}, r"^state close = 253402300800.0 is not a bar time \(unix "
                                r"seconds, 0 <= t < 2.53402e\+11\)$"),  # TS_MAX: year 10000
    ({"close": 0.0}, r"^state close = 0.0 is not after the last bar"),  # TS_MIN: a bar time
    ({"close": H0 + 3660}, r"^state close = 1709254860.0 is not after the last bar of its "
                           r"view \(1709254860.0\)$"),
    ({"close": H0 + 3659}, r"^state close = 1709254859.0 is not after the last bar"),
    ({"schema_version": 2}, r"^state close: schema_version = 2 and strategy_id = 's1' must "
                            r"be text$"),
    ({"strategy_id": None}, r"^state close: schema_version = '1.1' and strategy_id = None"),
])
def test_a_close_line_with_a_bad_close_is_refused(change: dict[str, Any], message: str) -> None:
    before, _, t = _before_and_after_a_close()
    line = {**close_line(before, t, "s1", "1.1", 7), **change}
    with pytest.raises(ValueError, match=message):
        expand(orjson.loads(orjson.dumps(line)) if "nan" not in repr(change) else
               {**line, "view": list(before)})


def test_a_close_line_whose_view_breaks_a_rule_is_refused_naming_the_field() -> None:
    before, _, t = _before_and_after_a_close()
    data = orjson.loads(orjson.dumps(close_line(before, t, "s1", "1.1", 7)))
    data["view"][AT["_c_bars"]] = 1.5
    with pytest.raises(ValueError, match=r"^state\['total_bars'\] = 1.5 is not a whole number"):
        expand(data)


def test_a_close_that_cannot_be_redone_is_refused() -> None:
    before, _, t = _before_and_after_a_close()
    data = orjson.loads(orjson.dumps(close_line(before, t, "s1", "1.1", 7)))
    data["view"][AT["first_equity"]] = None  # passes the field rules; no PnL base
    data["view"][AT["_hour.prev_close"]] = None
    with pytest.raises(ValueError, match=r"^the journalled close at 1709337720.5 cannot be "
                       r"redone \((AssertionError|TypeError)"):
        expand(data)


def test_expand_takes_either_form_and_refuses_an_unknown_view() -> None:
    assert expand([1]) == [1]
    assert expand({"seq": 1}) == {"seq": 1}
    view = list(_view(_unwritten=None, last_ts=None))
    state = expand({"view_format": 1, "view": list(view), "strategy_id": "s1"})
    assert state["unwritten"] == [] and state["last_ts"] is None and state["seq"] == 0
    with pytest.raises(ValueError, match=r"^state view in an unknown form \(view_format 3, "
                       rf"{len(STATE_ATTRS)} values\)$"):
        expand({"view_format": 3, "view": view})
    with pytest.raises(ValueError, match=r"^state view in an unknown form \(view_format 1, "
                       r"3 values\)$"):
        expand({"view_format": 1, "view": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"^state view in an unknown form \(view_format 2, "
                       r"3 values\)$"):
        expand({"view_format": 2, "view": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"view_format None"):
        expand({"view": view})
    with pytest.raises(ValueError, match=rf"view_format 1, {len(STATE_ATTRS)} values"):
        expand({"view_format": 1, "view": "x" * len(STATE_ATTRS)})  # not a list


# -- saving ---------------------------------------------------------------------------------------


def test_save_counts_seq_and_says_its_steps(root: Path) -> None:
    store = _store(root)
    steps: list[str] = []
    store.hook = steps.append
    state = state_from(_view(), "s1")
    assert store.save(state, journal=True)
    assert state["seq"] == 1 and store.seq == 1
    assert orjson.loads(store.journal.newest_entry() or b"")["seq"] == 1
    assert not store.state_path.exists()
    assert store.save(state, journal=False, fsync=False)
    assert orjson.loads(store.state_path.read_bytes())["seq"] == 2
    assert store.journal.newest_entry() is None
    assert steps == ["close:before-journal", "close:after-journal", "save:before-replace",
                     "save:after-replace"]
    store.close()
    assert not store.journal.journal_path.exists()


def test_journal_close_and_append_say_their_steps(root: Path) -> None:
    store = _store(root)
    steps: list[str] = []
    store.hook = steps.append
    assert store.journal_close(_view(), H0 + 7200, "1.1")
    assert orjson.loads(store.journal.newest_entry() or b"")["seq"] == 1
    items = tuple(("1h", f"2024-03-0{d}.jsonl", {"ts": f"2024-03-0{d}T00:00:00Z"})
                  for d in (1, 2, 3))
    store.append(items)
    assert steps == ["close:before-journal", "close:after-journal", "close:between-appends",
                     "close:between-appends", "close:after-appends"]
    directory = store.dirs["1h"]
    assert read_jsonl(directory / "2024-03-02.jsonl") == [items[1][2]]
    store.append(items[:1])
    assert read_jsonl(directory / "2024-03-01.jsonl") == [items[0][2], items[0][2]]
    store.hook = None
    store.append(items[:1])  # no hook: no step
    assert store.journal_close(_view(), H0 + 7200, "1.1") and store.seq == 2
    assert len(steps) == 6
    store.appender.close()


def test_a_failed_save_says_so_once_a_minute(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    store = _store(root)

    def full(obj: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.journal, "append", full)
    monkeypatch.setattr(store.journal, "replace", full)
    assert store.save({}, journal=True) is False
    assert store.save({}, journal=False) is False
    assert store.journal_close(_view(), H0 + 7200, "1.1") is False
    assert [r.getMessage() for r in caplog.records] == [
        f"ensemble-otel health: cannot write state {store.state_path}: [Errno 28] No space "
        "left on device (the bot keeps running; retried at every beat, reported at most once "
        "a minute)"]


# -- reading back --------------------------------------------------------------------------------


def _saved(store: Store, **changes: Any) -> dict[str, Any]:
    state = state_from(_view(), store.strategy_id)
    state.update(changes)
    return state


def test_saved_states_sets_aside_what_is_not_a_state_of_this_strategy(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    store = _store(root)
    path = store.state_path
    for bad, reason in ((_saved(store, version=3), "unknown state version"),
                        (_saved(store, strategy_id="s2"), "state belongs to another strategy"),
                        (_saved(store, seq=-1), "state['seq'] = -1 is not a whole number >= 0"),
                        ([1], "unknown state version")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(bad))
        assert store.saved_states() == []
        aside = path.with_name("s1.json.corrupt")
        assert aside.read_bytes() == orjson.dumps(bad) and not path.exists()
        assert caplog.records[-1].getMessage() == (
            f"ensemble-otel health: state file {path} is unreadable ({reason}); moved to "
            "s1.json.corrupt, continuing from the records on disk")
    good = _saved(store, version=1, seq=4)
    path.write_bytes(orjson.dumps(good))
    assert store.saved_states() == [(path, good)]


def test_saved_states_of_file_and_journal(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = _store(root)
    assert store.saved_states() == []
    store.save(_saved(store), journal=False)
    store.save(_saved(store), journal=True)
    found = store.saved_states()
    assert [(p, s["seq"]) for p, s in found] == [
        (store.state_path, 1), (store.journal.journal_path, 2)]
    store.journal.close(remove_empty=False)
    with open(store.journal.journal_path, "ab") as fh:
        fh.write(b"[1]\n")
    assert [p for p, _ in store.saved_states()] == [store.state_path]
    assert store.journal.journal_path.with_name("s1.json.wal.corrupt").read_bytes().endswith(
        b"[1]\n")
    assert not store.journal.journal_path.exists()


def test_read_saved_state_skips_what_cannot_be_read(root: Path) -> None:
    store = _store(root)
    store.save(_saved(store), journal=False)
    store.save(_saved(store), journal=True)
    assert read_saved_state(store.state_path)["seq"] == 2  # type: ignore[index]
    store.journal.close(remove_empty=False)
    with open(store.journal.journal_path, "ab") as fh:
        fh.write(b'{"view": 1, "view_format": 1}\n')
    assert read_saved_state(store.state_path)["seq"] == 1  # type: ignore[index]
    store.journal.journal_path.write_bytes(b"[2]\n")
    assert read_saved_state(store.state_path)["seq"] == 1  # type: ignore[index]
    store.state_path.write_bytes(b"{")
    assert read_saved_state(store.state_path) is None


def test_last_record_is_the_newest_whole_record(root: Path) -> None:
    store = _store(root)
    assert store.last_record("1h") is None
    directory = store.dirs["1h"]
    directory.mkdir(parents=True)
    (directory / "2024-03-01.jsonl").write_bytes(b'{"ts": "2024-03-01T05:00:00Z"}\n')
    newer = directory / "2024-03-02.jsonl"
    for tail in (b"", b"{torn\n", b"[1]\n", b'{"no_ts": 1}\n'):
        newer.write_bytes(tail)
        assert store.last_record("1h") == {"ts": "2024-03-01T05:00:00Z"}, tail
    newer.write_bytes(b'{"ts": "2024-03-02T01:00:00Z"}\n')
    assert store.last_record("1h") == {"ts": "2024-03-02T01:00:00Z"}
    assert store.last_record("24h") is None


def test_append_unwritten(root: Path) -> None:
    store = _store(root)
    first = {"ts": "2024-03-01T01:00:00Z", "equity": 1.0}
    second = {"ts": "2024-03-01T02:00:00Z", "equity": 2.0}
    store.append_unwritten([["1h", "2024-03-01.jsonl", first],
                            ["1h", "old/root/2024-03-01.jsonl", orjson.dumps(second).decode()]])
    store.append_unwritten([["1h", "2024-03-01.jsonl", first]])  # on disk already
    assert read_jsonl(store.dirs["1h"] / "2024-03-01.jsonl") == [first, second]
    for bad, message in ((["2h", "2024-03-01.jsonl", first], "for 2h in 2024-03-01.jsonl"),
                         (["1h", "2024-03-01.jsonl", [1]], "for 1h in 2024-03-01.jsonl"),
                         (["1h", "2024-03-02.jsonl", first], "for 1h in 2024-03-02.jsonl")):
        with pytest.raises(ValueError) as info:
            store.append_unwritten([bad])
        assert str(info.value) == f"unwritten record {message}"
    store.appender.close()


def test_start_journal(root: Path, caplog: pytest.LogCaptureFixture,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(root)
    store.save(_saved(store), journal=True)
    store.start_journal(store.state_path, _saved(store))  # the file's state: journal emptied
    assert store.journal.newest_entry() is None and not store.state_path.exists()
    state = _saved(store, seq=9)
    store.save(_saved(store), journal=True)
    store.start_journal(store.journal.journal_path, state)  # the journal's: into the file
    assert orjson.loads(store.state_path.read_bytes())["seq"] == 9
    assert store.journal.newest_entry() is None

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(store.journal, "replace", fail)
    store.start_journal(store.journal.journal_path, state)
    assert caplog.records[-1].getMessage() == (
        f"ensemble-otel health: cannot write state {store.journal.journal_path}: [Errno 5] "
        "I/O error")


def test_drop_journal(root: Path) -> None:
    store = _store(root)
    store.drop_journal()  # nothing there
    store.save(_saved(store), journal=True)
    store.drop_journal()
    assert store.journal.journal_path.read_bytes() == b""


def test_path_names_the_partition_of_a_bucket(root: Path) -> None:
    store = _store(root)
    path = store.path("1h", H0 + 3600)
    assert path == store.dirs["1h"] / "2024-03-01.jsonl"
    assert store.path("1h", H0 + 7200) is path
    assert store.path("24h", H0) == store.dirs["24h"] / paths.partition_file(
        store_mod.KINDS["24h"], H0)
    for day in range(20):  # many days: still the right file
        assert store.path("1h", H0 + day * 86400).name == f"2024-03-{day + 1:02d}.jsonl"
    assert math.isinf(-store_mod._INF)


def test_field_specs() -> None:
    from ensemble_otel.contract.registry import Field

    assert store_mod._fields("seq:i0- equity:? total_notional: refused:i-") == (
        Field("seq", "integer", "", nullable=False, required=False, minimum=0),
        Field("equity", "number", "", nullable=True, required=True, minimum=None),
        Field("total_notional", "number", "", nullable=False, required=True, minimum=None),
        Field("refused", "integer", "", nullable=False, required=False, minimum=None))
    assert store_mod._fields("seq:i0-") == store_mod._SEQ


def test_a_state_without_buckets_is_named() -> None:
    state = state_from(_view(), "s1")
    for buckets in (None, [1]):
        state["buckets"] = buckets
        with pytest.raises(ValueError) as info:
            store_mod.check_state(state)
        assert str(info.value) == "state has no 'buckets' object"


def test_set_aside_of_a_file_already_gone_says_so_and_does_not_raise(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    store = _store(root)
    store.set_aside(store.state_path, ValueError("bad"))
    store.set_aside(store.journal.journal_path, ValueError("bad"))
    assert len(caplog.records) == 2 and not store.state_path.parent.exists()


def test_drawdown_of_a_peak_below_one() -> None:
    assert state_from(_view(peak=0.5, equity=0.25), "s1")["drawdown"] == 0.5


def test_save_fsyncs_the_state_file_unless_told_not_to(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    store = _store(root)
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real(fd))
    assert store.save(_saved(store), journal=False, fsync=False)
    assert calls == []
    assert store.save(_saved(store), journal=False)
    assert calls != []


def test_days_of_one_month_share_one_path_object(root: Path) -> None:
    store = _store(root)
    first = store.path("24h", H0)
    assert first.name == "2024-03.jsonl"
    assert store.path("24h", H0 + 86400) is first  # another day, the same file
    assert store.path("24h", H0 + 31 * 86400).name == "2024-04.jsonl"


def test_a_failed_journal_line_names_the_error(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    store = _store(root)

    def full(obj: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.journal, "append", full)
    assert store.journal_close(_view(), H0 + 7200, "1.1") is False
    assert [r.getMessage() for r in caplog.records] == [
        f"ensemble-otel health: cannot write state {store.state_path}: [Errno 28] No space "
        "left on device (the bot keeps running; retried at every beat, reported at most once "
        "a minute)"]


def test_close_does_not_raise_when_the_journal_cannot_be_closed(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(root)

    def broken(**kwargs: Any) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(store.journal, "close", broken)
    store.close()
    assert not store.lock.locked()


def test_drop_journal_does_not_raise_when_it_cannot_empty_it(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(root)
    store.save(_saved(store), journal=True)

    def broken() -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(store.journal, "truncate", broken)
    store.drop_journal()
    assert store.journal.has_entries()


def test_a_journal_alone_is_read_and_the_journal_bound(root: Path) -> None:
    store = _store(root)
    assert store.journal.max_bytes == store_mod.JOURNAL_BYTES == 4 << 20
    state = _saved(store, seq=3)
    store.journal.journal_path.parent.mkdir(parents=True)
    store.journal.journal_path.write_bytes(orjson.dumps(state) + b"\n")
    assert store.saved_states() == [(store.journal.journal_path, state)]
