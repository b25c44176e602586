"""systemd notifications: READY=1 after the start-up beat, WATCHDOG=1 per beat, STOPPING=1.

A unix datagram socket made by the test stands in for systemd (a path and an abstract
``@`` address), so what is checked is what goes over the wire.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

import ensemble_otel
from ensemble_otel import notify


@dataclass
class NotifySocket:
    """A bound datagram socket; ``address`` is what goes into NOTIFY_SOCKET."""

    address: str
    sock: socket.socket
    messages: list[str] = field(default_factory=list)

    def drain(self, timeout: float = 0.0) -> list[str]:
        """Messages received so far (waits up to ``timeout`` for the first new one)."""
        self.sock.settimeout(timeout if timeout > 0 else 0.001)
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return list(self.messages)
            self.sock.settimeout(0.001)

    def wait_for(self, message: str, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while message not in self.messages:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {message!r} within {timeout}s: {self.messages}")
            self.drain(0.1)
        return list(self.messages)


def _bind(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + address[1:] if address.startswith("@") else address)
    return sock


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    """NOTIFY_SOCKET pointing at a socket the test reads."""
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
    else:
        address = f"@ensemble-otel-test-{uuid.uuid4().hex}"
    sock = _bind(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield NotifySocket(address, sock)
    finally:
        sock.close()


# -- notify.py ------------------------------------------------------------------------------

def test_notify_sends_one_datagram(systemd: NotifySocket) -> None:
    assert notify.notify("READY=1") is True
    assert notify.notify("STATUS=trading EURUSD") is True
    assert systemd.drain(1.0) == ["READY=1", "STATUS=trading EURUSD"]


def test_notify_without_socket_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.notify("READY=1") is False


@pytest.mark.parametrize("address", ["/nonexistent/dir/notify.sock", "@no-such-abstract-name"])
def test_notify_to_a_missing_socket_fails_soft(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert notify.notify("READY=1") is False  # never raises: the bot runs without systemd


@pytest.mark.parametrize(
    ("usec", "pid", "enabled"),
    [(None, None, False), ("", None, False), ("30000000", None, True),
     ("30000000", "self", True), ("30000000", "other", False)],
)
def test_watchdog_enabled(monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None,
                          enabled: bool) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            value = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(value, value)
            monkeypatch.setenv(name, value)
    assert notify.watchdog_enabled() is enabled


# -- the lifecycle through configure() -----------------------------------------------------

def _spy_on_ready(monkeypatch: pytest.MonkeyPatch, heartbeat: Path) -> list[dict[str, object]]:
    """Record the heartbeat file as it is when each message is sent."""
    seen: list[dict[str, object]] = []
    real = notify.notify

    def spy(message: str) -> bool:
        beat = orjson.loads(heartbeat.read_bytes()) if heartbeat.exists() else None
        seen.append({"message": message, "beat": beat})
        return real(message)

    monkeypatch.setattr(notify, "notify", spy)
    return seen


def test_ready_after_the_start_up_beat_and_stopping_at_shutdown(
    systemd: NotifySocket, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heartbeat = root / "logs" / "heartbeat" / "s1.json"
    seen = _spy_on_ready(monkeypatch, heartbeat)
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    assert systemd.drain(1.0) == ["READY=1"]
    ready = seen[0]
    assert ready["message"] == "READY=1"
    beat = ready["beat"]
    assert isinstance(beat, dict), "READY=1 was sent before the start-up heartbeat was written"
    assert beat["pid"] == os.getpid() and beat["seq"] == 0
    telemetry.shutdown()
    assert systemd.drain(1.0) == ["READY=1", "STOPPING=1"]
    assert orjson.loads(heartbeat.read_bytes())["state"] == "stopped"


def test_watchdog_ping_with_each_beat(
    systemd: NotifySocket, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=0.05)
    systemd.wait_for("WATCHDOG=1")
    deadline = time.monotonic() + 10
    while systemd.messages.count("WATCHDOG=1") < 3 and time.monotonic() < deadline:
        systemd.drain(0.2)
    beats_before = telemetry.heartbeat.seq
    telemetry.shutdown()
    messages = systemd.drain(0.5)
    assert messages[0] == "READY=1" and messages[-1] == "STOPPING=1"
    pings = messages.count("WATCHDOG=1")
    assert pings >= 3
    # one ping per periodic beat: never more pings than beats written
    assert pings <= beats_before + 1
    assert set(messages) == {"READY=1", "WATCHDOG=1", "STOPPING=1"}


def test_no_watchdog_pings_unless_systemd_asks(
    systemd: NotifySocket, root: Path
) -> None:
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=0.05)
    deadline = time.monotonic() + 10
    while telemetry.heartbeat.seq < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert telemetry.heartbeat.seq >= 4  # the beats happened
    telemetry.shutdown()
    assert systemd.drain(0.5) == ["READY=1", "STOPPING=1"]


def test_no_watchdog_pings_for_another_pid(
    systemd: NotifySocket, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=0.05)
    deadline = time.monotonic() + 10
    while telemetry.heartbeat.seq < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    telemetry.shutdown()
    assert "WATCHDOG=1" not in systemd.drain(0.5)


def test_a_stuck_pipeline_stops_the_pings(
    systemd: NotifySocket, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ping rides on the beat: when beats cannot be written, systemd hears nothing."""
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=0.05)
    systemd.wait_for("WATCHDOG=1")
    blocked = threading.Event()

    def stuck_write(unix: float, state: str | None = None) -> bool:
        blocked.set()
        return False  # what a failed write reports

    monkeypatch.setattr(telemetry.heartbeat, "write", stuck_write)
    assert blocked.wait(5)
    systemd.drain(0.2)
    count = systemd.messages.count("WATCHDOG=1")
    time.sleep(0.5)  # ten beat intervals
    assert systemd.drain(0.1).count("WATCHDOG=1") == count
