"""Bounded, non-blocking reads of files under a root another user may write to.

Every reader of the package (heartbeat check, status, validate, report) opens files
through here: regular files only (a FIFO, device or socket is refused before anything
blocks or grows), never a symbolic link unless the caller named the path itself, and
never more than a limit into memory. JSONL is streamed in batches of whole lines; a line
longer than :data:`MAX_LINE_BYTES` is skipped while it is read, so it is never held.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ensemble_otel.errors import UnsafePathError
from ensemble_otel.safe_fs import walk_dirs

MAX_LINE_BYTES = 16 << 20  # the longest JSONL line any reader takes (16 MiB)
HEARTBEAT_MAX_BYTES = 64 << 10  # a heartbeat file is a few hundred bytes
BLOCK_BYTES = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link (not followed)"),
)


class RefusedFile(OSError):
    """A path that is not read: not a regular file, a symbolic link, or too large."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(reason)
        self.filename = os.fspath(path)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def file_type(mode: int) -> str:
    """What a file mode is, in words (``a FIFO``, ``a character device``...)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike[str], *, follow: bool = False,
                 root: str | os.PathLike[str] | None = None) -> int:
    """A read-only descriptor of the regular file at ``path``.

    Raises :class:`RefusedFile` for anything else (checked before opening, so a FIFO never
    blocks, and again on the open descriptor), and for a symbolic link unless ``follow``.
    With ``root`` (a directory ``path`` is under), no directory between the two may be a
    symbolic link either: each is opened with ``O_NOFOLLOW`` relative to the one before.
    Other errors are the usual OSError (FileNotFoundError, PermissionError...).
    """
    if root is not None and not follow:
        return _open_beneath(Path(root), Path(path))
    mode = os.stat(path, follow_symlinks=follow).st_mode
    if not stat.S_ISREG(mode):
        raise RefusedFile(path, f"not a regular file: it is {file_type(mode)}")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: replaced by a link since the stat
            raise RefusedFile(path, f"not a regular file: it is {file_type(stat.S_IFLNK)}"
                              ) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise RefusedFile(path, f"not a regular file: it is {file_type(mode)}")
    return fd


def _open_beneath(root: Path, path: Path) -> int:
    """Open ``path`` through the one no-follow walk of :mod:`safe_fs` from ``root`` (read-only:
    nothing created, any owner taken), then the file itself as :func:`open_regular` does."""
    parts = path.relative_to(root).parts
    if not parts or ".." in parts:
        raise RefusedFile(path, f"not under {root}")
    try:
        fd = walk_dirs(root, parts[:-1], owners=False)
    except UnsafePathError as exc:  # a symbolic link
        raise _not_a_directory(exc.filename, stat.S_IFLNK) from None
    except NotADirectoryError as exc:
        raise _not_a_directory(exc.filename, os.lstat(exc.filename).st_mode) from None
    try:
        name = parts[-1]
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            raise RefusedFile(path, f"not a regular file: it is {file_type(mode)}")
        out = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                      dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(out).st_mode):
        os.close(out)
        raise RefusedFile(path, "not a regular file")
    return out


def _not_a_directory(where: str, mode: int) -> RefusedFile:
    return RefusedFile(where, f"{where}: not a directory: it is {file_type(mode)}")


def read_limited(path: str | os.PathLike[str], limit: int, *, follow: bool = False,
                 root: str | os.PathLike[str] | None = None) -> bytes:
    """The whole regular file at ``path``; :class:`RefusedFile` when over ``limit`` bytes.
    ``root``: see :func:`open_regular`."""
    fd = open_regular(path, follow=follow, root=root)
    try:
        data = _read_fd(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise RefusedFile(path, f"larger than {limit} bytes")
    return data


def _read_fd(fd: int, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < limit:
        block = os.read(fd, min(BLOCK_BYTES, limit - size))
        if not block:
            break
        parts.append(block)
        size += len(block)
    return b"".join(parts)


def read_tail(fd: int, max_bytes: int) -> tuple[bytes, bool]:
    """The last ``max_bytes`` of an open regular file, and whether that is all of it."""
    size = os.fstat(fd).st_size
    start = max(0, size - max_bytes)
    return os.pread(fd, size - start, start), start == 0


def last_whole_line(fd: int, max_bytes: int = MAX_LINE_BYTES) -> bytes | None:
    """The last newline-terminated line of an open file (without the newline), or None."""
    tail, whole = read_tail(fd, max_bytes)
    end = tail.rfind(b"\n")
    if end < 0:
        return None
    begin = tail.rfind(b"\n", 0, end) + 1
    if begin == 0 and not whole:
        return None  # longer than max_bytes
    return tail[begin:end]


@dataclass(frozen=True, slots=True)
class Batch:
    """Whole lines read (``data``; the last one may lack its newline at end of input), or
    one line skipped as too long (``data`` empty, ``skipped`` its length in bytes)."""

    data: bytes
    skipped: int = 0
    last: bool = False  # nothing follows in the input


def line_batches(read: Callable[[int], bytes], *, max_line: int = MAX_LINE_BYTES,
                 batch_bytes: int = 8 << 20, block: int = BLOCK_BYTES) -> Iterator[Batch]:
    """Stream an input into batches of whole lines, about ``batch_bytes`` each.

    ``read(n)`` returns up to ``n`` bytes, ``b""`` at the end. A line longer than
    ``max_line`` bytes (newline not counted) becomes one ``Batch(b"", skipped=n)``: its
    bytes are dropped as they arrive, so memory stays near ``batch_bytes + max_line``.
    """
    pending = bytearray()  # complete lines not yet yielded
    partial = bytearray()  # the line being read
    skipping = 0  # > 0: inside a too-long line, this many bytes dropped so far
    out: Batch | None = None  # yielded one step late, to mark the last batch

    def emit(batch: Batch) -> Iterator[Batch]:
        nonlocal out
        if out is not None:
            yield out
        out = batch

    while True:
        chunk = read(block)
        if not chunk:
            break
        pos = 0
        while pos < len(chunk):
            nl = chunk.find(b"\n", pos)
            piece = chunk[pos:] if nl < 0 else chunk[pos:nl]
            if skipping:
                skipping += len(piece)
            elif len(partial) + len(piece) > max_line:
                skipping = len(partial) + len(piece)
                partial.clear()
                if pending:
                    yield from emit(Batch(bytes(pending)))
                    pending.clear()
            else:
                partial += piece
            if nl < 0:
                break
            pos = nl + 1
            if skipping:
                yield from emit(Batch(b"", skipping))
                skipping = 0
            else:
                pending += partial
                pending += b"\n"
                partial.clear()
                if len(pending) >= batch_bytes:
                    yield from emit(Batch(bytes(pending)))
                    pending.clear()
    if skipping:
        if pending:
            yield from emit(Batch(bytes(pending)))
        yield from emit(Batch(b"", skipping))
    elif pending or partial or out is None:
        yield from emit(Batch(bytes(pending + partial)))
    if out is not None:
        yield Batch(out.data, out.skipped, True)


def too_long(skipped: int, max_line: int = MAX_LINE_BYTES) -> str:
    """The reason given for a skipped line."""
    return f"line longer than {max_line} bytes ({skipped} bytes skipped)"
