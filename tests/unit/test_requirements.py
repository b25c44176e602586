"""Dependency ranges that are true: configure() refuses an installed version outside them, and
``make test-lowest`` pins every declared floor from a constraints file made from pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

import ensemble_otel
from ensemble_otel import _requirements
from ensemble_otel.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
RUNTIME: list[str] = PROJECT["dependencies"]
DEV: list[str] = PROJECT["optional-dependencies"]["dev"]
EXTRAS: list[str] = [r for group in PROJECT["optional-dependencies"].values() for r in group]


def _floor(requirements: list[str], name: str) -> str:
    for text in requirements:
        req = Requirement(text)
        if req.name == name:
            return next(s.version for s in req.specifier if s.operator == ">=")
    raise AssertionError(f"{name} is not declared")


def _installed_except(**versions: str | None) -> Callable[[str], str | None]:
    """The real version lookup, except for the distributions named (``_`` for ``-``)."""
    wanted = {name.replace("_", "-"): v for name, v in versions.items()}
    real = _requirements.installed_version
    return lambda name: wanted[name] if name in wanted else real(name)


@pytest.fixture(autouse=True)
def _check_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """check_installed() remembers a pass; each test here checks afresh."""
    monkeypatch.setattr(_requirements, "_met", False)


@pytest.fixture
def from_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    """The requirements are this checkout's pyproject.toml (the installed metadata may lag)."""
    monkeypatch.setattr(_requirements, "declared", lambda: [*RUNTIME, *(
        f'{d}; extra == "dev"' for d in DEV)])


# --- configure() refuses what the code cannot run on ---------------------------------------


@pytest.mark.usefixtures("from_pyproject")
def test_sdk_1_30_fails_configure_with_one_line(root: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """At opentelemetry-sdk 1.30.0 events.emit raised TypeError into the bot; now configure()
    says why, before anything is written."""
    monkeypatch.setattr(_requirements, "installed_version",
                        _installed_except(opentelemetry_sdk="1.30.0"))
    with pytest.raises(ConfigError) as info:
        ensemble_otel.configure(root=root, strategy_id="s1")
    message = str(info.value)
    assert "\n" not in message
    floor = _floor(RUNTIME, "opentelemetry-sdk")
    assert message.startswith("opentelemetry-sdk='1.30.0': ensemble-otel ")
    assert f"requires opentelemetry-sdk>={floor},<2, installed 1.30.0" in message
    assert info.value.field == "opentelemetry-sdk" and info.value.value == "1.30.0"
    assert ensemble_otel.get_telemetry() is None
    assert not root.exists()


@pytest.mark.usefixtures("from_pyproject")
def test_every_unmet_requirement_is_in_the_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_requirements, "installed_version", _installed_except(
        opentelemetry_api="1.30.0", msgspec=None, orjson="3.9.0"))
    with pytest.raises(ConfigError) as info:
        _requirements.check_installed()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("opentelemetry-api='1.30.0': ")
    assert f"also orjson>={_floor(RUNTIME, 'orjson')} (installed 3.9.0)" in message
    assert f"also msgspec>={_floor(RUNTIME, 'msgspec')} (installed none)" in message


@pytest.mark.usefixtures("from_pyproject")
def test_a_version_with_control_characters_stays_on_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_requirements, "installed_version",
                        _installed_except(opentelemetry_sdk="1.30\n\x1b[2J"))
    with pytest.raises(ConfigError) as info:
        _requirements.check_installed()
    assert str(info.value).isprintable()
    assert "installed '1.30\\n\\x1b[2J'" in str(info.value)


def test_the_ranges_come_from_the_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the fixture above: the package's own Requires-Dist is what is checked."""
    assert any(Requirement(r).name == "opentelemetry-sdk" for r in _requirements.declared())
    monkeypatch.setattr(_requirements, "installed_version",
                        _installed_except(opentelemetry_sdk="0.9.0"))
    with pytest.raises(ConfigError, match=r"^opentelemetry-sdk='0\.9\.0': .*requires "
                                          r"opentelemetry-sdk>="):
        _requirements.check_installed()


