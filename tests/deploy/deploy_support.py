"""Offline checks of deploy/: helpers shared by the tests in this folder.

A plain module (not a conftest) so its name cannot clash with the other test folders'
conftest modules; `require_binary` has the same contract as tests/integration/conftest.py's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def require_binary(name: str, how_to_get: str) -> str:
    """Path of an executable; a missing one fails under ENSEMBLE_REQUIRE_INTEGRATION=1.

    Without that variable a missing tool skips the test (a developer's machine may lack it;
    CI must not).
    """
    found = shutil.which(name)  # a path with a separator is checked as it is
    if found:
        return found
    message = f"{name} not found: {how_to_get}"
    if os.environ.get("ENSEMBLE_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_yaml_documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]
