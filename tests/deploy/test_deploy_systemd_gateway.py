"""deploy/systemd/otelcol-ensemble-gateway.service: `systemd-analyze verify`, and its
ExecStartPre (the token check) run for real: a token file the collector would misread
stops the start; a good one leaves the checked copy that the collector is pointed at.
"""

from __future__ import annotations

import secrets
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
from deploy_support import DEPLOY, REPO, env_file_entries, unit_entries
from integration_gate import require_binary

SYSTEMD = DEPLOY / "systemd"
UNIT = SYSTEMD / "otelcol-ensemble-gateway.service"
ENV_EXAMPLE = SYSTEMD / "otelcol-ensemble-gateway.env.example"
CHECKER_INSTALLED = "/usr/local/bin/check-gateway-tokens"
COLLECTOR_INSTALLED = "/usr/local/bin/otelcol-ensemble"
CHECKER = REPO / "scripts" / "check-gateway-tokens.sh"
COLLECTOR = REPO / "collector" / "_build" / "otelcol-ensemble"


def service() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in unit_entries(UNIT.read_text(encoding="utf-8"))["Service"]:
        out.setdefault(key, []).append(value)
    return out


def unit_env() -> dict[str, str]:
    return dict(v.split("=", 1) for v in service()["Environment"])


def test_token_check_runs_first_and_the_collector_reads_its_copy() -> None:
    s = service()
    [pre] = s["ExecStartPre"]
    argv = shlex.split(pre)
    assert argv[0] == CHECKER_INSTALLED and len(argv) == 3
    source, copy = argv[1:]
    env = unit_env()
    assert env["ENSEMBLE_GATEWAY_TOKEN_FILE"] == copy
    assert source != copy
    # the copy lives in the unit's private runtime directory
    assert copy.startswith(f"/run/{s['RuntimeDirectory'][0]}/")
    assert s["RuntimeDirectoryMode"] == ["0700"]
    # EnvironmentFile= beats Environment=: the example must not redirect the collector
    assert "ENSEMBLE_GATEWAY_TOKEN_FILE" not in env_file_entries(ENV_EXAMPLE)
    [start] = s["ExecStart"]
    assert shlex.split(start) == [COLLECTOR_INSTALLED,
                                  "--config=/etc/otelcol-ensemble/gateway.yaml"]
    # the installed checker is the repository's script (install line in the header)
    assert (f"install -m 0755 scripts/check-gateway-tokens.sh {CHECKER_INSTALLED}"
            in UNIT.read_text(encoding="utf-8"))


def test_gateway_runs_unprivileged_and_sandboxed() -> None:
    s = service()
    assert s["User"] == ["otelcol"]
    assert s["NoNewPrivileges"] == ["yes"]
    assert s["CapabilityBoundingSet"] == [""]
    assert s["ProtectSystem"] == ["strict"]
    assert s["MemoryMax"]


def test_env_example_sets_what_the_gateway_requires() -> None:
    env = env_file_entries(ENV_EXAMPLE) | unit_env()
    for name in ("ENSEMBLE_GATEWAY_TLS_CERT_FILE", "ENSEMBLE_GATEWAY_TLS_KEY_FILE",
                 "ENSEMBLE_GATEWAY_TOKEN_FILE"):
        assert env.get(name), name
    assert env["ENSEMBLE_PROMETHEUS_ENDPOINT"].startswith("127.0.0.1:")


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    exe = require_binary("systemd-analyze",
                         "run scripts/install-system-deps.sh (Debian package systemd)")
    collector = require_binary(COLLECTOR, "run `make collector` (collector/build.sh)")
    text = UNIT.read_text(encoding="utf-8")
    text = text.replace(CHECKER_INSTALLED, str(CHECKER)).replace(COLLECTOR_INSTALLED,
                                                                 collector)
    path = tmp_path / UNIT.name
    path.write_text(text, encoding="utf-8")
    result = subprocess.run([exe, "verify", "--man=no", str(path)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr


def run_exec_start_pre(tmp_path: Path, tokens: str) -> tuple[subprocess.CompletedProcess[str],
                                                              Path]:
    """The unit's ExecStartPre with /etc and /run mapped under ``tmp_path``."""
    [pre] = service()["ExecStartPre"]
    etc, run = tmp_path / "etc", tmp_path / "run"
    argv = [a.replace("/etc/", f"{etc}/").replace("/run/", f"{run}/")
            for a in shlex.split(pre)]
    argv[0] = str(CHECKER)
    source, copy = Path(argv[1]), Path(argv[2])
    source.parent.mkdir(parents=True, exist_ok=True)
    copy.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(tokens, encoding="utf-8")
    result = subprocess.run(["/bin/sh", *argv], capture_output=True, text=True, timeout=30,
                            check=False)
    return result, copy


@pytest.mark.parametrize("tokens", ["# gateway tokens\n{good}\n", "{good}\n   # ops\n",
                                    "short\n", ""],
                         ids=["comment line", "indented comment", "short token", "empty"])
def test_exec_start_pre_stops_a_bad_token_file(tmp_path: Path, tokens: str) -> None:
    result, copy = run_exec_start_pre(tmp_path, tokens.format(good=secrets.token_hex(16)))
    assert result.returncode == 1, result.stderr
    assert not copy.exists()


def test_exec_start_pre_writes_the_private_copy(tmp_path: Path) -> None:
    good = secrets.token_hex(16)
    result, copy = run_exec_start_pre(tmp_path, f"{good}\n")
    assert result.returncode == 0, result.stderr
    assert copy.read_text() == f"{good}\n"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
