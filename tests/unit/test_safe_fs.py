"""safe_fs: directories walked down from the root without following symbolic links, files
opened without following one, other users' files refused, modes whatever the umask."""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_gate import missing

from ensemble_otel import jsonl, safe_fs
from ensemble_otel.errors import UnsafePathError

FOREIGN_UID = 54_321  # no user needed: root may give a file to any uid


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    safe_fs.guard_root(r)
    return r


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim" / ".profile"
    v.parent.mkdir()
    v.write_bytes(b"export SECRET=1\nlast line, no newline")
    return v


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _refused(exc: pytest.ExceptionInfo[UnsafePathError], path: Path, reason: str) -> None:
    assert exc.value.filename == str(path)
    assert str(path) in str(exc.value) and reason in str(exc.value), str(exc.value)


# -- directories --------------------------------------------------------------------------


def test_a_symlinked_directory_below_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "logs").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError) as exc:
        safe_fs.ensure_dir(root / "logs" / "events" / "s1")
    _refused(exc, root / "logs", "is a symbolic link")
    with pytest.raises(UnsafePathError):
        safe_fs.open_file(root / "logs" / "x.jsonl", os.O_WRONLY | os.O_CREAT)
    assert list(elsewhere.iterdir()) == []


def test_a_symlink_deeper_down_is_refused_too(root: Path, tmp_path: Path) -> None:
    (root / "logs" / "events").mkdir(parents=True)
    (root / "logs" / "events" / "s1").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError) as exc:
        jsonl.atomic_write_json(root / "logs" / "events" / "s1" / "x.json", {"a": 1})
    _refused(exc, root / "logs" / "events" / "s1", "is a symbolic link")
    assert not (tmp_path / "x.json").exists()


def test_the_root_itself_may_be_reached_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    safe_fs.guard_root(link)
    jsonl.atomic_write_json(link / "logs" / "x.json", {"a": 1})  # the operator's choice
    assert jsonl.read_json(real / "logs" / "x.json") == {"a": 1}


def test_outside_every_root_the_nearest_existing_directory_is_the_anchor(
    tmp_path: Path, victim: Path
) -> None:
    target = tmp_path / "out" / "deep" / "report.html"
    jsonl.atomic_write_bytes(target, b"<html>")
    assert target.read_bytes() == b"<html>"
    for d in (target.parent, target.parent.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o750
    (tmp_path / "out" / "link.html").symlink_to(victim)
    with pytest.raises(UnsafePathError):  # the final component is never followed
        jsonl.atomic_write_bytes(tmp_path / "out" / "link.html", b"<html>")
    assert victim.read_bytes().startswith(b"export SECRET=1")


def test_a_directory_of_another_user_is_refused(root: Path) -> None:
    if os.geteuid() != 0:
        missing("giving a directory to another user needs root")
    (root / "state").mkdir()
    os.chown(root / "state", FOREIGN_UID, FOREIGN_UID)
    with pytest.raises(UnsafePathError) as exc:
        safe_fs.open_file(root / "state" / "s1.lock", os.O_RDWR | os.O_CREAT)
    _refused(exc, root / "state", f"is owned by uid {FOREIGN_UID}")
    assert list((root / "state").iterdir()) == []


def test_a_file_of_another_user_is_refused_but_root_owned_ones_are_taken(root: Path) -> None:
    if os.geteuid() != 0:
        missing("giving a file to another user needs root")
    path = root / "x.jsonl"
    path.write_bytes(b"{}\n")
    os.chown(path, FOREIGN_UID, FOREIGN_UID)
    for flags in (os.O_WRONLY | os.O_APPEND | os.O_CREAT, os.O_RDONLY):
        with pytest.raises(UnsafePathError) as exc:
            safe_fs.open_file(path, flags)
        _refused(exc, path, f"is owned by uid {FOREIGN_UID}, not this user (uid 0) or root")
    with pytest.raises(UnsafePathError):
        jsonl.atomic_write_bytes(path, b"{}\n")
    assert jsonl.last_line(path) is None  # a tolerant reader: nothing taken from it
    os.chown(path, 0, 0)
    os.close(safe_fs.open_file(path, os.O_RDONLY))


# -- files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                   os.O_RDWR | os.O_CREAT], ids=["read", "append", "lock"])
def test_a_final_symlink_is_refused(root: Path, victim: Path, flags: int) -> None:
    link = root / "x.jsonl"
    link.symlink_to(victim)
    with pytest.raises(UnsafePathError) as exc:
        safe_fs.open_file(link, flags)
    _refused(exc, link, "is a symbolic link")
    dangling = root / "y.jsonl"
    dangling.symlink_to(root / "nothing-here")
    with pytest.raises(UnsafePathError):
        safe_fs.open_file(dangling, flags)
    assert not (root / "nothing-here").exists()


@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_WRONLY | os.O_APPEND | os.O_CREAT])
def test_a_fifo_is_refused_without_blocking(root: Path, flags: int) -> None:
    fifo = root / "x.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UnsafePathError) as exc:
        safe_fs.open_file(fifo, flags)
    _refused(exc, fifo, "is not a regular file")


