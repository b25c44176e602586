"""Shared unit-test fixtures: a clean environment and a root under tmp_path.

Helpers that tests import live in ``unit_support.py`` (conftest modules are not importable
reliably: several directories have one).

Every unit test runs with the ``ENSEMBLE_*``, ``OTEL_*`` and strategy variables removed,
so a developer's shell cannot change a result, and with any telemetry a test left
configured shut down afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ensemble_otel.testing import Capture, capture

_OWN_VARS = (
    "STRATEGY_ID",
    "SCHEMA_VERSION",
    "PAPER_TRADING_ROOT",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ENSEMBLE_*/OTEL_* variables from the shell; no telemetry left configured."""
    for name in list(os.environ):
        if name.startswith(("ENSEMBLE_", "OTEL_")) or name in _OWN_VARS:
            monkeypatch.delenv(name)
    yield
    import ensemble_otel

    if ensemble_otel.get_telemetry() is not None:
        ensemble_otel.shutdown()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A PAPER_TRADING_ROOT that does not exist yet."""
    return tmp_path / "root"


@pytest.fixture
def in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test with the working directory in tmp_path (the default root is relative)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cap(root: Path) -> Iterator[Capture]:
    """ensemble-otel in memory for strategy ``s1``, files under ``root``."""
    with capture(root=root, strategy_id="s1") as c:
        yield c
