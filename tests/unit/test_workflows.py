"""The GitHub workflows: actionlint, the GitHub workflow JSON Schema, and the jobs we promise.

actionlint is built into ``.tools/bin`` by ``make tools`` (scripts/install-tools.sh); with
ENSEMBLE_REQUIRE_INTEGRATION=1 a missing actionlint fails these tests instead of skipping.
The schema check uses check-jsonschema's built-in copy of the schema (no network).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from integration_gate import require_binary

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
CI = REPO / ".github" / "workflows" / "ci.yml"
# Read at import: the unit tests' autouse fixture removes ENSEMBLE_* variables before each test.
REQUIRE_INTEGRATION = os.environ.get("ENSEMBLE_REQUIRE_INTEGRATION", "").strip() == "1"


@pytest.fixture
def actionlint(monkeypatch: pytest.MonkeyPatch) -> str:
    local = REPO / ".tools" / "bin" / "actionlint"
    name: str | Path = local if local.exists() or not shutil.which("actionlint") else "actionlint"
    if REQUIRE_INTEGRATION:
        monkeypatch.setenv("ENSEMBLE_REQUIRE_INTEGRATION", "1")
    found: str = require_binary(name, "run `make tools` (scripts/install-tools.sh)")
    return found


def _load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def test_there_are_workflows() -> None:
    assert CI in WORKFLOWS


def test_actionlint(actionlint: str) -> None:
    proc = subprocess.run([actionlint, "-no-color", *map(str, WORKFLOWS)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path, actionlint: str) -> None:
    """The check above can fail: a misspelt matrix key is found."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(CI.read_text().replace("${{ matrix.python-version }}",
                                          "${{ matrix.python_versoin }}", 1))
    proc = subprocess.run([actionlint, "-no-color", str(bad)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert "python_versoin" in proc.stdout


def _check_jsonschema() -> list[str]:
    exe = Path(sys.executable).with_name("check-jsonschema")
    assert exe.exists(), "check-jsonschema is a dev dependency: pip install -e '.[dev]'"
    return [str(exe), "--builtin-schema", "vendor.github-workflows"]


def test_github_workflow_schema() -> None:
    proc = subprocess.run([*_check_jsonschema(), *map(str, WORKFLOWS)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_github_workflow_schema_rejects_a_bad_job(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(CI.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest", 1))
    proc = subprocess.run([*_check_jsonschema(), str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stdout


# --- what the jobs do ----------------------------------------------------------------------


def _runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def _uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def test_unit_tests_on_python_3_10_to_3_13() -> None:
    job = _load(CI)["jobs"]["unit"]
    assert job["strategy"]["matrix"]["python-version"] == ["3.10", "3.11", "3.12", "3.13"]
    assert "actions/setup-python" in _uses(job)
    assert any(run.startswith("make unit") for run in _runs(job))


def test_lowest_job_runs_the_unit_suite_at_the_floors_on_the_oldest_python() -> None:
    doc = _load(CI)
    job = doc["jobs"]["lowest"]
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == doc["jobs"]["unit"]["strategy"]["matrix"][
        "python-version"][0]
    assert any(run.startswith("make test-lowest") for run in _runs(job))


def test_make_test_runs_the_unit_suite_on_the_matrix_pythons() -> None:
    """`make test` includes test-pythons, whose PYTHONS are the unit job's matrix."""
    makefile = (REPO / "Makefile").read_text().splitlines()
    [test_rule] = [ln for ln in makefile if ln.startswith("test:")]
    assert "test-pythons" in test_rule.split("##")[0].split()
    [pythons] = [ln for ln in makefile if ln.startswith("PYTHONS ?=")]
    matrix = _load(CI)["jobs"]["unit"]["strategy"]["matrix"]["python-version"]
    assert pythons.split("?=")[1].split() == matrix


def test_lint_job() -> None:
    job = _load(CI)["jobs"]["lint"]
    assert any(run.startswith("make lint") for run in _runs(job))
    assert any("actionlint" in run for run in _runs(job))


def test_integration_job_builds_the_collector_and_requires_every_component() -> None:
    job = _load(CI)["jobs"]["integration"]
    assert "actions/setup-go" in _uses(job)
    runs = _runs(job)
    assert "make collector" in runs and "make test" in runs
    assert runs.index("make collector") < runs.index("make test")
    assert job["env"]["ENSEMBLE_REQUIRE_INTEGRATION"] == "1"


def test_smoke_job_uploads_the_outputs_when_it_fails() -> None:
    job = _load(CI)["jobs"]["smoke"]
    assert any(run.startswith("make smoke") for run in _runs(job))
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith(
        "actions/upload-artifact"))
    assert upload["if"] == "failure()"
    assert upload["with"]["path"].rstrip("/") == "paper_trading_outputs"
    assert job["env"]["SMOKE_DIR"].endswith("/paper_trading_outputs")


def test_workflows_run_on_push_and_pull_request() -> None:
    doc = _load(CI)
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    assert doc["permissions"] == {"contents": "read"}
