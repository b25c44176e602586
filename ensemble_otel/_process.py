"""The process: one current telemetry, the strategy lock, and one fork-and-exit hook.

- :func:`install` / :func:`current` / :func:`release`: the one telemetry of this process;
- :class:`_StrategyLock`: one live writer per (root, strategy);
- :func:`on_fork_in_child`: what a forked child must forget, run by the module's one
  ``os.register_at_fork`` hook; the ``atexit`` hook shuts the current telemetry down,
  bounded by :data:`DEFAULT_SHUTDOWN_TIMEOUT`.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

from ensemble_otel import safe_fs
from ensemble_otel.errors import ConfigError
from ensemble_otel.settings import Settings

_log = logging.getLogger("ensemble_otel")

# seconds ensemble_otel.shutdown() and the shutdown at interpreter exit may take (the
# files are written first; the OTLP flush gets what is left)
DEFAULT_SHUTDOWN_TIMEOUT = 2.0


class Installed(Protocol):
    """What the process holds: a :class:`~ensemble_otel.telemetry.Telemetry` or its no-op."""

    settings: Settings
    closed: bool

    def shutdown(self, timeout_millis: float = ...) -> None: ...


class _StrategyLock:
    """One live writer per (root, strategy): an advisory lock on a file under the root."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.lock_path
        try:  # the first write under the root: a root that cannot be written is a setting error
            self._fd = safe_fs.open_file(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            env = os.environ.get("PAPER_TRADING_ROOT", "").strip()
            raise ConfigError(
                "PAPER_TRADING_ROOT" if env and Path(env) == settings.root else "root",
                str(settings.root),
                f"must be a directory this process can write: cannot create "
                f"{exc.filename or self.path} ({exc.strerror or exc})",
            ) from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise ConfigError(
                "strategy_id", settings.strategy_id,
                f"another live process (pid {holder}) already writes {settings.root} for this "
                "strategy; use another strategy id or root, or stop that process",
            ) from None
        with contextlib.suppress(OSError):  # the pid is a hint; a full disk must not stop the bot
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


# -- the one current telemetry --------------------------------------------------------------

_current: Installed | None = None
_captured = False
_state_lock = threading.RLock()


def current() -> Any:
    """The telemetry of this process, or None."""
    return _current


def _different(given: Settings, running: Settings, names: set[str] | None) -> list[str]:
    """Fields of ``given`` (only ``names`` when set) that differ from ``running``."""
    out = []
    for f in fields(Settings):
        if names is not None and f.name not in names:
            continue
        a, b = getattr(given, f.name), getattr(running, f.name)
        if f.name == "root":
            a, b = Path(a).resolve(), Path(b).resolve()
        if a != b:
            out.append(f.name)
    return out


def install(
    settings: Settings,
    build: Callable[[], Any],
    *,
    explicit: set[str] | None = None,
    captured: bool = False,
) -> Any:
    """The current telemetry when ``settings`` agree with it, else ``build()`` made current.

    ``explicit``: the settings the caller named (None: all of them); only those are
    compared with the running telemetry's. Raises :class:`ConfigError` naming both
    settings when they differ.
    """
    global _current, _captured
    with _state_lock:
        if _current is not None and not _current.closed:
            if _captured or not _different(settings, _current.settings, explicit):
                return _current
            names = _different(settings, _current.settings, explicit)
            raise ConfigError(
                "configure", _describe(settings, names),
                f"already configured with {_describe(_current.settings, names)}; call "
                "ensemble_otel.shutdown() first",
            )
        built = build()
        _current = built
        _captured = captured
        return built


def release(telemetry: Any, timeout_millis: float | None = None) -> None:
    """Shut ``telemetry`` down and forget it if it is the current one."""
    global _current, _captured
    with _state_lock:
        if timeout_millis is None:
            telemetry.shutdown()
        else:
            telemetry.shutdown(timeout_millis=timeout_millis)
        if _current is telemetry:
            _current = None
            _captured = False


def _describe(s: Settings, names: list[str] | None = None) -> str:
    shown = ["strategy_id", "schema_version", "root"]
    shown += [n for n in names or () if n not in shown]
    return " ".join(f"{n}={getattr(s, n)}" for n in shown)


# -- fork and exit: one hook each, registered once ------------------------------------------

_in_child: list[Callable[[], None]] = []
_held: list[Any] = []


def on_fork_in_child(callback: Callable[[], None]) -> None:
    """Run ``callback`` in every forked child (before any code of the child runs)."""
    _in_child.append(callback)


def hold_across_fork(lock: Any) -> None:
    """Take ``lock`` before a fork and release it after, in parent and child: work done
    under it (a beat being written) is whole in the child, never cut at the fork."""
    _held.append(lock)


def _before_fork() -> None:
    for lock in _held:
        lock.acquire()


def _after_fork_in_parent() -> None:
    for lock in reversed(_held):
        lock.release()


def _forget_in_child() -> None:
    global _current, _captured
    telemetry = _current
    forked = getattr(telemetry, "forked", None)
    if forked is not None:
        forked()
    _current = None
    _captured = False


def _after_fork_in_child() -> None:
    _after_fork_in_parent()  # the locks taken before the fork
    for callback in _in_child:
        try:
            callback()
        except Exception:  # a child must start whatever a callback does
            _log.exception("ensemble-otel: after-fork callback failed")


def _at_exit() -> None:
    telemetry = _current
    if telemetry is not None:
        try:
            telemetry.shutdown(timeout_millis=DEFAULT_SHUTDOWN_TIMEOUT * 1000)
        except Exception:
            _log.exception("ensemble-otel: shutdown at exit failed")


on_fork_in_child(_forget_in_child)
os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
