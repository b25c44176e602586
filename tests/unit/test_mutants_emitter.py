"""The emitter in detail: the exact warnings for a dropped, replayed or refused bar and at
shutdown, a bucket already on disk, saving and the dirty flag, a forked child's emitter, and
what a restart knows of the records on disk."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from unit_support import at, snapshot_records

from ensemble_otel.health.store import state_from
from ensemble_otel.health.views import AT, take
from ensemble_otel.testing import capture

INF = math.inf


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_a_late_bar_is_dropped_with_one_warning(root: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        h = cap.health
        h.maybe_emit(at(0, 1), equity=1.0)
        assert h.maybe_emit(at(0, 0.5), equity=1.0) == []
        assert h.maybe_emit(at(0, 1), equity=1.0) == []
        assert _messages(caplog) == [
            "ensemble-otel health: bar ts=2024-03-01T00:00:30Z is not after the last bar "
            "(2024-03-01T00:01:00Z); dropped (1 dropped so far, this warning repeats at most "
            "once a minute)"]
        assert h.dropped == 2 and h._replayed == 0


def test_a_refused_bar_warns_and_shutdown_counts_them(root: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        cap.health.maybe_emit(at(0, 1), equity=math.nan)
        cap.health.maybe_emit(at(0, 2), equity=math.inf)
        assert _messages(caplog) == [
            "ensemble-otel health: bar refused, equity=nan: must be finite (not NaN or "
            "infinity); nothing of it is recorded (1 refused so far; ENSEMBLE_STRICT=1 raises "
            "instead; this warning repeats at most once a minute)"]
        caplog.clear()
    assert _messages(caplog)[-1] == (
        "ensemble-otel health: 2 bar(s) refused so far for s1 (bad values; see the earlier "
        "warnings)")


def test_a_replay_after_the_state_is_lost_counts_bars_up_to_the_last_bucket_on_disk(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 10), equity=1.0)
        cap.health.maybe_emit(at(1, 10), equity=2.0)  # hour 0 on disk, last bar 00:10
    for state in (root / "state").rglob("s1.json*"):
        state.unlink()
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    with capture(root=root, strategy_id="s1") as cap:
        h = cap.health
        assert h._recorded_until == at(0, 10) and h._disk_until == at(1)
        h.maybe_emit(at(0, 20), equity=3.0)  # after the last bar, in an hour on disk
        assert h._replayed == 1
        caplog.clear()
    assert _messages(caplog) == [
        "ensemble-otel health: 1 bar(s) of this run were already recorded for s1 (up to "
        "2024-03-01T00:10:00Z) and were dropped"]


def test_recorded_text(root: Path) -> None:
    with capture(root=root, strategy_id="s1") as cap:
        h = cap.health
        assert h._recorded_text() == "?"
        h._disk_until = at(1)
        assert h._recorded_text() == "2024-03-01T01:00:00Z (exclusive)"
        h._recorded_until = at(0, 5)
        assert h._recorded_text() == "2024-03-01T00:05:00Z"
        h.maybe_emit(at(0, 7), equity=1.0)
        assert h._recorded_text() == "2024-03-01T00:07:00Z"


def test_disk_until_is_the_end_of_the_newest_bucket_on_disk(root: Path) -> None:
    with capture(root=root, strategy_id="s1") as cap:
        for day in range(2):
            cap.health.maybe_emit(at(5, 0, days=day), equity=1.0)
        cap.health.maybe_emit(at(0, 1, days=3), equity=1.0)
    with capture(root=root, strategy_id="s1") as cap:
        assert cap.health._disk_until == at(0, 0, days=2)  # the day of 2024-03-02 ends
    with capture(root=root / "empty", strategy_id="s1") as cap:
        assert cap.health._disk_until == -INF


def test_a_bucket_already_on_disk_is_not_written_again(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ensemble_otel")
    with capture(root=root, strategy_id="s1") as cap:
        h = cap.health
        h.maybe_emit(at(0, 5), equity=1.0)
        h._hour.last_written = h._hour.start  # another run wrote this hour meanwhile
        written = h.maybe_emit(at(1, 5), equity=2.0)
        assert [r["period"] for r in written] == []
        assert ("ensemble-otel health: 1h bucket 2024-03-01T00:00:00Z already on disk; not "
                "written again") in _messages(caplog)
        assert h._hour.prev_close == 1.0 and h._hour.last_start == int(at(0))
        assert h._hour.last_pnl == 0.0 and h._hour.last_turnover == 0.0
    assert snapshot_records(root, "1h", "s1") == []


def test_what_a_closed_bucket_remembers(root: Path) -> None:
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        h = cap.health
        h.maybe_emit(at(0, 5), equity=100.0, traded_notional=50.0)
        h.maybe_emit(at(0, 6), equity=math.nan)
        [record] = h.maybe_emit(at(1, 5), equity=80.0)
        b = h._hour
        assert (b.prev_close, b.last_pnl, b.last_turnover, b.last_start, b.refused_base) == (
            100.0, record["pnl"], 0.5, int(at(0)), 1)
        assert b.last_written == int(at(0)) and record["bars_refused"] == 1
        h.maybe_emit(at(1, 6), equity=math.nan)
        [record] = h.maybe_emit(at(2, 5), equity=90.0)
        assert record["bars_refused"] == 1 and record["pnl"] == -20.0


def test_save_state_and_dirty(root: Path) -> None:
    with capture(root=root, strategy_id="s1") as cap:
        h = cap.health
        assert h.save_state() is False and not h.dirty  # nothing yet
        h.maybe_emit(at(0, 5), equity=1.0)
        assert h.dirty
        assert h.save_state(fsync=False)
        assert not h.dirty and h._saved_ts == at(0, 5)
        h.dirty = True
        assert h.dirty and h._saved_ts is None
        h.dirty = False
        assert not h.dirty
        assert h.save_state(journal=True)
        assert h.state_path.with_name("s1.json.wal").read_bytes().count(b"\n") == 1
        assert h.state() == state_from(take(h), "s1")
        h.active = False
        assert h.save_state() is False
        assert (h._end, h._hour_end) == (-INF, -INF)
        assert h.maybe_emit(at(0, 6), equity=5.0) == [] and h.equity == 1.0
        h.active = True
        assert h.active


def test_a_failed_save_leaves_the_state_dirty(root: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with capture(root=root, strategy_id="s1") as cap:
        h = cap.health
        h.maybe_emit(at(0, 5), equity=1.0)
        monkeypatch.setattr(h._store, "save", lambda state, **kw: False)
        assert h.save_state() is False and h.dirty


def test_the_first_bar_callback_that_raises_is_logged(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ensemble_otel.health.emitter import HealthSnapshotEmitter

    calls: list[int] = []

    def boom() -> None:
        calls.append(1)
        raise RuntimeError("wake-up failed")

    with capture(root=root, strategy_id="s1", strict=False) as cap:
        tel = cap.telemetry
        cap.health.close()
        h = HealthSnapshotEmitter(tel.settings, meter=tel.meter_provider.get_meter("t"),
                                  appender=tel._appender, on_first_bar=boom)
        assert h._hour_end == -INF
        h.maybe_emit(at(0, 1), equity=1.0)
        h.maybe_emit(at(0, 2), equity=1.0)
        assert calls == [1]
        [record] = [r for r in caplog.records if "first-bar" in r.getMessage()]
        assert record.getMessage() == "ensemble-otel health: the first-bar callback raised"
        assert record.exc_info is not None and record.levelno == logging.ERROR
        h.close()


def _lost_state_root(root: Path) -> None:
    """Hour 0 on disk (last bar 00:10), hour 1 open; then the state files are lost."""
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 10), equity=1.0)
        cap.health.maybe_emit(at(1, 10), equity=2.0)
    for state in (root / "state").rglob("s1.json*"):
        state.unlink()


def test_one_replayed_bar_is_announced(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    _lost_state_root(root)
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 5), equity=3.0)
        assert _messages(caplog) == [
            "ensemble-otel health: bars up to 2024-03-01T00:10:00Z are already recorded for "
            "s1; replaying them adds nothing (they are dropped and counted)"]


def test_a_late_bar_at_the_end_of_what_is_on_disk_is_not_a_replay(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    _lost_state_root(root)
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    with capture(root=root, strategy_id="s1") as cap:
        h = cap.health
        assert h._disk_until == at(1)
        h.maybe_emit(at(1, 30), equity=3.0)
        h.maybe_emit(at(1), equity=3.0)  # late, but after everything on disk
        assert h._replayed == 0 and h.dropped == 1
        assert "is not after the last bar" in _messages(caplog)[-1]


def test_save_state_fsyncs_unless_told_not_to(root: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import threading

    calls: list[int] = []
    real = os.fsync
    me = threading.get_ident()

    def counting(fd: int) -> None:
        if threading.get_ident() == me:  # not the beat's own saves
            calls.append(fd)
        real(fd)

    with capture(root=root, strategy_id="s1", heartbeat_interval=3600) as cap:
        h = cap.health
        h.maybe_emit(at(0, 5), equity=1.0)
        monkeypatch.setattr(os, "fsync", counting)
        assert h.save_state(fsync=False)
        assert calls == []
        assert h.save_state()
        assert calls != []
        monkeypatch.undo()


def test_reactivated_emitter_closes_nothing_in_the_open_hour(root: Path) -> None:
    with capture(root=root, strategy_id="s1") as cap:
        h = cap.health
        h.maybe_emit(at(0, 5), equity=1.0)
        h.active = False
        h.active = True
        assert h.maybe_emit(at(0, 10), equity=2.0) == []
        assert h._h_bars == 2 and h._c_bars == 0
        [record] = h.maybe_emit(at(1, 0), equity=3.0)
        assert record["bars"] == 2
        assert take(h)[AT["_rolls"]] == 3  # three closes: the first bar's, re-arming's, 01:00


def test_closes_are_counted_in_the_view(root: Path) -> None:
    with capture(root=root, strategy_id="s1") as cap:
        h = cap.health
        for hour in range(4):
            h.maybe_emit(at(hour, 5), equity=1.0)
        assert take(h)[AT["_rolls"]] == 4


def test_the_thread_that_closes_a_bucket_is_the_bar_thread(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    import threading

    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    out: list[object] = []
    with capture(root=root, strategy_id="s1") as cap:
        h = cap.health

        def bars() -> None:
            h.maybe_emit(at(0, 5), equity=1.0)
            h.maybe_emit(at(1, 5), equity=2.0)  # a close on this thread
            h._writing = h.last_ts + 1.0  # as in a signal handler during a bar
            out.append(h.state(timeout=0.05))
            h._writing = h.last_ts

        worker = threading.Thread(target=bars)
        worker.start()
        worker.join(10)
        assert out and h._copy_req is False  # not asked: answered from the newest copy
        assert not [r for r in caplog.records if "under way" in r.getMessage()]


def test_close_saves_with_fsync(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import threading

    calls: list[int] = []
    real = os.fsync
    me = threading.get_ident()

    def counting(fd: int) -> None:
        if threading.get_ident() == me:
            calls.append(fd)
        real(fd)

    with capture(root=root, strategy_id="s1", heartbeat_interval=3600) as cap:
        cap.health.maybe_emit(at(0, 5), equity=1.0)
        monkeypatch.setattr(os, "fsync", counting)
        cap.health.close()
        assert calls != []
        monkeypatch.undo()



class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_drop_and_refusal_warnings_repeat_after_a_minute(
        root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from ensemble_otel import _ratelog

    clock = _Clock()
    monkeypatch.setattr(_ratelog, "time", clock)
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        h = cap.health
        h.maybe_emit(at(0, 10), equity=1.0)
        for step in (0.0, 59.9, 0.1):
            clock.now += step
            h.maybe_emit(at(0, 5), equity=1.0)  # late
            h.maybe_emit(at(0, 20), equity=math.nan)  # refused
        said = _messages(caplog)
        assert len([m for m in said if "is not after the last bar" in m]) == 2
        assert len([m for m in said if "bar refused" in m]) == 2


def test_disk_until_after_the_first_hour_of_1970(root: Path) -> None:
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(60.0, equity=1.0)
        cap.health.maybe_emit(3660.0, equity=1.0)  # the hour starting at 0 is on disk
    with capture(root=root, strategy_id="s1") as cap:
        assert cap.health._hour.last_written == 0
        assert cap.health._disk_until == 3600.0


def test_disk_until_after_the_first_day_of_1970(root: Path) -> None:
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(60.0, equity=1.0)
        cap.health.maybe_emit(86460.0, equity=1.0)  # the day starting at 0 is on disk
    with capture(root=root, strategy_id="s1") as cap:
        assert cap.health._day.last_written == 0
        assert cap.health._disk_until == 86400.0
