"""The `ensemble-otel` entry points, and what the docs promise about them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ensemble_otel
from ensemble_otel import cli
from ensemble_otel._version import __version__
from ensemble_otel.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"ensemble-otel {__version__}"


def test_python_dash_m() -> None:
    proc = subprocess.run([sys.executable, "-m", "ensemble_otel", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"ensemble-otel {__version__}"
    proc = subprocess.run([sys.executable, "-m", "ensemble_otel", "status", "--root",
                           "/nonexistent-root"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "no strategy under" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "ensemble_otel"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "status" in proc.stderr


def test_every_subcommand_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    cli.build_parser().print_help()
    text = capsys.readouterr().out
    for name in cli.SUBCOMMANDS:
        assert name in text


def test_unusable_root_raises_config_error_as_documented(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as exc:
        ensemble_otel.configure(root=blocker / "root", strategy_id="doc-check")
    assert not isinstance(exc.value, OSError)
    doc = (REPO / "docs" / "zero-code.md").read_text(encoding="utf-8")
    row = next(x for x in doc.splitlines() if x.startswith("| an unusable root"))
    assert "`ConfigError`" in row and "OSError" not in row


def test_readme_main_example_handles_sigterm() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```python\n(.*?)```", readme, re.S)
    assert first is not None
    code = first.group(1)
    assert "signal.signal(signal.SIGTERM" in code
    assert code.index("signal.signal") < code.index("configure()")


def test_smoke_script_expects_records() -> None:
    text = (REPO / "scripts" / "smoke.sh").read_text(encoding="utf-8")
    assert "ensemble-otel validate --strict \"${expect_args[@]}\"" in text
    assert os.access(REPO / "scripts" / "smoke.sh", os.X_OK)
