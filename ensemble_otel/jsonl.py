"""Durable files: whole-line JSONL appends, atomic JSON replacement, tail reads.

Rules kept here, once, for every file the package writes:

- a JSONL line is one ``os.write`` to a descriptor opened with ``O_APPEND``; a short write
  (a full disk) is cut back to the previous size, so no torn line is ever left behind;
- a torn tail left by an earlier crash is detected on open and set aside into
  ``<file>.torn`` before anything is appended, never extended;
- a whole-file JSON document is written to a temp file, fsynced and renamed over the target;
- a write that fails (full disk, unwritable root) never raises into the bot: the line is
  kept in a bounded pending queue, one clear error is logged, and writing resumes when the
  file system takes data again;
- every file is opened through :mod:`ensemble_otel.safe_fs` (no symbolic link followed, no
  other user's file taken, 0640 files in 0750 directories); a refused file is a sink the bot
  runs without: one error, its lines dropped and counted, checked again once an interval.
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

from ensemble_otel import safe_fs
from ensemble_otel._ratelog import RateLimitedLog
from ensemble_otel.errors import UnsafePathError
from ensemble_otel.safe_fs import DIR_MODE, FILE_MODE

__all__ = [
    "DIR_MODE", "FILE_MODE", "MAX_PENDING_LINES", "JsonJournal", "JsonlAppender",
    "atomic_write_bytes", "atomic_write_json", "dumps_line", "ensure_dir", "last_line",
    "read_json", "set_aside_torn_tail",
]

MAX_PENDING_LINES = 10_000
MAX_OPEN_FILES = 8  # descriptors an appender keeps open (a few streams, each on its newest file)
MAX_DOCUMENT_BYTES = 16 << 20  # read_json: a state or heartbeat file is a few KiB
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT
_OPTS = orjson.OPT_APPEND_NEWLINE

_log = logging.getLogger("ensemble_otel")


def dumps_line(record: dict[str, Any]) -> bytes:
    """One JSON line (newline included). NaN and infinity are rejected upstream."""
    return orjson.dumps(record, option=_OPTS)


def ensure_dir(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0750, whatever the umask; existing
    directories are left as they are. No component below the root (or, for a path outside
    every root, below its nearest existing directory) may be a symbolic link or another
    user's: see :mod:`ensemble_otel.safe_fs`."""
    safe_fs.ensure_dir(path)


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data``: a temp file with an unpredictable name, fsync, rename.
    Readers never see a torn file; a symbolic link at ``path`` is refused, never followed."""
    safe_fs.replace_file(path, data, fsync=fsync)


def atomic_write_json(path: Path, obj: Any, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=_OPTS), fsync=fsync)


def read_json(path: Path) -> Any:
    return orjson.loads(safe_fs.read_file(path, MAX_DOCUMENT_BYTES))


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
        """The journal's last whole line, or None (no journal, empty, or only a torn line).
        Raises ``UnsafePathError`` when the journal is a symbolic link or another user's."""
        return _last_line(self.journal_path, 1 << 20)

    def has_entries(self) -> bool:
        """Whether something is at the journal's path: also True when it is refused (a
        symbolic link, another user's), which ``truncate`` then reports."""
        try:
            if self._fd >= 0:
                return os.fstat(self._fd).st_size > 0
            return safe_fs.lstat(self.journal_path).st_size > 0
        except FileNotFoundError:
            return False
        except UnsafePathError:
            return True

    def append(self, obj: Any) -> None:
        """Add a version (one line). Raises OSError; a short write is cut back first."""
        line = orjson.dumps(obj, option=_OPTS)
        if self._fd < 0:
            self._fd = safe_fs.open_file(self.journal_path, _APPEND)
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
        if self._fd < 0 and self.has_entries():
            self._fd = safe_fs.open_file(self.journal_path, os.O_WRONLY | os.O_APPEND)
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
        self._size = 0

    def set_aside(self, suffix: str = ".corrupt") -> Path:
        """Move the journal to ``<path>.wal<suffix>`` (an unreadable one, kept for a look)."""
        self.close(remove_empty=False)
        aside = self.journal_path.with_name(self.journal_path.name + suffix)
        safe_fs.rename(self.journal_path, aside.name)  # a symbolic link is moved, not followed
        return aside

    def close(self, *, remove_empty: bool = True) -> None:
        """Close the journal; remove it when empty (nothing newer than the file)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if remove_empty and not self.has_entries():
            with contextlib.suppress(FileNotFoundError):
                safe_fs.unlink(self.journal_path)


def last_line(path: Path, max_bytes: int = 1 << 20) -> bytes | None:
    """The last complete line of a file (without its newline), or None: also when the file
    is a symbolic link, another user's or not a regular file (a tolerant reader)."""
    try:
        return _last_line(path, max_bytes)
    except UnsafePathError:
        return None


def _last_line(path: Path, max_bytes: int) -> bytes | None:
    try:
        fd = safe_fs.open_file(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - max_bytes)
        tail = os.pread(fd, size - start, start)
    finally:
        os.close(fd)
    end = tail.rfind(b"\n")
    if end < 0:
        return None
    begin = tail.rfind(b"\n", 0, end) + 1
    if begin == 0 and start > 0:
        return None
    return tail[begin:end]


