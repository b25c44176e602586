"""Files under a shared root, opened without following symbolic links.

Another user who can write to the root (a shared ``/tmp`` directory, a shared volume) must
not be able to make the package write to a file of their choosing. So every file the
package creates, appends to or replaces is opened relative to its directory's descriptor
(``dir_fd``), and that directory is reached one component at a time from an anchor, each
opened with ``O_DIRECTORY | O_NOFOLLOW``:

- the anchor is the root a telemetry was started with (:func:`guard_root`) when the path
  lies under it, else the nearest existing directory above the path (the caller's choice,
  symbolic links in it included);
- below the anchor, a symbolic link, a file or directory owned by another user than this
  one or root, or a file that is not a regular file is refused with
  :class:`~ensemble_otel.errors.UnsafePathError`, which names the path and the reason;
- missing directories are created 0750 and files 0640, whatever the umask (which is never
  changed: other threads create files meanwhile);
- a whole-file replacement writes a temp file with an unpredictable name, opened
  ``O_CREAT | O_EXCL | O_NOFOLLOW``, and renames it within the same directory descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
import threading
from collections.abc import Sequence

from ensemble_otel.errors import UnsafePathError

DIR_MODE = 0o750
FILE_MODE = 0o640
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO never blocks an open

_log = logging.getLogger("ensemble_otel")
_roots: tuple[str, ...] = ()  # guarded roots, longest (deepest) first
_roots_lock = threading.Lock()

StrPath = str | os.PathLike[str]


# -- the root -------------------------------------------------------------------------------


def guard_root(root: StrPath) -> bool:
    """Make ``root`` the anchor of every path below it: from now on each component under
    it is opened without following symbolic links and checked for its owner. Warns (see
    :func:`warn_if_shared_root`) and returns True when the root is shared."""
    global _roots
    full = os.path.abspath(root)
    with _roots_lock:
        if full not in _roots:
            _roots = tuple(sorted({*_roots, full}, key=len, reverse=True))
    return warn_if_shared_root(full)


def warn_if_shared_root(root: StrPath) -> bool:
    """One warning, and True, when another user can rename or remove what the package
    writes under ``root``: it is group- or world-writable without the sticky bit, or it is
    another user's (root's excepted)."""
    try:
        st = os.stat(root)
    except OSError:  # not there yet: it is created 0750
        return False
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        why = (f"is {'world' if mode & 0o002 else 'group'}-writable without the sticky bit "
               f"(mode {mode:04o})")
    elif st.st_uid not in (os.geteuid(), 0):
        why = f"is owned by uid {st.st_uid}, not this user"
    else:
        return False
    _log.warning(
        "ensemble-otel: the root %s %s: another user can replace what is written there "
        "(symbolic links and other users' files under it are refused); give it mode 0750, "
        "or the sticky bit, and this user as its owner", root, why)
    return True


def _anchor(path: StrPath) -> tuple[str, list[str]]:
    """The directory a walk to ``path`` starts from, and the components below it."""
    full = os.path.abspath(path)
    for root in _roots:
        if full == root or full.startswith(root.rstrip(os.sep) + os.sep):
            if os.path.isdir(root):
                return root, full[len(root):].split(os.sep)[1:] if full != root else []
            break  # not made yet: made below its own nearest existing directory
    anchor = full
    while not os.path.isdir(anchor):
        anchor = os.path.dirname(anchor)
    rest = full[len(anchor):].lstrip(os.sep)
    return anchor, rest.split(os.sep) if rest else []


# -- checks ---------------------------------------------------------------------------------


def check_owner(st: os.stat_result, path: StrPath) -> None:
    """Refuse what another user than this one or root owns."""
    uid = os.geteuid()
    if st.st_uid != uid and st.st_uid != 0:
        raise UnsafePathError(
            path, f"is owned by uid {st.st_uid}, not this user (uid {uid}) or root", errno.EPERM)


def _explain(dir_fd: int, name: str, shown: str, exc: OSError) -> OSError:
    """The error to raise for a failed open of ``name``: a symbolic link is named as such;
    any other error carries the full path."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except OSError:
            pass
        else:
            if stat.S_ISLNK(st.st_mode):
                return UnsafePathError(shown, "is a symbolic link", errno.ELOOP)
            if exc.errno == errno.ENXIO:  # a FIFO with no reader, a socket
                return UnsafePathError(shown, "is not a regular file", errno.ENXIO)
    return type(exc)(exc.errno, exc.strerror, shown)


# -- directories ----------------------------------------------------------------------------


def open_dir(path: StrPath, *, create: bool = True) -> int:
    """A descriptor of directory ``path`` (the caller closes it), reached from its anchor one
    component at a time with ``O_DIRECTORY | O_NOFOLLOW``; missing ones are created 0750
    (unless ``create`` is False). Raises ``UnsafePathError`` or another ``OSError`` naming
    the component."""
    anchor, parts = _anchor(path)
    return walk_dirs(anchor, parts, create=create)


