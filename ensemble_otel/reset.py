"""Start a strategy's files over: ``ensemble-otel reset``, ``configure(fresh=True)``,
``ENSEMBLE_FRESH=1``.

What goes, for strategy S under root R, and nothing else:

- ``R/state/health/S.json`` and its journal ``S.json.wal`` (and their set-aside
  ``.corrupt`` copies and unfinished temp files): the bar state that says which buckets are
  already recorded;
- ``R/logs/1h/health_snapshot/S/``, ``R/logs/24h/health_snapshot/S/``, ``R/logs/events/S/``:
  the strategy's records;
- ``R/logs/heartbeat/S.json``: its heartbeat file.

Nothing is followed through a symlink: every directory is opened with ``O_NOFOLLOW``
relative to its parent, a symlink where a directory of the path should be is refused (an
error naming it), and a symlink at one of the strategy's own paths is removed as a link
(its target is never touched). A live process holding the strategy's lock
(``R/state/S.lock``) makes the reset refuse: files that a running bot writes are never
removed under it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from ensemble_otel.contract.registry import HEALTH_STATE_PATH, STRATEGY_LOCK_PATH
from ensemble_otel.errors import ConfigError, UnsafePathError
from ensemble_otel.paths import JOURNAL_SUFFIX, lock_path, strategy_dir_entries, strategy_entry
from ensemble_otel.safe_fs import walk_dirs
from ensemble_otel.settings import validate_strategy_id

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_STATE_SUFFIXES = ("", JOURNAL_SUFFIX, ".corrupt", f"{JOURNAL_SUFFIX}.corrupt")


class ResetError(Exception):
    """The reset was refused (a live writer, a symlinked directory) or failed half-way."""


def _targets(strategy_id: str) -> list[tuple[tuple[str, ...], list[str] | re.Pattern[str]]]:
    """(directory under the root, names in it) of the strategy's files and directories,
    from the contract's path templates (:func:`paths.strategy_dir_entries`)."""
    state_dir, state_name = strategy_entry(HEALTH_STATE_PATH, strategy_id)
    out: list[tuple[tuple[str, ...], list[str] | re.Pattern[str]]] = []
    for directory, name, is_file in strategy_dir_entries(strategy_id):
        if not is_file:
            out.append((directory, [name]))
            continue
        suffixes = _STATE_SUFFIXES if (directory, name) == (state_dir, state_name) else ("",)
        out.append((directory, [name + suffix for suffix in suffixes]))
        # a replacement cut short: the older pid.counter temp names and safe_fs's random ones
        out.append((directory, re.compile(rf"\.{re.escape(name)}\.(?:\d+\.\d+|[0-9a-f]{{16}})"
                                          r"\.tmp")))
    return out


@contextlib.contextmanager
def _opened_dir(root: Path, parts: tuple[str, ...]) -> Iterator[int | None]:
    """The directory ``root/parts`` opened through safe_fs's one no-follow walk; None if
    absent. A symlink or a file where a directory should be is a :class:`ResetError`."""
    try:
        fd = walk_dirs(root, parts, owners=False)
    except FileNotFoundError:
        yield None
        return
    except (UnsafePathError, NotADirectoryError) as exc:
        raise ResetError(f"{exc.filename} is a symlink or not a directory; refusing to "
                         "follow it (nothing was removed there)") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _remove_entry(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd``: a file or link by unlink, a directory tree by fd."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        for entry in list(os.scandir(fd)):
            _remove_entry(fd, entry.name)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def remove_strategy_files(root: Path, strategy_id: str, *, keep_lock: bool = True,
                          temps_only: bool = False) -> list[Path]:
    """Remove the strategy's files under ``root`` (see the module's docstring); return them.

    ``temps_only``: only the temp files of replacements cut short by a crash (what every
    start of the strategy's writer clears). The caller holds the strategy's lock
    (``configure()``) or :func:`reset` takes it. Raises :class:`ResetError` on a symlinked
    directory.
    """
    validate_strategy_id(strategy_id)
    removed: list[Path] = []
    for parts, names in _targets(strategy_id):
        if temps_only and not isinstance(names, re.Pattern):
            continue
        with _opened_dir(Path(root), parts) as fd:
            if fd is None:
                continue
            present = os.listdir(fd)
            chosen = ([n for n in present if names.fullmatch(n)] if isinstance(names, re.Pattern)
                      else [n for n in names if n in present])
            for name in sorted(chosen):
                _remove_entry(fd, name)
                removed.append(Path(root).joinpath(*parts, name))
    if not keep_lock:
        lock_dir, lock_name = strategy_entry(STRATEGY_LOCK_PATH, strategy_id)
        with _opened_dir(Path(root), lock_dir) as fd, contextlib.suppress(FileNotFoundError):
            if fd is not None:
                os.unlink(lock_name, dir_fd=fd)
    return removed


def reset(root: Path, strategy_id: str) -> list[Path]:
    """Start ``strategy_id``'s files under ``root`` over; refuse while a live process
    holds its lock. Returns what was removed."""
    lock_dir, lock_name = strategy_entry(STRATEGY_LOCK_PATH, strategy_id)
    with _opened_dir(Path(root), lock_dir) as state:
        if state is None:  # no lock file was ever made: nothing of a live writer to respect
            return remove_strategy_files(root, strategy_id)
        try:
            fd = os.open(lock_name, os.O_RDWR | os.O_NOFOLLOW, dir_fd=state)
        except FileNotFoundError:
            return remove_strategy_files(root, strategy_id)
        except OSError as exc:
            raise ResetError(f"{lock_path(Path(root), strategy_id)} cannot be "
                             f"opened without following a link ({exc.strerror})") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise ResetError(
                    f"a live process (pid {holder}) holds strategy {strategy_id!r} under "
                    f"{root}; stop it first (nothing was removed)") from None
            return remove_strategy_files(root, strategy_id)
        finally:
            os.close(fd)


# -- ensemble-otel reset --------------------------------------------------------------------

def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "reset", help="start a strategy's files over (state, records, heartbeat)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None,
                        help="PAPER_TRADING_ROOT (default: env, else ./paper_trading_outputs)")
    parser.add_argument("--strategy", required=True, help="the strategy id whose files go")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ensemble_otel.settings import load_settings

    try:
        settings = load_settings(**({"root": args.root} if args.root else {}),
                                 strategy_id=args.strategy)
        removed = reset(settings.root, settings.strategy_id)
    except (ConfigError, ResetError) as exc:
        print(f"ensemble-otel reset: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"ensemble-otel reset: {exc}", file=sys.stderr)
        return 1
    what = f"{len(removed)} path(s)" if removed else "nothing (no files of that strategy)"
    print(f"ensemble-otel reset: strategy {settings.strategy_id!r} under {settings.root}: "
          f"removed {what}")
    return 0