@pytest.mark.parametrize("umask", [0o000, 0o077], indirect=True, ids=["000", "077"])
def test_modes_whatever_the_umask(root: Path, umask: int) -> None:
    fd = safe_fs.open_file(root / "a" / "b" / "x.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.close(fd)
    safe_fs.replace_file(root / "c" / "y.json", b"{}")
    for d in ("a", "a/b", "c"):
        assert stat.S_IMODE((root / d).stat().st_mode) == 0o750, d
    for f in ("a/b/x.jsonl", "c/y.json"):
        assert stat.S_IMODE((root / f).stat().st_mode) == 0o640, f
    os.chmod(root / "a" / "b" / "x.jsonl", 0o600)  # an existing file keeps its mode
    os.close(safe_fs.open_file(root / "a" / "b" / "x.jsonl", os.O_WRONLY | os.O_CREAT))
    assert stat.S_IMODE((root / "a" / "b" / "x.jsonl").stat().st_mode) == 0o600


def test_temp_files_have_unpredictable_names_and_are_opened_exclusively(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        fd = real_open(path, flags, mode, **kwargs)
        if str(path).endswith(".tmp"):
            opened.append((str(path), flags, stat.S_IMODE(os.fstat(fd).st_mode)))
        return fd

    monkeypatch.setattr(os, "open", spy)
    old = os.umask(0)
    try:
        for i in range(3):
            jsonl.atomic_write_json(root / "state.json", {"i": i})
    finally:
        os.umask(old)
    monkeypatch.undo()
    names = [name for name, _, _ in opened]
    assert len(set(names)) == 3, names
    wanted = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    for name, flags, _ in opened:
        assert re.fullmatch(r"\.state\.json\.[0-9a-f]{16}\.tmp", name), name
        assert flags & wanted == wanted
    assert stat.S_IMODE((root / "state.json").stat().st_mode) == 0o640
    assert sorted(p.name for p in root.iterdir()) == ["state.json"]


def test_a_planted_temp_name_is_skipped_not_followed(
    root: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter(["0" * 16, "1" * 16])
    monkeypatch.setattr(safe_fs.secrets, "token_hex", lambda n: next(draws))
    (root / f".s.json.{'0' * 16}.tmp").symlink_to(victim)
    before = victim.read_bytes()
    jsonl.atomic_write_json(root / "s.json", {"a": 1})
    assert victim.read_bytes() == before
    assert jsonl.read_json(root / "s.json") == {"a": 1}


def test_a_symlink_at_the_replaced_file_is_refused(root: Path, victim: Path) -> None:
    (root / "s.json").symlink_to(victim)
    with pytest.raises(UnsafePathError) as exc:
        jsonl.atomic_write_json(root / "s.json", {"a": 1})
    _refused(exc, root / "s.json", "is a symbolic link")
    assert (root / "s.json").is_symlink()
    assert [p.name for p in root.iterdir()] == ["s.json"]  # no temp file left


def test_concurrent_directory_creation(root: Path) -> None:
    errors: list[BaseException] = []

    def make(k: int) -> None:
        try:
            for i in range(50):
                safe_fs.ensure_dir(root / "a" / f"d{i}" / f"k{k}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list((root / "a").iterdir())) == 50


def test_read_file_is_bounded(root: Path) -> None:
    (root / "big.json").write_bytes(b" " * 1000 + b"{}")
    assert safe_fs.read_file(root / "big.json", 1002) == b" " * 1000 + b"{}"
    with pytest.raises(ValueError, match="larger than 1001 bytes"):
        safe_fs.read_file(root / "big.json", 1001)


def test_readers_do_not_follow_symlinks(root: Path, victim: Path) -> None:
    link = root / "s.json.wal"
    link.symlink_to(victim)
    assert jsonl.last_line(link) is None  # tolerant: nothing read through the link
    with pytest.raises(UnsafePathError):
        jsonl.read_json(link)
    journal = jsonl.JsonJournal(root / "s.json")
    with pytest.raises(UnsafePathError):  # its owner is told, and sets it aside
        journal.newest_entry()
    with pytest.raises(UnsafePathError):
        journal.truncate()
    aside = journal.set_aside()
    assert aside.is_symlink() and not link.exists()
    assert victim.read_bytes().endswith(b"no newline")


# -- the root --------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "warned"), [
    (0o777, "world"), (0o770, "group"), (0o1777, None), (0o750, None), (0o755, None)])
def test_a_shared_root_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, warned: str | None
) -> None:
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    r = tmp_path / "shared"
    r.mkdir()
    r.chmod(mode)
    assert safe_fs.warn_if_shared_root(r) is (warned is not None)
    messages = [rec.getMessage() for rec in caplog.records]
    if warned is None:
        assert messages == []
    else:
        assert len(messages) == 1
        assert str(r) in messages[0] and f"{warned}-writable without the sticky bit" in (
            messages[0])
    assert safe_fs.warn_if_shared_root(tmp_path / "not-yet") is False


def test_a_root_owned_by_another_user_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() != 0:
        missing("giving a directory to another user needs root")
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    r = tmp_path / "theirs"
    r.mkdir(mode=0o755)
    os.chown(r, FOREIGN_UID, FOREIGN_UID)
    assert safe_fs.warn_if_shared_root(r) is True
    [message] = [rec.getMessage() for rec in caplog.records]
    assert str(r) in message and f"is owned by uid {FOREIGN_UID}" in message


def test_the_error_names_path_and_reason_and_survives_pickling(root: Path) -> None:
    import pickle

    (root / "x").symlink_to(root / "y")
    with pytest.raises(UnsafePathError) as exc:
        safe_fs.open_file(root / "x", os.O_RDONLY)
    copy = pickle.loads(pickle.dumps(exc.value))
    assert isinstance(copy, OSError) and str(copy) == f"refused {root / 'x'}: is a symbolic link"
    assert (copy.filename, copy.strerror, copy.errno) == (
        exc.value.filename, exc.value.strerror, exc.value.errno)
