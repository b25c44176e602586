"""`make fleet` in small: bench/fleet.py with a few bots passes its own checks and prints
its table (strategies' last equity in VictoriaMetrics and Prometheus 3, no mixed ids,
every record in VictoriaLogs, none lost)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from backend_support import backend_binary
from collector_support import COLLECTOR_BINARY, HOW_TO_GET_COLLECTOR, REPO_ROOT, require_binary

pytestmark = pytest.mark.integration


def test_small_fleet_passes_its_checks_and_prints_the_table(tmp_path: Path) -> None:
    require_binary(COLLECTOR_BINARY, HOW_TO_GET_COLLECTOR)
    for name in ("prometheus", "victoria-metrics", "victoria-logs"):
        backend_binary(name)
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "fleet.py"), "--bots", "4", "--bars", "120",
         "--keep", str(tmp_path / "fleet")],
        capture_output=True, text=True, timeout=600, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "fleet: OK" in out and "FAIL" not in out
    assert re.search(r"records on disk (\d+), delivered \1, lost 0,", out), out
    assert "fleet: 4 bots on 2 hosts" in out
    rows = [line for line in out.splitlines() if line.startswith(("| gateway", "| host-"))]
    assert len(rows) == 3, out
