"""Durable files: whole-line JSONL appends, atomic JSON replacement, tail reads.

Rules kept here, once, for every file the package writes:

- a JSONL line is one ``os.write`` to a descriptor opened with ``O_APPEND``; a short write
  (a full disk) is cut back to the previous size, so no torn line is ever left behind;
- a torn tail left by an earlier crash is detected on open and set aside into
  ``<file>.torn`` before anything is appended, never extended;
- a whole-file JSON document is written to a temp file, fsynced and renamed over the target;
- a write that fails (full disk, unwritable root) never raises into the bot: the line is
  kept in a bounded pending queue, one clear error is logged, and writing resumes when the
  file system takes data again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson

DIR_MODE = 0o750
FILE_MODE = 0o640
MAX_PENDING_LINES = 10_000
_OPTS = orjson.OPT_APPEND_NEWLINE

_log = logging.getLogger("ensemble_otel")


def dumps_line(record: dict[str, Any]) -> bytes:
    """One JSON line (newline included). NaN and infinity are rejected upstream."""
    return orjson.dumps(record, option=_OPTS)


def ensure_dir(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0750, whatever the umask; existing
    directories are left as they are. The process umask is never changed (other threads
    create files meanwhile)."""
    if path.is_dir():
        return
    missing = []
    while not path.exists():  # up to the first that exists (a file there: mkdir says so)
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():  # a file (or a dangling link) in the way
                raise
            continue  # made meanwhile by another thread or process: left as it is
        os.chmod(directory, DIR_MODE)  # mkdir applied the umask


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename. Readers never see a torn file."""
    ensure_dir(path.parent)
    # one temp file per writing thread: two threads replacing the same file must not share it
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=_OPTS), fsync=fsync)


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


class JsonJournal:
    """A JSON document saved often: ``<path>`` holds a whole version (replaced atomically),
    ``<path>.wal`` the versions saved since, one JSON line each.

    ``append`` is one ``os.write`` to a descriptor opened with ``O_APPEND`` (no temp file,
    no rename, no fsync: replacing a file costs far more, as ext4 starts writing the new
    file's data back when it is renamed over the old one). Past ``max_bytes`` the journal
    is compacted: the version appended replaces the file and the journal is emptied, as
    ``replace`` does. A line torn by a crash is never taken: readers take the last whole
    line (``newest_entry``), and the owner empties or compacts the journal on start before
    appending again. Versions carry their own order (a sequence number): after a crash
    between replacing the file and emptying the journal, the file is the newer.

    Not thread-safe: its owner serialises the saves.
    """

    def __init__(self, path: Path, *, max_bytes: int = 256 * 1024) -> None:
        self.path = path
        self.journal_path = path.with_name(path.name + ".wal")
        self.max_bytes = max_bytes
        self._fd = -1
        self._size = 0

    def newest_entry(self) -> bytes | None:
        """The journal's last whole line, or None (no journal, empty, or only a torn line)."""
        return last_line(self.journal_path)

    def has_entries(self) -> bool:
        try:
            return self.journal_path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def append(self, obj: Any) -> None:
        """Add a version (one line). Raises OSError; a short write is cut back first."""
        line = orjson.dumps(obj, option=_OPTS)
        if self._fd < 0:
            ensure_dir(self.journal_path.parent)
            self._fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                               FILE_MODE)
            self._size = os.fstat(self._fd).st_size
        written = os.write(self._fd, line)
        if written != len(line):
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (short write)",
                          str(self.journal_path))
        self._size += written
        if self._size > self.max_bytes:
            self.replace(obj, fsync=False)

    def replace(self, obj: Any, *, fsync: bool = True) -> None:
        """Make ``obj`` the file's version (atomically) and empty the journal."""
        atomic_write_json(self.path, obj, fsync=fsync)
        self.truncate()

    def truncate(self) -> None:
        """Empty the journal (its versions are older than the file's)."""
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
        elif self.has_entries():
            os.truncate(self.journal_path, 0)
        self._size = 0

    def set_aside(self, suffix: str = ".corrupt") -> Path:
        """Move the journal to ``<path>.wal<suffix>`` (an unreadable one, kept for a look)."""
        self.close(remove_empty=False)
        aside = self.journal_path.with_name(self.journal_path.name + suffix)
        self.journal_path.replace(aside)
        return aside

    def close(self, *, remove_empty: bool = True) -> None:
        """Close the journal; remove it when empty (nothing newer than the file)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if remove_empty and not self.has_entries():
            with contextlib.suppress(FileNotFoundError):
                self.journal_path.unlink()


def last_line(path: Path, max_bytes: int = 1 << 20) -> bytes | None:
    """The last complete line of a file (without its newline), or None."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes)
            fh.seek(start)
            tail = fh.read()
    except FileNotFoundError:
        return None
    end = tail.rfind(b"\n")
    if end < 0:
        return None
    begin = tail.rfind(b"\n", 0, end) + 1
    if begin == 0 and start > 0:
        return None
    return tail[begin:end]


