"""deploy/systemd: the unit's settings, `systemd-analyze verify`, and the unit's command
line run for real with the example env file, speaking sd_notify to a socket the test holds.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from deploy_support import DEPLOY, env_file_entries, unit_entries
from integration_gate import require_binary

from ensemble_otel.settings import DEFAULT_HEARTBEAT_INTERVAL

SYSTEMD = DEPLOY / "systemd"
UNIT = SYSTEMD / "ensemble-bot@.service"
ENV_EXAMPLE = SYSTEMD / "ensemble-bot.env.example"
INSTALL_PREFIX = "/opt/ensemble/venv"  # where the unit expects the virtualenv
VENV = Path(sys.executable).parent.parent
HOW_TO_GET_SYSTEMD = "run scripts/install-system-deps.sh (Debian package systemd)"


def service() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in unit_entries(UNIT.read_text(encoding="utf-8"))["Service"]:
        out.setdefault(key, []).append(value)
    return out


def env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    return env_file_entries(path)


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "min": 60, "m": 60, "h": 3600}
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_unit_is_notify_with_watchdog_restart_and_env_file() -> None:
    s = service()
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"]
    assert s["EnvironmentFile"] == ["/etc/ensemble/%i.env"]
    assert float(s["RestartSec"][0]) > 0
    interval = float(env_file().get("ENSEMBLE_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_INTERVAL))
    assert seconds(s["WatchdogSec"][0]) >= 3 * interval


def test_unit_names_the_strategy_and_root_and_the_env_file_does_not_override_them() -> None:
    env = dict(v.split("=", 1) for v in service()["Environment"])
    assert env["ENSEMBLE_STRATEGY_ID"] == "%i"
    assert env["PAPER_TRADING_ROOT"] == "/var/lib/ensemble"
    assert "/var/lib/" + service()["StateDirectory"][0] == env["PAPER_TRADING_ROOT"]
    # EnvironmentFile= settings beat Environment= ones
    assert not {"ENSEMBLE_STRATEGY_ID", "PAPER_TRADING_ROOT"} & set(env_file())


def test_env_file_wires_zero_code_instrumentation() -> None:
    env = env_file()
    assert env["OTEL_PYTHON_DISTRO"] in {
        ep.name for ep in entry_points(group="opentelemetry_distro")}
    assert env["OTEL_PYTHON_CONFIGURATOR"] in {
        ep.name for ep in entry_points(group="opentelemetry_configurator")}
    [exec_start] = service()["ExecStart"]
    assert exec_start == f"{INSTALL_PREFIX}/bin/opentelemetry-instrument $ENSEMBLE_BOT_COMMAND"
    command = shlex.split(env["ENSEMBLE_BOT_COMMAND"])
    assert command[0].startswith(INSTALL_PREFIX + "/bin/")
    assert int(env["OTEL_METRIC_EXPORT_INTERVAL"]) <= 60_000  # the rules' stale threshold


def _verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    exe = require_binary("systemd-analyze", HOW_TO_GET_SYSTEMD)
    path = tmp_path / "ensemble-bot@eurusd-demo.service"
    # The unit points at the install location; here the venv stands in for it.
    path.write_text(unit_text.replace(INSTALL_PREFIX, str(VENV)), encoding="utf-8")
    return subprocess.run([exe, "verify", "--man=no", str(path)], capture_output=True,
                          text=True, timeout=120, check=False)


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    assert (VENV / "bin" / "opentelemetry-instrument").exists()
    result = _verify(UNIT.read_text(encoding="utf-8"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("WatchdogSec=90", "WatchdogSecs=90", "Unknown key"),
        ("Type=notify", "Type=notifyy", "Failed to parse service type"),
    ],
)
def test_systemd_analyze_verify_reports_mistakes(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert old in text
    result = _verify(text.replace(old, new), tmp_path)
    assert expected in result.stderr


def test_unit_command_speaks_sd_notify(tmp_path: Path) -> None:
    """ExecStart with the example env file, as systemd would run it (same environment
    variables, NOTIFY_SOCKET and WATCHDOG_USEC set), against a datagram socket here:
    READY=1 first, WATCHDOG=1 while it runs, STOPPING=1 at the end, all from one PID."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENSEMBLE_", "OTEL_", "NOTIFY_", "WATCHDOG_"))
           and k != "PAPER_TRADING_ROOT"}
    example = env_file()
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        example.pop(key)  # no collector in this test: files only
    env.update(example)
    env.update({
        "ENSEMBLE_STRATEGY_ID": "eurusd-demo",  # %i
        "PAPER_TRADING_ROOT": str(tmp_path / "root"),
        "ENSEMBLE_HEARTBEAT_INTERVAL": "0.5",  # beats often enough to see WATCHDOG=1
        "WATCHDOG_USEC": "3000000",
    })
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.5)
    env["NOTIFY_SOCKET"] = str(sock_path)
    command = [a.replace(INSTALL_PREFIX, str(VENV)) for a in shlex.split(env.pop(
        "ENSEMBLE_BOT_COMMAND"))]
    # The example replays two years at 600x; here 48 bars at 36000x (about 5 s), no report.
    command = [a for a in command if a not in ("--speed", "600")]
    command += ["--bars", "48", "--speed", "36000", "--no-report"]
    argv = [str(VENV / "bin" / "opentelemetry-instrument"), *command]
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    messages: list[str] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                if proc.poll() is not None:
                    break
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=30)[0]
        sock.close()
    assert proc.returncode == 0, output[-3000:]
    assert messages, output[-3000:]
    assert messages[0] == "READY=1", messages
    assert "WATCHDOG=1" in messages, messages
    assert messages[-1] == "STOPPING=1", messages
    assert messages.count("READY=1") == 1 and messages.count("STOPPING=1") == 1
    assert "WATCHDOG=1" not in messages[: messages.index("READY=1")]
    beat = (tmp_path / "root" / "logs" / "heartbeat" / "eurusd-demo.json").read_text()
    assert f'"pid":{proc.pid}' in beat.replace(" ", "")  # one process: exec, not a child
    assert '"state":"stopped"' in beat.replace(" ", "")