def test_what_is_installed_here_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _requirements.declared(), "ensemble-otel is installed (pip install -e .)"
    assert _requirements.unmet(_requirements.declared(), _requirements.installed_version) == []
    _requirements.check_installed()
    monkeypatch.setattr(_requirements, "declared", lambda: pytest.fail("checked twice"))
    _requirements.check_installed()  # a pass is remembered: configure() stays cheap


@pytest.mark.parametrize(("installed", "ok"), [
    ("1.39.0", True), ("1.45.2", True), ("1.38.0", False), ("2.0.0", False),
    ("1.40.0rc1", True), ("not-a-version", False), (None, False),
])
def test_floor_and_ceiling(installed: str | None, ok: bool) -> None:
    problems = _requirements.unmet(["opentelemetry-sdk<2,>=1.39"], lambda _name: installed)
    assert problems == ([] if ok else [("opentelemetry-sdk", installed, ">=1.39,<2")])


def test_extras_and_other_platforms_are_not_checked() -> None:
    requires = ['pytest>=8; extra == "dev"', 'tomli>=1; python_version < "3"']
    assert _requirements.unmet(requires, lambda _name: None) == []


def test_a_source_tree_without_metadata_checks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> list[str]:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "requires", missing)
    assert _requirements.declared() == []
    _requirements.check_installed()


# --- the floors tested by `make test-lowest` are the declared ones --------------------------


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lowest_constraints",
                                                  REPO / "scripts" / "lowest_constraints.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(text: str) -> dict[str, str]:
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    return dict(ln.split("==") for ln in lines)


def test_constraints_pin_every_declared_floor(capsys: pytest.CaptureFixture[str]) -> None:
    """Runtime and every extra (dev, demo): what `make test-lowest` installs."""
    assert _script().main([str(REPO / "pyproject.toml")]) == 0
    pins = _pins(capsys.readouterr().out)
    assert {"opentelemetry-sdk", "orjson", "pytest", "backtesting"} <= set(pins)
    declared = [Requirement(r) for r in [*RUNTIME, *EXTRAS]]
    assert set(pins) == {r.name.lower().replace("_", "-") for r in declared}
    for req in declared:
        assert pins[req.name.lower()] == _floor([str(req)], req.name)


@pytest.mark.parametrize(("requirement", "complaint"), [
    ("orjson", "needs exactly one '>=' floor"),
    ("orjson==3.12", "needs exactly one '>=' floor"),
    ("msgspec>=0.19", "msgspec: two floors, 0.18 and 0.19"),
])
def test_a_requirement_without_one_floor_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], requirement: str,
        complaint: str) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["msgspec>=0.18"]\n'
                         f'[project.optional-dependencies]\ndev = ["{requirement}"]\n')
    assert _script().main([str(pyproject)]) == 2
    assert complaint in capsys.readouterr().err


def test_instrumentation_floors_pair_with_the_sdk_floor() -> None:
    """opentelemetry-python-contrib 0.Nb0 is built against core 1.(N-21): 0.60b0 <-> 1.39."""
    core = _floor(RUNTIME, "opentelemetry-sdk")
    assert _floor(RUNTIME, "opentelemetry-api") == core
    assert _floor(RUNTIME, "opentelemetry-exporter-otlp") == core
    minor = int(core.split(".")[1])
    for extra in PROJECT["optional-dependencies"].values():
        for text in extra:
            if Requirement(text).name in ("opentelemetry-distro", "opentelemetry-instrumentation"):
                assert Requirement(text).specifier == f">=0.{minor + 21}b0", text


def test_make_test_lowest_installs_the_generated_constraints_then_runs_the_unit_suite() -> None:
    """`make -n -B` prints what the target runs, without running it."""
    proc = subprocess.run(["make", "-n", "-B", "test-lowest"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=True)
    lines = proc.stdout.splitlines()

    def index(*parts: str) -> int:
        return next(i for i, ln in enumerate(lines) if all(p in ln for p in parts))

    generate = index("scripts/lowest_constraints.py pyproject.toml",
                     "> .venv-lowest/constraints.txt")
    install = index(".venv-lowest/bin/python -m pip install", "-c .venv-lowest/constraints.txt",
                    "-e '.[dev,demo]'")
    test = index(".venv-lowest/bin/python -m pytest", "tests/unit")
    assert generate < install < test
