"""Restore in detail: a state loads field by field with its types, a version 1 state takes
the open hour out of the day and the totals, the newest saved state wins, a bad one is set
aside, and with no state the levels come from the newest records of each period."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from unit_support import bare_ledger

from ensemble_otel import paths
from ensemble_otel._time import parse_iso
from ensemble_otel.health.ledger import Ledger
from ensemble_otel.health.restore import load, restore
from ensemble_otel.health.store import Store, state_from
from ensemble_otel.health.views import take
from ensemble_otel.jsonl import JsonlAppender

H0 = 1_709_251_200  # 2024-03-01T00:00:00Z


def _ledger() -> Ledger:
    ledger: Ledger = bare_ledger()
    return ledger


def _store(root: Path) -> Store:
    return Store(root, paths.state_path(root, "s1"), "s1", JsonlAppender())


def _bucket(start: int, **changes: Any) -> dict[str, Any]:
    bucket = {"start": start, "bars": 2, "notional": 3.0, "breaches": 1, "warnings": 4,
              "first_ts": start + 60.0, "last_ts": start + 120.0, "prev_close": 90.0,
              "last_written": start - 3600, "last_pnl": 1.5, "last_turnover": 0.25,
              "last_start": start - 3600, "refused_base": 1}
    bucket.update(changes)
    return bucket


def _state(**changes: Any) -> dict[str, Any]:
    state = {"version": 2, "strategy_id": "s1", "equity": 95.0, "first_equity": 80.0,
             "peak": 120, "drawdown": 1 - 95 / 120, "max_drawdown": 0, "realized": 2.5,
             "unrealized": -1.5, "positions": 3, "last_ts": H0 + 3720.0, "total_bars": 10,
             "total_notional": 40, "total_breaches": 6, "total_warnings": 7, "dropped": 2,
             "refused": 5,
             "buckets": {"1h": _bucket(H0 + 3600, bars=3, notional=7.0, breaches=2,
                                       warnings=1),
                         "24h": _bucket(H0, bars=9, notional=30.0, breaches=4, warnings=5)},
             "unwritten": [], "seq": 4}
    state.update(changes)
    return state


def _typed(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def test_load_sets_every_field_with_its_type() -> None:
    ledger = _ledger()
    load(ledger, _state(), "s1")
    got = state_from(take(ledger), "s1")
    expected = _state(peak=120.0, max_drawdown=0.0, total_notional=40.0)
    del expected["seq"]
    expected["buckets"]["1h"]["last_ts"] = H0 + 3720.0  # the open hour's last bar
    assert _typed(got) == _typed(expected)
    assert (ledger._h_bars, ledger._h_notional, ledger._h_breaches, ledger._h_warnings) == (
        3, 7.0, 2, 1)
    assert type(ledger._h_notional) is float and type(ledger._c_bars) is int


def test_load_int_fields_from_floats_and_a_null_last_ts() -> None:
    ledger = _ledger()
    state = _state(total_bars=10, dropped=2, last_ts=None)
    del state["refused"]  # older states: none refused
    load(ledger, state, "s1")
    assert ledger.last_ts == -math.inf and ledger.refused == 0
    assert ledger._c_bars == 10 and ledger.dropped == 2


def test_load_version_1_takes_the_open_hour_out() -> None:
    ledger = _ledger()
    load(ledger, _state(version=1), "s1")
    assert (ledger._day.bars, ledger._day.notional, ledger._day.breaches,
            ledger._day.warnings) == (6, 23.0, 2, 4)
    assert (ledger._c_bars, ledger._c_notional, ledger._c_breaches, ledger._c_warnings) == (
        7, 33.0, 4, 6)
    assert (ledger.total_bars, ledger.total_notional) == (10, 40.0)


def test_load_refuses_another_strategy_or_a_bad_field_before_setting_any() -> None:
    ledger = _ledger()
    with pytest.raises(ValueError, match=r"^state belongs to another strategy$"):
        load(ledger, _state(strategy_id="s2"), "s1")
    bad = _state()
    bad["buckets"]["24h"]["bars"] = "x"
    with pytest.raises(ValueError, match="24h"):
        load(ledger, bad, "s1")
    assert ledger.equity is None and ledger.peak == 0.0


def _write_state(store: Store, state: dict[str, Any], *, journal: bool = False) -> None:
    path = store.journal.journal_path if journal else store.state_path
    path.parent.mkdir(parents=True, exist_ok=True)
    data = orjson.dumps(state)
    path.write_bytes(data + b"\n" if journal else data)


def test_restore_takes_the_newest_state_and_continues_its_seq(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    _write_state(store, _state(seq=4, equity=1.0))
    _write_state(store, _state(seq=6, equity=2.0), journal=True)
    restore(ledger, store, "s1")
    assert ledger.equity == 2.0 and store.seq == 6
    assert orjson.loads(store.state_path.read_bytes())["equity"] == 2.0  # into the file
    assert store.journal.newest_entry() is None
    assert ledger._end == H0 + 7200.0  # the open hour continues


def test_restore_seq_is_the_highest_of_both(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    _write_state(store, _state(seq=8, equity=1.0))
    _write_state(store, _state(seq=3, equity=2.0), journal=True)
    restore(ledger, store, "s1")
    assert ledger.equity == 1.0 and store.seq == 8


def test_restore_sets_a_bad_state_aside_and_recovers_from_records(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    store, ledger = _store(root), _ledger()
    _write_state(store, _state(unwritten=[["9h", "x.jsonl", {}]]))
    _write_state(store, _state(seq=1), journal=True)
    restore(ledger, store, "s1")
    assert store.state_path.with_name("s1.json.corrupt").exists()
    assert "unwritten record for 9h in x.jsonl" in caplog.records[-1].getMessage()
    assert store.seq == 0
    assert store.journal.journal_path.read_bytes() == b""  # dropped with its state


def _record(ts: str, **changes: Any) -> dict[str, Any]:
    record = {"ts": ts, "equity": 90.0, "peak_equity": 100.0, "max_drawdown": 0.2,
              "last_bar_ts": ts[:14] + "30:00Z"}
    record.update(changes)
    return record


def _write_records(store: Store, period: str, *records: dict[str, Any]) -> None:
    directory = store.dirs[period]
    directory.mkdir(parents=True, exist_ok=True)
    name = store.path(period, parse_iso(records[0]["ts"])).name
    with open(directory / name, "ab") as fh:
        for record in records:
            fh.write(orjson.dumps(record) + b"\n")


def test_without_a_state_the_levels_come_from_the_newest_records(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    _write_records(store, "1h", _record("2024-03-01T05:00:00Z", equity=70.0, peak_equity=110.0,
                                        max_drawdown=0.3))
    _write_records(store, "24h", _record("2024-02-29T00:00:00Z", equity=60.0,
                                         peak_equity=130.0, max_drawdown=0.1,
                                         last_bar_ts="2024-02-29T23:00:00Z"))
    restore(ledger, store, "s1")
    assert ledger.peak == 130.0 and ledger.max_drawdown == 0.3
    assert ledger._hour.last_written == H0 + 5 * 3600
    assert ledger._day.last_written == H0 - 86400
    assert (ledger._hour.prev_close, ledger._hour.last_start) == (70.0, H0 + 5 * 3600)
    assert (ledger._day.prev_close, ledger._day.last_start) == (60.0, H0 - 86400)
    assert ledger.last_ts == H0 + 5 * 3600 + 1800.0
    assert ledger.first_equity == 70.0  # the hour's record comes first
    assert ledger._end == -math.inf


def test_with_a_state_the_records_only_say_what_is_on_disk(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    _write_state(store, _state())
    _write_records(store, "1h", _record("2024-03-01T05:00:00Z", equity=70.0, peak_equity=500.0))
    restore(ledger, store, "s1")
    assert ledger.peak == 120.0 and ledger.equity == 95.0 and ledger.first_equity == 80.0
    assert ledger._hour.last_written == H0 + 5 * 3600  # later than the state's
    assert ledger._hour.prev_close == 90.0
    assert ledger._day.last_written == H0 - 3600  # the state's: no record
    assert ledger._end == -math.inf  # the open hour (01:00) is before what is on disk


def test_a_record_older_than_the_known_last_start_keeps_the_previous_close(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    ledger._hour.prev_close, ledger._hour.last_start = 50.0, H0 + 9 * 3600
    _write_records(store, "1h", _record("2024-03-01T05:00:00Z", equity=70.0))
    restore(ledger, store, "s1")
    assert (ledger._hour.prev_close, ledger._hour.last_start) == (50.0, H0 + 9 * 3600)
    ledger = _ledger()
    ledger._hour.prev_close, ledger._hour.last_start = 50.0, H0 + 5 * 3600  # the same hour
    restore(ledger, store, "s1")
    assert ledger._hour.prev_close == 70.0


def test_the_open_hour_continues_only_with_bars_not_on_disk(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    _write_state(store, _state(buckets={"1h": _bucket(H0 + 3600, bars=0),
                                        "24h": _bucket(H0)}))
    restore(ledger, store, "s1")
    assert ledger._end == -math.inf  # no bars in it
    store2, ledger2 = _store(root / "b"), _ledger()
    _write_state(store2, _state(buckets={"1h": _bucket(H0 + 3600, last_written=H0 + 3600),
                                         "24h": _bucket(H0)}))
    restore(ledger2, store2, "s1")
    assert ledger2._end == -math.inf  # on disk already


def test_a_state_file_without_seq_counts_as_seq_0(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    older = _state(equity=1.0)
    del older["seq"]
    _write_state(store, older)
    _write_state(store, _state(seq=1, equity=2.0), journal=True)
    restore(ledger, store, "s1")
    assert ledger.equity == 2.0 and store.seq == 1
    store2, ledger2 = _store(root / "b"), _ledger()
    _write_state(store2, older)
    restore(ledger2, store2, "s1")
    assert ledger2.equity == 1.0 and store2.seq == 0


def test_an_open_hour_of_one_bar_continues(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    _write_state(store, _state(buckets={"1h": _bucket(H0 + 3600, bars=1),
                                        "24h": _bucket(H0)}))
    restore(ledger, store, "s1")
    assert ledger._end == H0 + 7200.0


def test_a_day_record_without_an_hour_record_and_the_higher_peak(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    _write_records(store, "24h", _record("2024-02-29T00:00:00Z", equity=60.0, peak_equity=90.0,
                                         last_bar_ts="2024-02-29T23:00:00Z"))
    restore(ledger, store, "s1")
    assert ledger._day.last_written == H0 - 86400 and ledger.peak == 90.0
    store2, ledger2 = _store(root / "b"), _ledger()
    _write_records(store2, "1h", _record("2024-03-01T05:00:00Z", peak_equity=130.0))
    _write_records(store2, "24h", _record("2024-02-29T00:00:00Z", peak_equity=110.0))
    restore(ledger2, store2, "s1")
    assert ledger2.peak == 130.0


def test_with_a_state_the_day_record_still_says_what_is_on_disk(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    _write_state(store, _state())
    _write_records(store, "1h", _record("2024-03-01T05:00:00Z"))
    _write_records(store, "24h", _record("2024-03-01T00:00:00Z"))
    restore(ledger, store, "s1")
    assert ledger._day.last_written == H0


def test_a_record_of_the_first_hour_of_1970_sets_the_previous_close(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    ledger._hour.prev_close = 5.0  # an older state: no last_start
    _write_records(store, "1h", _record("1970-01-01T00:00:00Z", equity=7.0))
    restore(ledger, store, "s1")
    assert (ledger._hour.prev_close, ledger._hour.last_start) == (7.0, 0)


def test_a_state_set_aside_after_loading_leaves_nothing_of_it(root: Path) -> None:
    """A state that loads but names an unwritten record that cannot be put back is set
    aside: the ledger continues from the records on disk alone, as the log says, not with
    the set-aside state's totals, peak and open hour."""
    store, ledger = _store(root), _ledger()
    _write_state(store, _state(unwritten=[["9h", "x.jsonl", {}]]))
    _write_records(store, "1h", _record("2024-03-01T00:00:00Z", equity=90.0,
                                        peak_equity=100.0))
    restore(ledger, store, "s1")
    assert store.state_path.with_name("s1.json.corrupt").exists()
    assert (ledger.total_bars, ledger.total_notional, ledger.dropped, ledger.refused) == (
        0, 0.0, 0, 0)
    assert (ledger.peak, ledger.max_drawdown, ledger.equity) == (100.0, 0.2, None)
    assert ledger._hour.start == -1 and ledger._hour.last_written == H0
    assert ledger.last_ts == H0 + 1800.0


def test_a_strict_ledger_stays_strict_when_its_state_is_set_aside(root: Path) -> None:
    store, ledger = _store(root), _ledger()
    ledger._init_ledger(strict=True)
    ledger._unwritten = ()
    _write_state(store, _state(unwritten=[["9h", "x.jsonl", {}]]))
    restore(ledger, store, "s1")
    assert store.state_path.with_name("s1.json.corrupt").exists()
    assert ledger.strict is True