def walk_dirs(anchor: StrPath, parts: Sequence[str], *, create: bool = False,
              owners: bool = True) -> int:
    """The one walk below a directory: a descriptor of ``anchor/parts...`` (the caller
    closes it), each component opened relative to the one before with ``O_DIRECTORY |
    O_NOFOLLOW``, so no symbolic link below ``anchor`` is ever followed. ``create``: missing
    components are made 0750. ``owners``: a directory of another user (root's excepted) is
    refused (writers); readers pass False. A symbolic link is ``UnsafePathError``; other
    errors are ``OSError`` naming the component."""
    fd = os.open(anchor, _DIR_FLAGS)
    shown = os.fspath(anchor)
    try:
        for i, name in enumerate(parts):
            shown = os.path.join(shown, name)
            try:
                child = _child_dir(fd, name, shown, create, owners)
            except NotADirectoryError as exc:
                if create and i + 1 < len(parts):  # as mkdir says: the one it cannot create
                    raise NotADirectoryError(exc.errno, exc.strerror,
                                             os.path.join(shown, parts[i + 1])) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _child_dir(dir_fd: int, name: str, shown: str, create: bool, owners: bool) -> int:
    flags = _DIR_FLAGS | os.O_NOFOLLOW
    created = False
    try:
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, DIR_MODE, dir_fd=dir_fd)
                created = True
            except FileExistsError:  # made meanwhile by another thread or process
                pass
            fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise _explain(dir_fd, name, shown, exc) from None
    try:
        st = os.fstat(fd)
        if owners:
            check_owner(st, shown)
        if created and stat.S_IMODE(st.st_mode) != DIR_MODE:
            os.fchmod(fd, DIR_MODE)  # mkdir applied the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure_dir(path: StrPath) -> None:
    """Create directory ``path`` and its missing parents 0750 (see :func:`open_dir`)."""
    os.close(open_dir(path))


# -- files ----------------------------------------------------------------------------------


def open_file(path: StrPath, flags: int, *, dir_fd: int | None = None) -> int:
    """Open ``path`` with ``flags`` (``os.O_RDONLY``, ``os.O_WRONLY | os.O_APPEND |
    os.O_CREAT``, ...) without following a final symbolic link; a file created is 0640.

    With ``dir_fd`` (a descriptor from :func:`open_dir` of ``path``'s directory) the file is
    opened relative to it, else its directory is opened first (created when ``flags`` has
    ``O_CREAT``). Refuses a symbolic link, another user's file and anything that is not a
    regular file (a FIFO, a device) with ``UnsafePathError``.
    """
    shown = os.fspath(path)
    if dir_fd is not None:
        return _open_in(dir_fd, os.path.basename(shown), flags, shown)
    parent = open_dir(os.path.dirname(os.path.abspath(shown)), create=bool(flags & os.O_CREAT))
    try:
        return _open_in(parent, os.path.basename(shown), flags, shown)
    finally:
        os.close(parent)


def _open_in(dir_fd: int, name: str, flags: int, shown: str) -> int:
    flags |= _FILE_FLAGS
    created = bool(flags & os.O_EXCL)
    try:
        if flags & os.O_CREAT and not created:  # first try to create it, to know its mode
            try:
                fd = os.open(name, flags | os.O_EXCL, FILE_MODE, dir_fd=dir_fd)
                created = True
            except FileExistsError:
                fd = os.open(name, flags & ~os.O_CREAT, dir_fd=dir_fd)
        else:
            fd = os.open(name, flags, FILE_MODE, dir_fd=dir_fd)
    except OSError as exc:
        raise _explain(dir_fd, name, shown, exc) from None
    try:
        st = os.fstat(fd)
        check_owner(st, shown)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(shown, "is not a regular file", errno.EINVAL)
        if created and stat.S_IMODE(st.st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)  # open applied the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: StrPath, max_bytes: int) -> bytes:
    """The whole of regular file ``path``, refused (``ValueError``) past ``max_bytes``."""
    fd = open_file(path, os.O_RDONLY)
    try:
        chunks = []
        left = max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left <= 0:
        raise ValueError(f"{os.fspath(path)}: larger than {max_bytes} bytes")
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def replace_file(path: StrPath, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data``: a temp file with an unpredictable name beside it
    (``O_CREAT | O_EXCL | O_NOFOLLOW``, 0640), fsynced, renamed over ``path`` within the
    directory's descriptor. A symbolic link or another user's file at ``path`` is refused."""
    shown = os.fspath(path)
    name = os.path.basename(shown)
    dir_fd = open_dir(os.path.dirname(os.path.abspath(shown)))
    try:
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePathError(shown, "is a symbolic link", errno.ELOOP)
            check_owner(st, shown)
        tmp, fd = _temp_file(dir_fd, name, shown)
        try:
            try:
                write_all(fd, data)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)


def _temp_file(dir_fd: int, name: str, shown: str) -> tuple[str, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(16):  # a name taken (planted, or another thread's): draw again
        tmp = f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, flags, FILE_MODE, dir_fd=dir_fd)
        except FileExistsError:
            continue
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, os.path.join(os.path.dirname(shown), tmp)
                            ) from None
        try:
            os.fchmod(fd, FILE_MODE)  # open applied the umask
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=dir_fd)
            raise
        return tmp, fd
    raise FileExistsError(errno.EEXIST, "no free temp file name", shown)


def rename(path: StrPath, new_name: str) -> None:
    """Rename ``path`` to ``new_name`` in the same directory (neither is followed)."""
    shown = os.fspath(path)
    dir_fd = open_dir(os.path.dirname(os.path.abspath(shown)), create=False)
    try:
        os.replace(os.path.basename(shown), new_name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def unlink(path: StrPath) -> None:
    """Remove ``path`` (a symbolic link there is removed, never followed)."""
    shown = os.fspath(path)
    dir_fd = open_dir(os.path.dirname(os.path.abspath(shown)), create=False)
    try:
        os.unlink(os.path.basename(shown), dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def lstat(path: StrPath) -> os.stat_result:
    """``os.lstat`` of ``path`` reached through :func:`open_dir` (no directory followed)."""
    shown = os.fspath(path)
    dir_fd = open_dir(os.path.dirname(os.path.abspath(shown)), create=False)
    try:
        return os.lstat(os.path.basename(shown), dir_fd=dir_fd)
    finally:
        os.close(dir_fd)

