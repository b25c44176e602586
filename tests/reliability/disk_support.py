"""Helpers for the full-disk tests: a tiny tmpfs, a filler, a bot driven over stdin.

Mounting needs root (``mount -t tmpfs``). Without it the tests skip, naming the reason;
with ENSEMBLE_REQUIRE_INTEGRATION=1 (CI) they fail instead, like every other missing
component (the rule is tests/integration_gate.py's).
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from integration_gate import missing
from reliability_support import bot_env

HERE = Path(__file__).resolve().parent
DRIVEN_BOT = HERE / "driven_bot.py"


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` unless ``ok``; fail instead under ENSEMBLE_REQUIRE_INTEGRATION=1."""
    if not ok:
        missing(reason)


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str = "256k") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``where`` (created) for the block; unmount after."""
    where.mkdir(parents=True, exist_ok=True)
    require(os.geteuid() == 0, "mounting a tiny tmpfs for the full-disk test needs root")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                          str(where)], capture_output=True, text=True)
    require(out.returncode == 0, f"mount -t tmpfs failed: {out.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write a file in ``directory`` until the file system refuses another byte.

    It tops up until a pass adds nothing: a file the bot replaced meanwhile (write a temp
    file, rename it over the old one) may have freed a page after the first pass.
    """
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(20):
            added = 0
            chunk = 1 << 16
            while chunk:
                try:
                    added += os.write(fd, b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    chunk //= 2
            if not added:
                break
            time.sleep(0.1)
    finally:
        os.close(fd)
    return path


def settled_bytes(path: Path, tries: int = 5) -> bytes:
    """The file's content, ending at a newline; a line being written is given time to end.

    A reader can catch an append half-way through (a write crossing a page, or a short write
    on a full disk before it is cut back); a torn line that stays is what fails a test.
    """
    data = path.read_bytes()
    for _ in range(tries):
        if data == b"" or data.endswith(b"\n"):
            return data
        time.sleep(0.05)
        data = path.read_bytes()
    return data


class DrivenBot:
    """``driven_bot.py`` in a subprocess: send commands, read its answers and its stderr."""

    def __init__(self, root: Path, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVEN_BOT)], env=bot_env(root, **env), cwd=HERE,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            bufsize=1)
        self._answers: queue.Queue[str] = queue.Queue()
        self._stderr: list[tuple[float, str]] = []
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.expect("ready", timeout=60)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(line.rstrip("\n"))
        self._answers.put("<eof>")

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append((time.monotonic(), line.rstrip("\n")))

    def expect(self, prefix: str, timeout: float = 60) -> str:
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the bot did not answer within {timeout} s; stderr:\n"
                                 + self.stderr()[-3000:]) from None
        assert answer.startswith(prefix), (
            f"expected {prefix!r}, got {answer!r}; stderr:\n{self.stderr()[-3000:]}")
        return answer

    def bars(self, n: int) -> tuple[int, int]:
        """Send ``n`` bars; return (bars so far, records returned so far)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"bars {n}\n")
        self.proc.stdin.flush()
        _, done, returned = self.expect("ok").split()
        return int(done), int(returned)

    def quit(self, timeout: float = 60) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.expect("bye", timeout=timeout)
        code = self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=5)
        return code

    def stderr_lines(self, since: float = -1.0) -> list[str]:
        return [line for at, line in list(self._stderr) if at >= since]

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> DrivenBot:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
