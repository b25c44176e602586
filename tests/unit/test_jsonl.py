"""Durable files: whole lines, torn tails set aside, modes, full disks, concurrent writers."""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from unit_support import at, read_jsonl, snapshot_records

from ensemble_otel import jsonl
from ensemble_otel.jsonl import (
    JsonJournal,
    JsonlAppender,
    atomic_write_json,
    dumps_line,
    last_line,
    set_aside_torn_tail,
)
from ensemble_otel.testing import capture

_real_write = os.write


def _line(i: int, pad: int = 0) -> bytes:
    return dumps_line({"i": i, "pad": "x" * pad})


def _ids(path: Path) -> list[int]:
    return [r["i"] for r in read_jsonl(path)]


def _path_of(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


class Disk:
    """A file system that runs out of space for the files a predicate picks."""

    def __init__(self, picks: Callable[[str], bool]) -> None:
        self.picks = picks
        self.full = False
        self.short = False  # write part of the data, then report a short count
        self.refused = 0

    def write(self, fd: int, data: bytes) -> int:
        if self.full and self.picks(_path_of(fd)):
            self.refused += 1
            if self.short and len(data) > 4:
                return _real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return _real_write(fd, data)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    d = Disk(lambda path: path.endswith(".jsonl"))
    monkeypatch.setattr(os, "write", d.write)
    yield d


# -- whole lines, modes -----------------------------------------------------------------


def test_lines_are_appended_whole_and_in_order(tmp_path: Path) -> None:
    app = JsonlAppender()
    path = tmp_path / "a" / "b" / "x.jsonl"
    for i in range(100):
        assert app.append(path, _line(i))
    app.close()
    assert _ids(path) == list(range(100))
    assert last_line(path) == dumps_line({"i": 99, "pad": ""})[:-1]


def test_modes(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        app = JsonlAppender()
        path = tmp_path / "root" / "deep" / "dir" / "x.jsonl"
        app.append(path, _line(1))
        app.close()
        atomic_write_json(tmp_path / "root" / "other" / "y.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "root" / "other" / "y.json").stat().st_mode) == 0o640
    for d in (tmp_path / "root", path.parent, path.parent.parent, tmp_path / "root" / "other"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o750, d


@pytest.mark.parametrize("umask", [0o077, 0o000, 0o022])
def test_directories_are_0750_whatever_the_umask_which_is_never_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o700)
    existing.chmod(0o700)
    old = os.umask(umask)
    try:
        def no_umask(mask: int) -> int:
            raise AssertionError("the process umask was changed")

        monkeypatch.setattr(os, "umask", no_umask)
        jsonl.ensure_dir(existing / "a" / "b" / "c")
        jsonl.ensure_dir(existing / "a" / "b" / "c")  # all there: nothing to do
        jsonl.ensure_dir(existing / "a" / "d")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o700  # not created here: left as it is
    for d in ("a", "a/b", "a/b/c", "a/d"):
        assert stat.S_IMODE((existing / d).stat().st_mode) == 0o750, d


def test_ensure_dir_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file where a directory should be")
    with pytest.raises(NotADirectoryError) as info:
        jsonl.ensure_dir(tmp_path / "logs" / "events" / "s1")
    assert info.value.filename == str(tmp_path / "logs" / "events")


def test_every_file_and_directory_under_the_root(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with capture(root=tmp_path / "root", strategy_id="s1") as cap:
            cap.health.maybe_emit(at(0, 1), equity=1.0)
            cap.health.maybe_emit(at(0, 1, days=1), equity=1.0)
            cap.events.emit("e")
    finally:
        os.umask(old)
    paths = list((tmp_path / "root").rglob("*"))
    files = [p for p in paths if p.is_file()]
    assert len(files) >= 6  # heartbeat, state, lock, two snapshots, one event file
    for p in paths:
        expected = 0o640 if p.is_file() else 0o750
        assert stat.S_IMODE(p.stat().st_mode) == expected, p
    assert stat.S_IMODE((tmp_path / "root").stat().st_mode) == 0o750


# -- torn tails ---------------------------------------------------------------------------


def test_torn_tail_is_set_aside_and_never_extended(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(_line(1) + _line(2) + b'{"i": 3, "pa')
    app = JsonlAppender()
    assert app.append(path, _line(4))
    app.close()
    assert _ids(path) == [1, 2, 4]
    assert (tmp_path / "x.jsonl.torn").read_bytes() == b'{"i": 3, "pa\n'


def test_torn_file_without_any_newline(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"i": 1')
    app = JsonlAppender()
    app.append(path, _line(2))
    app.close()
    assert _ids(path) == [2]
    assert (tmp_path / "x.jsonl.torn").read_bytes() == b'{"i": 1\n'


def test_torn_tails_accumulate_in_the_side_file(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    for torn in (b"{first", b"{second"):
        with open(path, "ab") as fh:
            fh.write(torn)
        app = JsonlAppender()
        app.append(path, _line(0))
        app.close()
    assert (tmp_path / "x.jsonl.torn").read_bytes() == b"{first\n{second\n"
    assert _ids(path) == [0, 0]


def test_clean_file_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(_line(1))
    fd = os.open(path, os.O_RDWR)
    try:
        assert set_aside_torn_tail(fd, path) == 0
    finally:
        os.close(fd)
    assert not (tmp_path / "x.jsonl.torn").exists()


def test_torn_tail_longer_than_the_read_window(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    good = _line(1)
    torn = b'{"i": 2, "pad": "' + b"y" * (1 << 21)
    path.write_bytes(good + torn)
    app = JsonlAppender()
    app.append(path, _line(3))
    app.close()
    assert _ids(path) == [1, 3]
    assert (tmp_path / "x.jsonl.torn").read_bytes() == torn + b"\n"


def test_torn_snapshot_file_from_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 1), equity=1.0)
        cap.health.maybe_emit(at(1, 1), equity=2.0)
    day_file = root / "logs" / "1h" / "health_snapshot" / "s1" / "2024-03-01.jsonl"
    with open(day_file, "ab") as fh:
        fh.write(b'{"ts": "2024-03-01T01:00:00Z", "peri')
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(2, 1), equity=3.0)
    records = snapshot_records(root, "1h", "s1")
    assert [r["ts"][11:13] for r in records] == ["00", "01"]
    assert day_file.with_name(day_file.name + ".torn").is_file()


# -- full disk, unwritable root -------------------------------------------------------------


@pytest.mark.parametrize("short", [False, True], ids=["ENOSPC", "short-write"])
def test_full_disk_keeps_lines_and_resumes_in_order(
    tmp_path: Path, disk: Disk, caplog: pytest.LogCaptureFixture, short: bool
) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    path = tmp_path / "x.jsonl"
    other = tmp_path / "y.jsonl"
    app = JsonlAppender(name="files")
    assert app.append(path, _line(0, pad=50))
    disk.full, disk.short = True, short
    for i in range(1, 6):
        assert app.append(path if i % 2 else other, _line(i, pad=50)) is False
    assert disk.refused >= 5 and app.pending == 5
    assert _ids(path) == [0]  # nothing torn: the short write was cut back
    assert path.read_bytes().endswith(b"\n")
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1, errors
    assert str(path) in errors[0] and "keeps running" in errors[0]
    disk.full = False
    assert app.append(path, _line(6))
    assert app.pending == 0
    assert _ids(path) == [0, 1, 3, 5, 6]
    assert _ids(other) == [2, 4]
    app.close()
    assert not path.with_name(path.name + ".torn").exists()


def test_flush_pending_resumes_without_a_new_line(tmp_path: Path, disk: Disk) -> None:
    path = tmp_path / "x.jsonl"
    app = JsonlAppender()
    disk.full = True
    app.append(path, _line(1))
    disk.full = False
    assert app.flush_pending()
    assert _ids(path) == [1]


def test_pending_lines_are_bounded(tmp_path: Path, disk: Disk,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonl, "MAX_PENDING_LINES", 3)
    path = tmp_path / "x.jsonl"
    app = JsonlAppender()
    disk.full = True
    for i in range(10):
        app.append(path, _line(i))
    assert app.pending == 3
    disk.full = False
    app.flush_pending()
    assert _ids(path) == [7, 8, 9]


def test_unwritable_root(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    blocker = tmp_path / "logs"
    blocker.write_text("a file where a directory should be")
    app = JsonlAppender()
    for i in range(5):
        assert app.append(tmp_path / "logs" / "events" / "x.jsonl", _line(i)) is False
    assert len(caplog.records) == 1 and app.errors == 5
    blocker.unlink()
    assert app.flush_pending()
    assert _ids(tmp_path / "logs" / "events" / "x.jsonl") == [0, 1, 2, 3, 4]


def test_bot_keeps_running_on_a_full_disk(
    tmp_path: Path, disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    """Snapshots and events during a full disk: no exception, one error, no torn line,
    everything written in order once space returns."""
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    root = tmp_path / "root"
    with capture(root=root, strategy_id="s1") as cap:
        h = cap.health
        h.maybe_emit(at(0, 1), equity=100.0)
        h.maybe_emit(at(1, 1), equity=101.0)  # hour 0 written
        disk.full = True
        disk.short = True
        for hour in range(2, 8):
            h.maybe_emit(at(hour, 1), equity=100.0 + hour)
            cap.events.emit("tick", hour=hour)
        assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1
        assert cap.metric("ensemble.equity").value == 107.0  # metrics carry on
        assert [r["ts"][11:13] for r in snapshot_records(root, "1h", "s1")] == ["00"]
        disk.full = False
        cap.telemetry.force_flush()
        hours = snapshot_records(root, "1h", "s1")
        assert [r["ts"][11:13] for r in hours] == [f"{h:02d}" for h in range(7)]
        events = read_jsonl(next((root / "logs" / "events" / "s1").glob("*.jsonl")))
        assert [e["hour"] for e in events] == list(range(2, 8))
    assert not list(root.rglob("*.torn"))


def test_pending_lines_are_written_by_the_next_beat(tmp_path: Path, disk: Disk) -> None:
    root = tmp_path / "root"
    with capture(root=root, strategy_id="s1", heartbeat_interval=0.05) as cap:
        disk.full = True
        cap.events.emit("held")
        disk.full = False
        events = root / "logs" / "events" / "s1"
        deadline = time.monotonic() + 10
        while not any(p.stat().st_size for p in events.glob("*.jsonl")):
            assert time.monotonic() < deadline, "pending line not written by the heartbeat"
            time.sleep(0.02)
        [path] = events.glob("*.jsonl")
        assert [r["event"] for r in read_jsonl(path)] == ["held"]


# -- concurrent writers -------------------------------------------------------------------


def test_concurrent_appends_write_each_line_exactly_once(tmp_path: Path) -> None:
    app = JsonlAppender()
    paths = [tmp_path / f"{k}.jsonl" for k in range(6)]  # more files than kept open
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(1500):
                app.append(paths[(k + i) % len(paths)], dumps_line({"k": k, "i": i}))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    app.close()
    assert errors == []
    lines = [line for p in paths for line in p.read_bytes().splitlines()]
    records = [orjson.loads(line) for line in lines]
    assert len(records) == 4 * 1500
    assert len({(r["k"], r["i"]) for r in records}) == 4 * 1500
    for k in range(4):  # each writer's lines keep their order within a file
        for p in paths:
            mine = [r["i"] for r in read_jsonl(p) if r["k"] == k]
            assert mine == sorted(mine)


def test_concurrent_atomic_replacement_of_one_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The state file is saved from the bar thread and from the heartbeat thread."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    path = tmp_path / "state.json"
    errors: list[BaseException] = []
    stop = threading.Event()
    torn: list[bytes] = []

    def writer(k: int) -> None:
        try:
            for i in range(1000):
                atomic_write_json(path, {"k": k, "i": i, "pad": "z" * 2000})
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                orjson.loads(data)
            except orjson.JSONDecodeError:
                torn.append(data[:50])

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert torn == []
    assert orjson.loads(path.read_bytes())["i"] == 999
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_whole_root_full_reports_each_failure_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Snapshots, events, the state file and the beat file all fail: the bot keeps running
    and the log says so once per kind of file, not once per bar or beat."""
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    root = tmp_path / "root"
    disk = Disk(lambda path: path.startswith(str(root)))
    monkeypatch.setattr(os, "write", disk.write)
    with capture(root=root, strategy_id="s1", heartbeat_interval=0.02) as cap:
        cap.health.maybe_emit(at(0, 1), equity=100.0)
        disk.full = True
        for hour in range(1, 30):
            cap.health.maybe_emit(at(hour, 1), equity=100.0 + hour)
            cap.events.emit("tick", hour=hour)
            time.sleep(0.005)
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) <= 3, messages  # snapshots/events, state, heartbeat
        assert len(messages) == len(set(m.split(":")[0] for m in messages))
        assert cap.metric("ensemble.equity").value == 129.0
        disk.full = False
    starts = [r["ts"] for r in snapshot_records(root, "1h", "s1")]
    assert len(starts) == 29 and starts == sorted(set(starts))
    assert not list(root.rglob("*.torn"))
    assert not [p for p in root.rglob("*.tmp")]


# -- the state journal ------------------------------------------------------------------------


def test_journal_appends_lines_and_compacts_into_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "s.json"
    journal = JsonJournal(path, max_bytes=250)  # lines of 69 bytes
    journal.append({"seq": 1, "pad": "x" * 50})
    journal.append({"seq": 2, "pad": "x" * 50})
    assert not path.exists()  # appends never touch the file
    assert [orjson.loads(x)["seq"] for x in journal.journal_path.read_bytes().splitlines()] == [
        1, 2]
    assert journal.newest_entry() == orjson.dumps({"seq": 2, "pad": "x" * 50})
    journal.append({"seq": 3, "pad": "x" * 50})
    journal.append({"seq": 4, "pad": "x" * 50})  # past 250 bytes: compacted
    assert orjson.loads(path.read_bytes())["seq"] == 4
    assert journal.journal_path.read_bytes() == b"" and journal.newest_entry() is None
    journal.append({"seq": 5})
    assert journal.newest_entry() == b'{"seq":5}'
    journal.replace({"seq": 6})
    assert orjson.loads(path.read_bytes()) == {"seq": 6} and not journal.has_entries()
    journal.close()
    assert not journal.journal_path.exists()  # empty: removed
    for p in (path, path.parent):
        assert stat.S_IMODE(p.stat().st_mode) == (0o640 if p.is_file() else 0o750)


def test_journal_torn_tail_is_never_read(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    journal = JsonJournal(path)
    journal.append({"seq": 1})
    journal.close(remove_empty=False)
    with open(journal.journal_path, "ab") as fh:
        fh.write(b'{"seq": 2, "pa')  # a crash in the middle of a line
    assert JsonJournal(path).newest_entry() == b'{"seq":1}'


def test_journal_short_write_is_cut_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = Disk(lambda p: p.endswith(".wal"))
    disk.short = True
    monkeypatch.setattr(os, "write", disk.write)
    journal = JsonJournal(tmp_path / "s.json")
    journal.append({"seq": 1})
    disk.full = True
    with pytest.raises(OSError):
        journal.append({"seq": 2, "pad": "x" * 100})
    disk.full = False
    journal.append({"seq": 3})
    journal.close()
    assert journal.journal_path.read_bytes() == b'{"seq":1}\n{"seq":3}\n'


# -- a refused file (a symbolic link, another user's) -------------------------------------------


def test_a_refused_file_is_one_error_its_lines_dropped_and_counted_not_retried_per_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    victim = tmp_path / "victim"
    victim.write_bytes(b"theirs")
    path = tmp_path / "x.jsonl"
    path.symlink_to(victim)
    app = JsonlAppender(name="files", error_interval=0.3)
    opens = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda *a, **k: opens.append(a[0]) or real_open(*a, **k))
    for i in range(50):
        assert app.append(path, _line(i)) is False
    assert len(opens) <= 3  # the first attempt only: no walk per line
    assert app.refused == 50 and app.errors == 50 and app.pending == 0
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1, errors
    assert f"refused {path}: is a symbolic link" in errors[0] and "keeps running" in errors[0]
    assert app.append(tmp_path / "y.jsonl", _line(0))  # other files are written
    path.unlink()  # the operator removes the link: checked again after the interval
    time.sleep(0.35)
    assert app.append(path, _line(99))
    app.close()
    assert _ids(path) == [99] and victim.read_bytes() == b"theirs"
    assert len(caplog.records) == 1


def test_a_refused_file_does_not_hold_back_or_fill_the_pending_lines(
    tmp_path: Path, disk: Disk
) -> None:
    path = tmp_path / "x.jsonl"
    refused = tmp_path / "y.jsonl"
    refused.symlink_to(tmp_path / "victim")
    app = JsonlAppender()
    assert app.append(path, _line(0))
    disk.full = True
    assert app.append(path, _line(1)) is False  # held: the disk is full
    assert app.append(refused, _line(2)) is False  # refused while lines are held
    assert app.append(refused, _line(3)) is False  # known: dropped, not queued
    assert app.pending == 1 and app.refused >= 1
    disk.full = False
    assert app.flush_pending()
    app.close()
    assert _ids(path) == [0, 1]
    assert not (tmp_path / "victim").exists()
    assert app.refused == 2


def test_a_torn_tail_is_not_moved_into_a_planted_side_file(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(_line(1) + b'{"torn')
    victim = tmp_path / "victim"
    victim.write_bytes(b"theirs")
    (tmp_path / "x.jsonl.torn").symlink_to(victim)
    app = JsonlAppender()
    assert app.append(path, _line(2)) is False  # the repair is refused: nothing appended
    app.close()
    assert path.read_bytes() == _line(1) + b'{"torn' and victim.read_bytes() == b"theirs"


def test_a_stream_rolling_over_partitions_keeps_the_other_streams_files_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hourly records roll to a new file every day while the daily file stays the same:
    the daily file is opened once, the hourly stream keeps one descriptor open."""
    from ensemble_otel import safe_fs

    opened: list[str] = []
    real = safe_fs.open_file
    monkeypatch.setattr(safe_fs, "open_file",
                        lambda p, *a, **k: opened.append(os.fspath(p)) or real(p, *a, **k))
    app = JsonlAppender()
    hourly, daily = tmp_path / "1h", tmp_path / "24h" / "2024.jsonl"
    for day in range(40):
        for hour in range(3):
            assert app.append(hourly / f"2024-02-{day:02d}.jsonl", _line(hour))
        assert app.append(daily, _line(day))
    held = [p for p in map(_path_of, map(int, os.listdir("/proc/self/fd")))
            if p.startswith(str(hourly) + "/")]
    app.close()
    assert opened.count(str(daily)) == 1
    assert held == [str(hourly / "2024-02-39.jsonl")]
    assert _ids(daily) == list(range(40))
    assert _ids(hourly / "2024-02-17.jsonl") == [0, 1, 2]


def test_a_directory_moved_away_is_not_written_into_again(tmp_path: Path) -> None:
    """A stream's directory is kept open between partitions; once the path names another
    directory (moved away, removed, replaced), the next file goes where the path says."""
    app = JsonlAppender()
    stream = tmp_path / "records"
    assert app.append(stream / "1.jsonl", _line(1))
    stream.rename(tmp_path / "archived")
    assert app.append(stream / "2.jsonl", _line(2))  # a new directory at the path
    shutil_rmtree(stream)
    assert app.append(stream / "3.jsonl", _line(3))  # removed: made again
    app.close()
    assert sorted(p.name for p in (tmp_path / "archived").iterdir()) == ["1.jsonl"]
    assert [p.name for p in stream.iterdir()] == ["3.jsonl"]


def test_a_link_planted_in_place_of_a_kept_directory_is_refused(tmp_path: Path) -> None:
    from ensemble_otel import safe_fs

    safe_fs.guard_root(tmp_path)  # as configure() guards its root
    app = JsonlAppender()
    stream, victim = tmp_path / "records", tmp_path / "victim"
    victim.mkdir()
    assert app.append(stream / "1.jsonl", _line(1))
    stream.rename(tmp_path / "archived")
    stream.symlink_to(victim)
    assert app.append(stream / "2.jsonl", _line(2)) is False
    assert app.refused == 1
    app.close()
    assert list(victim.iterdir()) == []


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def test_streams_in_their_own_directories_stay_open_up_to_the_limit(tmp_path: Path) -> None:
    """One file open per directory, up to MAX_OPEN_FILES: none is reopened in rotation
    (a negative slice bound used to close files whenever fewer than the limit were open)."""
    app = JsonlAppender()
    paths = [tmp_path / f"d{k}" / "x.jsonl" for k in range(jsonl.MAX_OPEN_FILES)]
    for k, path in enumerate(paths):
        assert app.append(path, dumps_line({"k": k}))
    assert set(app._fds) == set(paths)
    assert app.append(tmp_path / "d8" / "x.jsonl", dumps_line({"k": 8}))
    assert paths[0] not in app._fds and len(app._fds) == jsonl.MAX_OPEN_FILES
    app.close()


def _held_under(root: Path) -> list[str]:
    """What this process holds open under ``root`` (files and directories)."""
    return sorted(p for p in map(_path_of, map(int, os.listdir("/proc/self/fd")))
                  if p == str(root) or p.startswith(str(root) + "/"))


def test_kept_directory_descriptors_are_bounded_and_closed(tmp_path: Path) -> None:
    """One descriptor per stream directory, at most MAX_OPEN_FILES of them; one for a
    directory moved away is closed when its path is reached again; close() leaves none."""
    app = JsonlAppender()
    n = jsonl.MAX_OPEN_FILES + 3
    for k in range(n):
        assert app.append(tmp_path / f"d{k}" / "x.jsonl", dumps_line({"k": k}))
    held = _held_under(tmp_path)
    dirs = [p for p in held if not p.endswith(".jsonl")]
    assert len(dirs) == jsonl.MAX_OPEN_FILES and str(tmp_path / f"d{n - 1}") in dirs
    (tmp_path / f"d{n - 1}").rename(tmp_path / "moved")
    assert app.append(tmp_path / f"d{n - 1}" / "y.jsonl", dumps_line({"k": n}))
    assert not any(p.startswith(str(tmp_path / "moved")) for p in _held_under(tmp_path))
    app.close()
    assert _held_under(tmp_path) == []
