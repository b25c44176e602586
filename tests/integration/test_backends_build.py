"""`make backends`: the pinned versions, one file for all of them, and a no-op when current.

The versions live in scripts/backends.versions; Jaeger's build module and telemetrygen
must agree with it and with the collector's release. Every binary is in .tools/bin and
runs; a second run of the build script builds nothing.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from backend_support import TOOLS_BIN, backend_binary
from collector_support import COLLECTOR_DIR, REPO_ROOT

pytestmark = pytest.mark.integration

VERSIONS = REPO_ROOT / "scripts" / "backends.versions"
BUILD = REPO_ROOT / "scripts" / "build-backends.sh"
JAEGER_MODULE = REPO_ROOT / "scripts" / "jaeger-build"


def pinned() -> dict[str, tuple[str, str]]:
    """name -> (module, version) from scripts/backends.versions."""
    out: dict[str, tuple[str, str]] = {}
    for line in VERSIONS.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, module, version = line.split()
        assert name not in out, f"{name} twice in {VERSIONS.name}"
        out[name] = (module, version)
    return out


def test_versions_are_the_issue_pins() -> None:
    versions = {name: version for name, (_, version) in pinned().items()}
    assert versions == {
        "prometheus": "v0.316.0", "promtool": "v0.316.0", "victoria-metrics": "v1.151.0",
        "victoria-logs": "v1.52.2", "jaeger": "v1.75.0", "telemetrygen": "v0.161.0",
    }


def test_telemetrygen_is_at_the_collector_release() -> None:
    manifest = yaml.safe_load((COLLECTOR_DIR / "builder-config.yaml").read_text())
    core = manifest["telemetry"]["gomod"].split()[1]
    assert pinned()["telemetrygen"][1] == core


def test_jaeger_build_module_requires_the_pinned_version() -> None:
    go_mod = (JAEGER_MODULE / "go.mod").read_text()
    module, version = pinned()["jaeger"]
    assert re.search(rf"^tool {re.escape(module)}$", go_mod, re.MULTILINE), go_mod[:400]
    required = re.search(r"^\s+github\.com/jaegertracing/jaeger (v\S+)", go_mod, re.MULTILINE)
    assert required is not None and required.group(1) == version
    # go install refuses Jaeger for its replace directives: the module copies the one it needs.
    assert "replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0" in go_mod
    assert (JAEGER_MODULE / "go.sum").stat().st_size > 0


@pytest.mark.parametrize("name", sorted(pinned()))
def test_binary_is_built_and_runs(name: str) -> None:
    binary = backend_binary(name)
    flag = {"victoria-metrics": "-version", "victoria-logs": "-version", "jaeger": "version",
            "telemetrygen": "--help"}.get(name, "--version")
    result = subprocess.run([binary, flag], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    stamp = (TOOLS_BIN / f".{name}.stamp").read_text()
    module, version = pinned()[name]
    assert stamp.startswith(f"{name} {module} {version} "), stamp


def test_build_script_is_a_no_op_when_current() -> None:
    binaries = {name: Path(backend_binary(name)) for name in pinned()}
    before = {name: path.stat().st_mtime_ns for name, path in binaries.items()}
    result = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "building" not in result.stderr, result.stderr
    assert {name: path.stat().st_mtime_ns for name, path in binaries.items()} == before


def test_build_script_refuses_an_unknown_name() -> None:
    result = subprocess.run([str(BUILD), "no-such-backend"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert "no-such-backend" in result.stderr


def test_make_test_builds_the_backends_first() -> None:
    """`make test` (and so CI's .ci/run) depends on `backends`, and make puts .tools/bin
    first on PATH, so the tests find these binaries (Prometheus 3 and its promtool too)."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    prerequisites = re.search(r"^test:([^#\n]*)", makefile, re.MULTILINE)
    assert prerequisites is not None and "backends" in prerequisites.group(1).split()
    assert re.search(r"^backends:.*\n\tscripts/build-backends\.sh", makefile, re.MULTILINE)
    path_line = re.search(r"^export PATH := (.*)$", makefile, re.MULTILINE)
    assert path_line is not None
    assert path_line.group(1).index(".tools/bin") < path_line.group(1).index("$(PATH)")