def set_aside_torn_tail(fd: int, path: Path) -> int:
    """If the file does not end in a newline, move its last partial line to ``<path>.torn``.

    Returns the number of bytes set aside (0 when the file ends cleanly).
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    keep = 0  # scan back, a window at a time, for the newline ending the last whole line
    end = size
    while end > 0:
        start = max(0, end - (1 << 20))
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            keep = start + cut + 1
            break
        end = start
    torn = os.pread(fd, size - keep, keep)
    with open(path.with_name(path.name + ".torn"), "ab") as side:
        side.write(torn + b"\n")
    os.ftruncate(fd, keep)
    _log.warning(
        "%s: a torn last line (%d bytes) from an earlier crash was moved to %s.torn",
        path, len(torn), path.name,
    )
    return len(torn)


class JsonlAppender:
    """Appends whole JSON lines to files, one writer per file, failing soft.

    ``append`` returns True when the line (and any pending earlier lines) reached the file.
    """

    def __init__(self, *, name: str = "jsonl", error_interval: float = 60.0) -> None:
        self._name = name
        self._fds: dict[Path, int] = {}
        self._last: tuple[Path | None, int] = (None, -1)  # the file written last, its fd
        self._pending: deque[tuple[Path, bytes]] = deque()
        self._dropped = 0
        self._error_interval = error_interval
        self._last_error_at = -float("inf")
        self._lock = threading.Lock()  # events may come from any thread, snapshots from the bar
        self.errors = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _open(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is not None:
            return fd
        if len(self._fds) >= 4:  # partitions roll over: keep only a few descriptors open
            for old in list(self._fds)[:-2]:
                os.close(self._fds.pop(old))
            self._last = (None, -1)
        ensure_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            rfd = os.open(path, os.O_RDWR)
            try:
                set_aside_torn_tail(rfd, path)
            finally:
                os.close(rfd)
        except OSError:
            os.close(fd)
            raise
        self._fds[path] = fd
        return fd

    def _write_line(self, path: Path, line: bytes) -> None:
        last, fd = self._last
        if path is not last:  # callers keep their Path objects: identity is the quick test
            fd = self._open(path)
            self._last = (path, fd)
        # A write to a regular file that fails wrote nothing; one that wrote part of the
        # line returns a short count (O_APPEND: the part is the file's tail, cut it off).
        written = os.write(fd, line)
        if written != len(line):
            self._cut(fd, written, path)

    @staticmethod
    def _cut(fd: int, written: int, path: Path) -> None:
        """Remove the part of a line a short write left at the end of the file; raise."""
        with contextlib.suppress(OSError):
            os.ftruncate(fd, os.fstat(fd).st_size - written)
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (short write)", str(path))

    def append(self, path: Path, line: bytes) -> bool:
        """Append one line (bytes ending in a newline). Never raises ``OSError``."""
        lock = self._lock
        lock.acquire()  # cheaper than a with block on the path every event takes
        try:
            last, fd = self._last
            if path is last and not self._pending:  # the usual case: straight to the file
                try:
                    written = os.write(fd, line)
                    if written == len(line):
                        return True
                    self._cut(fd, written, path)
                except OSError as exc:
                    self._pending.append((path, line))
                    self._report(path, exc)
                    return False
            return self._append_locked(path, line)
        finally:
            lock.release()

    def _append_locked(self, path: Path, line: bytes) -> bool:
        if not self._pending:  # another file than the last one: open it, or find it open
            try:
                self._write_line(path, line)
            except OSError as exc:
                self._pending.append((path, line))
                self._report(path, exc)
                return False
            return True
        self._pending.append((path, line))
        if len(self._pending) > MAX_PENDING_LINES:
            self._pending.popleft()
            self._dropped += 1
        return self._flush_locked()

    def flush_pending(self) -> bool:
        """Write the lines held back by an earlier failure; True when none is left."""
        with self._lock:
            return self._flush_locked()

    def _flush_locked(self) -> bool:
        while self._pending:
            path, line = self._pending[0]
            try:
                self._write_line(path, line)
            except OSError as exc:
                self._report(path, exc)
                return False
            self._pending.popleft()
        return True

    def _report(self, path: Path, exc: OSError) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_error_at >= self._error_interval:
            self._last_error_at = now
            _log.error(
                "ensemble-otel %s: cannot write %s (%s); the bot keeps running, %d line(s) "
                "held in memory (%d dropped), writing resumes when the file system takes data",
                self._name, path, exc.strerror or exc, len(self._pending), self._dropped,
            )

    def close(self) -> None:
        with self._lock:
            self._flush_locked()
            for fd in self._fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds.clear()
            self._last = (None, -1)
