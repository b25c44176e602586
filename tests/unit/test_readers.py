"""The bounded readers and the one escaping function every command prints through."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from integration_gate import missing

from ensemble_otel import safe_fs
from ensemble_otel.errors import UnsafePathError
from ensemble_otel.readers import (
    RefusedFile,
    last_whole_line,
    line_batches,
    open_regular,
    read_limited,
)
from ensemble_otel.terminal import escape, json_text


def _batches(data: bytes, **kw: int) -> list[tuple[bytes, int, bool]]:
    return [(b.data, b.skipped, b.last)
            for b in line_batches(io.BytesIO(data).read, **kw)]


def test_line_batches_whole_lines_and_the_last_flag() -> None:
    assert _batches(b"") == [(b"", 0, True)]
    assert _batches(b"a\nb\n") == [(b"a\nb\n", 0, True)]
    assert _batches(b"a\nb") == [(b"a\nb", 0, True)]  # a torn tail stays last
    got = _batches(b"aa\nbb\ncc\n", batch_bytes=3, block=2)
    assert got == [(b"aa\n", 0, False), (b"bb\n", 0, False), (b"cc\n", 0, True)]


def test_line_batches_skip_long_lines_in_place() -> None:
    data = b"ok\n" + b"x" * 50 + b"\nfine\n" + b"y" * 20
    got = _batches(data, max_line=10, block=4)
    assert got == [(b"ok\n", 0, False), (b"", 50, False), (b"fine\n", 0, False),
                   (b"", 20, True)]
    assert _batches(b"x" * 10 + b"\n", max_line=10) == [(b"x" * 10 + b"\n", 0, True)]


def test_open_regular_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to("/dev/zero")
    with pytest.raises(RefusedFile, match="a FIFO"):
        open_regular(fifo)
    with pytest.raises(RefusedFile, match="symbolic link"):
        open_regular(link)
    with pytest.raises(RefusedFile, match="character device"):
        open_regular(link, follow=True)
    with pytest.raises(RefusedFile, match="a directory"):
        open_regular(tmp_path)
    good = tmp_path / "f"
    good.write_bytes(b"12345")
    assert read_limited(good, 5) == b"12345"
    with pytest.raises(RefusedFile, match="larger than 4 bytes"):
        read_limited(good, 4)


def test_last_whole_line(tmp_path: Path) -> None:
    path = tmp_path / "f"
    for data, want in [(b"", None), (b"a", None), (b"a\n", b"a"), (b"a\nb\n", b"b"),
                       (b"a\nb\nto", b"b")]:
        path.write_bytes(data)
        fd = open_regular(path)
        try:
            assert last_whole_line(fd) == want
        finally:
            os.close(fd)


def test_escape() -> None:
    assert escape("plain été ok") == "plain été ok"
    assert escape("a\nb\r\tc\x1b[8m\x7f\x85") == "a\\nb\\r\\tc\\x1b[8m\\x7f\\x85"
    assert escape("rtl\u202eevil\u2028") == "rtl\\u202eevil\\u2028"
    assert escape(b"bad-\xff\xfe") == "bad-\\xff\\xfe"
    assert escape(os.fsdecode(b"n\xffm")) == "n\\xffm"
    assert json_text(os.fsdecode(b"n\xffm\n")) == "n\\xffm\n"


def test_open_beneath_a_root_walks_without_following_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(b"data")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "b").mkdir(parents=True)
    (elsewhere / "b" / "f").write_bytes(b"planted")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "file").write_bytes(b"")
    fd = open_regular(root / "a" / "b" / "f", root=root)
    try:
        assert os.read(fd, 10) == b"data"
    finally:
        os.close(fd)
    with pytest.raises(RefusedFile, match="linked: not a directory: it is a symbolic link"):
        open_regular(root / "linked" / "b" / "f", root=root)
    with pytest.raises(RefusedFile, match="file: not a directory"):
        open_regular(root / "file" / "f", root=root)
    with pytest.raises(RefusedFile, match="not under"):
        open_regular(root / ".." / "root" / "a" / "b" / "f", root=root)
    with pytest.raises(FileNotFoundError):
        open_regular(root / "missing" / "f", root=root)
    assert read_limited(root / "a" / "b" / "f", 4, root=root) == b"data"


def test_readers_take_other_users_directories_writers_refuse_them(tmp_path: Path) -> None:
    """One walk, two modes: the writers' refuses another user's directory, the readers' (the
    same walk, read-only) takes it, as tolerant readers do."""
    if os.geteuid() != 0:
        missing("giving a directory to another user needs root")
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"x")
    os.chown(root / "d", 54_321, 54_321)
    assert read_limited(root / "d" / "f", 1, root=root) == b"x"
    with pytest.raises(UnsafePathError, match="is owned by uid 54321"):
        os.close(safe_fs.walk_dirs(root, ["d"]))
    os.close(safe_fs.walk_dirs(root, ["d"], owners=False))