def set_aside_torn_tail(fd: int, path: Path, *, dir_fd: int | None = None) -> int:
    """If the file does not end in a newline, move its last partial line to ``<path>.torn``
    (opened like the file itself: relative to ``dir_fd``, the directory's descriptor, when
    given; no symbolic link followed; 0640).

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
    side = safe_fs.open_file(path.with_name(path.name + ".torn"), _APPEND, dir_fd=dir_fd)
    try:
        safe_fs.write_all(side, torn + b"\n")
    finally:
        os.close(side)
    os.ftruncate(fd, keep)
    _log.warning(
        "%s: a torn last line (%d bytes) from an earlier crash was moved to %s.torn",
        path, len(torn), path.name,
    )
    return len(torn)


class JsonlAppender:
    """Appends whole JSON lines to files, one writer per file, failing soft.

    ``append`` returns True when the line (and any pending earlier lines) reached the file.
    A file that cannot be written is retried (its lines held, up to ``MAX_PENDING_LINES``);
    a file refused as unsafe (``UnsafePathError``: a symbolic link, another user's) is not:
    one error names it, its lines are dropped and counted in ``refused``, and it is checked
    again at most once per ``error_interval``.
    """

    def __init__(self, *, name: str = "jsonl", error_interval: float = 60.0) -> None:
        self._name = name
        self._fds: dict[Path, int] = {}
        self._dirs: dict[Path, int] = {}  # directory -> descriptor (see _dir_fd)
        self._parents: dict[Path, Path] = {}  # each open file's directory
        self._last: tuple[Path | None, int] = (None, -1)  # the file written last, its fd
        self._pending: deque[tuple[Path, bytes]] = deque()
        self._dropped = 0
        self._error_interval = error_interval
        self._errors = RateLimitedLog(_log, error_interval)
        self._refusals: dict[Path, tuple[float, UnsafePathError]] = {}  # when, why
        self._lock = threading.Lock()  # events may come from any thread, snapshots from the bar
        self.errors = 0
        self.refused = 0  # lines dropped because their file was refused

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _open(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is not None:
            return fd
        refusal = self._refusals.get(path)
        now = time.monotonic()
        if refusal is not None and now - refusal[0] < self._error_interval:
            raise refusal[1]  # refused lately: not checked again on every line
        self._evict(path)
        try:
            fd = self._open_new(path)
        except UnsafePathError as exc:
            if refusal is None:
                _log.error(
                    "ensemble-otel %s: %s; the bot keeps running without this file (its lines "
                    "are dropped and counted, the path is checked again every %g s)",
                    self._name, exc, self._error_interval)
            self._refusals[path] = (now, exc)
            raise
        self._refusals.pop(path, None)
        self._fds[path] = fd
        self._parents[path] = path.parent
        return fd

    def _evict(self, path: Path) -> None:
        """Before ``path`` opens: close the files of its directory (partitions roll over,
        the older one is done with) and, past ``MAX_OPEN_FILES``, the oldest opened."""
        fds, parents, parent = self._fds, self._parents, path.parent
        stale = [p for p in fds if parents[p] == parent]
        others = [p for p in fds if parents[p] != parent]
        stale += others[:max(0, len(others) - (MAX_OPEN_FILES - 1))]  # the oldest, past it
        if stale:
            for old in stale:
                del parents[old]
                os.close(fds.pop(old))
            self._last = (None, -1)

    def _open_new(self, path: Path) -> int:
        """Open ``path`` for appends (its directory reached safely) and repair its tail."""
        dir_fd = self._dir_fd(path.parent)
        try:
            fd = safe_fs.open_file(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, dir_fd=dir_fd)
        except FileNotFoundError:  # the directory was removed since: reach it again
            self._drop_dir(path.parent)
            dir_fd = self._dir_fd(path.parent)
            fd = safe_fs.open_file(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, dir_fd=dir_fd)
        try:
            set_aside_torn_tail(fd, path, dir_fd=dir_fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _dir_fd(self, directory: Path) -> int:
        """A descriptor of ``directory``, kept: a stream's next partition opens in it without
        walking the path again. Reached again (safely, from its anchor) when the path no
        longer names that directory (moved or replaced)."""
        fd = self._dirs.get(directory)
        if fd is not None:
            try:
                now = os.stat(directory, follow_symlinks=False)
                held = os.fstat(fd)
                if (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
                    return fd
            except OSError:
                pass
            self._drop_dir(directory)
        if len(self._dirs) >= MAX_OPEN_FILES:
            self._drop_dir(next(iter(self._dirs)))
        fd = self._dirs[directory] = safe_fs.open_dir(directory)
        return fd

    def _drop_dir(self, directory: Path) -> None:
        fd = self._dirs.pop(directory, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

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
            except UnsafePathError:
                self._drop_refused()
                return False
            except OSError as exc:
                self._pending.append((path, line))
                self._report(path, exc)
                return False
            return True
        if path not in self._fds:  # a refused file's lines are not queued behind the held ones
            try:
                self._open(path)
            except UnsafePathError:
                self._drop_refused()
                return False
            except OSError:
                pass
        self._pending.append((path, line))
        if len(self._pending) > MAX_PENDING_LINES:
            self._pending.popleft()
            self._dropped += 1
        return self._flush_locked()

    def _drop_refused(self) -> None:
        self.errors += 1
        self.refused += 1

    def flush_pending(self) -> bool:
        """Write the lines held back by an earlier failure; True when none is left."""
        with self._lock:
            return self._flush_locked()

    def _flush_locked(self) -> bool:
        while self._pending:
            path, line = self._pending[0]
            try:
                self._write_line(path, line)
            except UnsafePathError:
                self._drop_refused()  # refused since it was held: never retried in a loop
            except OSError as exc:
                self._report(path, exc)
                return False
            self._pending.popleft()
        return True

    def _report(self, path: Path, exc: OSError) -> None:
        self.errors += 1
        self._errors.log(
            logging.ERROR,
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
            self._parents.clear()
            for directory in list(self._dirs):
                self._drop_dir(directory)
            self._last = (None, -1)
