"""Durable files, the details: errors a short write raises, when the journal compacts and
fsyncs, which descriptors the appender keeps, the exact text of its two error messages."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from unit_support import read_jsonl

from ensemble_otel import jsonl, safe_fs
from ensemble_otel.jsonl import JsonJournal, JsonlAppender, dumps_line, read_json

_real_write = os.write
_ENOSPC_TEXT = f"{os.strerror(errno.ENOSPC)} (short write)"


def _line(i: int) -> bytes:
    return dumps_line({"i": i})


def _half_write(fd: int, data: Any) -> int:
    """A full disk that takes half of a line and reports the short count."""
    return _real_write(fd, bytes(data)[: len(data) // 2])


def _no_truncate(fd: int, length: int) -> None:
    raise OSError(errno.EIO, os.strerror(errno.EIO))


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(jsonl, "time", fake)
    return fake


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


# -- the state journal ------------------------------------------------------------------------


def test_journal_short_write_raises_enospc_naming_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = JsonJournal(tmp_path / "s.json")
    journal.append({"seq": 1})
    monkeypatch.setattr(os, "write", _half_write)
    with pytest.raises(OSError) as info:
        journal.append({"seq": 2, "pad": "x" * 40})
    assert info.value.errno == errno.ENOSPC
    assert info.value.strerror == _ENOSPC_TEXT
    assert info.value.filename == str(journal.journal_path)
    monkeypatch.undo()
    journal.close()
    assert journal.journal_path.read_bytes() == b'{"seq":1}\n'


def test_journal_short_write_raises_enospc_even_when_the_cut_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = JsonJournal(tmp_path / "s.json")
    journal.append({"seq": 1})
    monkeypatch.setattr(os, "write", _half_write)
    monkeypatch.setattr(os, "ftruncate", _no_truncate)
    with pytest.raises(OSError) as info:
        journal.append({"seq": 2, "pad": "x" * 40})
    assert info.value.errno == errno.ENOSPC and info.value.strerror == _ENOSPC_TEXT


def test_journal_compacts_only_past_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    journal = JsonJournal(path, max_bytes=len(b'{"seq":1}\n'))
    journal.append({"seq": 1})  # exactly max_bytes: kept in the journal
    assert not path.exists()
    assert journal.newest_entry() == b'{"seq":1}'
    journal.append({"seq": 2})  # past it: compacted into the file
    assert orjson.loads(path.read_bytes()) == {"seq": 2}
    assert journal.journal_path.read_bytes() == b""


def test_journal_counts_from_zero_after_truncate(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    journal = JsonJournal(path, max_bytes=len(b'{"seq":1}\n'))
    journal.append({"seq": 1})
    journal.truncate()
    assert journal.journal_path.read_bytes() == b""
    journal.append({"seq": 2})  # the journal holds max_bytes again: not compacted
    assert not path.exists()
    assert journal.newest_entry() == b'{"seq":2}'


def test_journal_compaction_does_not_fsync_but_replace_does(
        tmp_path: Path, fsyncs: list[int]) -> None:
    path = tmp_path / "s.json"
    journal = JsonJournal(path, max_bytes=5)
    journal.append({"seq": 1})  # compacted at once
    assert orjson.loads(path.read_bytes()) == {"seq": 1}
    assert fsyncs == []
    journal.replace({"seq": 2})
    assert fsyncs != []
    assert orjson.loads(path.read_bytes()) == {"seq": 2}


def test_journal_set_aside_moves_an_empty_journal_too(tmp_path: Path) -> None:
    journal = JsonJournal(tmp_path / "s.json")
    journal.append({"seq": 1})
    journal.truncate()  # empty, still open
    aside = journal.set_aside(".old")
    assert aside == tmp_path / "s.json.wal.old"
    assert aside.read_bytes() == b"" and not journal.journal_path.exists()


# -- the appender's descriptors -------------------------------------------------------------------


def _opened_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    real = safe_fs.open_file

    def counting(path: Any, flags: int, **kwargs: Any) -> int:
        names.append(Path(path).name)
        return real(path, flags, **kwargs)

    monkeypatch.setattr(safe_fs, "open_file", counting)
    return names


def test_files_already_open_are_not_opened_again(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    opened = _opened_files(monkeypatch)
    a, b = tmp_path / "a" / "a.jsonl", tmp_path / "b" / "b.jsonl"
    app = JsonlAppender()
    for i in range(6):
        assert app.append(a if i % 2 else b, _line(i))
    app.close()
    assert opened == ["b.jsonl", "a.jsonl"]
    assert [r["i"] for r in read_jsonl(a)] == [1, 3, 5]
    assert [r["i"] for r in read_jsonl(b)] == [0, 2, 4]


def test_a_new_partition_closes_the_older_one_of_its_directory_only(tmp_path: Path) -> None:
    app = JsonlAppender()
    hours = tmp_path / "1h" / "s1"
    days = tmp_path / "1d" / "s1"
    assert app.append(hours / "2024-03-01.jsonl", _line(0))
    assert app.append(days / "2024-03.jsonl", _line(1))
    assert app.append(hours / "2024-03-02.jsonl", _line(2))
    assert set(app._fds) == {days / "2024-03.jsonl", hours / "2024-03-02.jsonl"}
    app.close()


def test_a_few_streams_in_their_own_directories_stay_open(tmp_path: Path) -> None:
    app = JsonlAppender()
    paths = [tmp_path / f"d{k}" / "x.jsonl" for k in range(4)]
    for k, path in enumerate(paths):
        assert app.append(path, _line(k))
    assert set(app._fds) == set(paths)
    app.close()


def test_open_descriptors_are_bounded_and_the_newest_kept(tmp_path: Path) -> None:
    app = JsonlAppender()
    paths = [tmp_path / f"d{k}" / "x.jsonl" for k in range(12)]
    for k, path in enumerate(paths):
        assert app.append(path, _line(k))
        assert len(app._fds) <= jsonl.MAX_OPEN_FILES
        assert set(paths[max(0, k - 3):k + 1]) <= set(app._fds)
    app.close()
    assert [read_jsonl(p)[0]["i"] for p in paths] == list(range(12))


def test_an_appender_writes_again_after_close(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    app = JsonlAppender()
    assert app.append(path, _line(1))
    app.close()
    assert app.append(path, _line(2))
    app.close()
    assert [r["i"] for r in read_jsonl(path)] == [1, 2]


def test_close_does_not_raise_on_a_descriptor_already_gone(tmp_path: Path) -> None:
    app = JsonlAppender()
    assert app.append(tmp_path / "x.jsonl", _line(1))
    [fd] = app._fds.values()
    os.close(fd)
    app.close()
    assert app._fds == {}


# -- short writes ----------------------------------------------------------------------------


def test_cut_raises_enospc_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"i":1}\n{"i"')
    fd = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(OSError) as info:
            JsonlAppender._cut(fd, 4, path)
    finally:
        os.close(fd)
    assert info.value.errno == errno.ENOSPC
    assert info.value.strerror == _ENOSPC_TEXT
    assert info.value.filename == str(path)
    assert path.read_bytes() == b'{"i":1}\n'


def test_a_short_write_whose_cut_fails_still_holds_the_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.jsonl"
    app = JsonlAppender()
    assert app.append(path, _line(1))
    monkeypatch.setattr(os, "write", _half_write)
    monkeypatch.setattr(os, "ftruncate", _no_truncate)
    assert app.append(path, _line(2)) is False
    assert app.pending == 1 and app.errors == 1


# -- the two error messages -------------------------------------------------------------------


def test_write_error_message_names_stream_file_reason_and_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        clock: Clock) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    path = tmp_path / "x.jsonl"
    app = JsonlAppender(name="events", error_interval=0.0)
    assert app.append(path, _line(0))

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    assert app.append(path, _line(1)) is False
    assert app.flush_pending() is False
    reason = os.strerror(errno.ENOSPC)
    expected = (f"ensemble-otel events: cannot write {path} ({reason}); the bot keeps running, "
                "1 line(s) held in memory (0 dropped), writing resumes when the file system "
                "takes data")
    assert [r.getMessage() for r in caplog.records] == [expected, expected]


def test_refusal_message_names_stream_and_interval_and_is_logged_again_after_a_success(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, clock: Clock) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    victim = tmp_path / "victim"
    victim.write_bytes(b"theirs")
    path = tmp_path / "d" / "x.jsonl"
    path.parent.mkdir()
    path.symlink_to(victim)
    app = JsonlAppender(name="files", error_interval=2.5)
    assert app.append(path, _line(0)) is False
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("ensemble-otel files: refused ")
    assert message.endswith(
        ": is a symbolic link; the bot keeps running without this file (its lines are "
        "dropped and counted, the path is checked again every 2.5 s)")
    path.unlink()
    clock.now += 2.5  # exactly one interval later: checked again
    assert app.append(path, _line(1))
    assert app.append(path.with_name("y.jsonl"), _line(2))  # closes x.jsonl (same directory)
    path.unlink()
    path.symlink_to(victim)  # refused again: a new refusal, said again
    assert app.append(path, _line(3)) is False
    assert len(caplog.records) == 2 and "refused" in caplog.records[1].getMessage()
    app.close()
    assert victim.read_bytes() == b"theirs"


def test_refused_within_the_interval_is_not_checked_again(
        tmp_path: Path, clock: Clock) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"theirs")
    path = tmp_path / "x.jsonl"
    path.symlink_to(victim)
    app = JsonlAppender(error_interval=2.0)
    assert app.append(path, _line(0)) is False
    path.unlink()
    clock.now += 1.999
    assert app.append(path, _line(1)) is False  # still refused: not looked at again
    assert not path.exists()
    clock.now += 0.001
    assert app.append(path, _line(2))
    app.close()
    assert [r["i"] for r in read_jsonl(path)] == [2]


# -- whole documents ----------------------------------------------------------------------------


def test_read_json_reads_a_document_and_refuses_one_past_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    jsonl.atomic_write_json(path, {"a": [1, 2]})
    assert read_json(path) == {"a": [1, 2]}
    path.write_bytes(b'"' + b"x" * jsonl.MAX_DOCUMENT_BYTES + b'"')
    with pytest.raises(ValueError, match=f"larger than {jsonl.MAX_DOCUMENT_BYTES} bytes"):
        read_json(path)


def test_a_new_file_that_cannot_be_written_is_named_and_dropped_lines_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        clock: Clock) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    monkeypatch.setattr(jsonl, "MAX_PENDING_LINES", 2)
    path = tmp_path / "x.jsonl"
    app = JsonlAppender(name="events", error_interval=0.0)

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    for i in range(4):
        assert app.append(path, _line(i)) is False
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split("; ")[0] for m in messages] == [
        f"ensemble-otel events: cannot write {path} ({os.strerror(errno.ENOSPC)})"] * 4
    assert [m.split(", ")[1] for m in messages] == [
        "1 line(s) held in memory (0 dropped)", "2 line(s) held in memory (0 dropped)",
        "2 line(s) held in memory (1 dropped)", "2 line(s) held in memory (2 dropped)"]
    monkeypatch.undo()
    assert app.flush_pending()
    app.close()
    assert [r["i"] for r in read_jsonl(path)] == [2, 3]


def test_a_torn_tail_goes_aside_relative_to_the_directory_opened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"torn')
    calls: list[tuple[str, int | None]] = []
    real = safe_fs.open_file

    def spy(target: Any, flags: int, *, dir_fd: int | None = None) -> int:
        calls.append((Path(target).name, dir_fd))
        return real(target, flags, dir_fd=dir_fd)

    monkeypatch.setattr(safe_fs, "open_file", spy)
    app = JsonlAppender()
    assert app.append(path, _line(1))
    app.close()
    assert [name for name, _ in calls] == ["x.jsonl", "x.jsonl.torn"]
    assert all(dir_fd is not None for _, dir_fd in calls)
    assert (tmp_path / "x.jsonl.torn").read_bytes() == b'{"torn\n'


def test_a_newline_in_the_first_byte_before_a_window_long_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    torn = b"y" * (1 << 20)  # exactly one read window: the scan's next window is 1 byte
    path.write_bytes(b"\n" + torn)
    fd = os.open(path, os.O_RDWR)
    try:
        assert jsonl.set_aside_torn_tail(fd, path) == len(torn)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"\n"
    assert (tmp_path / "x.jsonl.torn").read_bytes() == torn + b"\n"


def test_a_torn_tail_set_aside_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"i":1}\n{"to')
    app = JsonlAppender()
    assert app.append(path, _line(2))
    app.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: a torn last line (4 bytes) from an earlier crash was moved to x.jsonl.torn"]


def test_a_whole_document_ends_with_a_newline(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    jsonl.atomic_write_json(path, {"a": 1})
    assert path.read_bytes() == b'{"a":1}\n'


@pytest.mark.parametrize(("data", "max_bytes", "expected"), [
    (b"\n", 100, b""), (b"\nabc\n", 100, b"abc"), (b"ab\n", 2, None), (b"ab\n", 3, b"ab"),
    (b"abc", 100, None),
])
def test_last_line_edges(tmp_path: Path, data: bytes, max_bytes: int,
                         expected: bytes | None) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(data)
    assert jsonl.last_line(path, max_bytes) == expected


def test_the_journal_reads_a_newest_line_up_to_a_mebibyte(tmp_path: Path) -> None:
    journal = JsonJournal(tmp_path / "s.json")
    journal.journal_path.write_bytes(b"[" + b"1," * (3 << 18) + b"1]\n")  # 1.5 MiB
    assert journal.newest_entry() is None  # longer than the bound: not taken
    journal.journal_path.write_bytes(b"x")
    assert journal.has_entries()  # one byte (a torn line) is an entry to clear
    journal.journal_path.unlink()
    journal.journal_path.symlink_to(tmp_path / "elsewhere")
    assert journal.has_entries()  # refused, but something is there


def test_default_stream_name_and_interval_in_the_refusal(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    path = tmp_path / "x.jsonl"
    path.symlink_to(tmp_path / "victim")
    assert JsonlAppender().append(path, _line(0)) is False
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("ensemble-otel jsonl: ")
    assert message.endswith("checked again every 60 s)")
