"""The one rule for a missing component (collector binary, prometheus, chromium, promtool,
actionlint, a tmpfs mount): skip on a developer's machine, fail under
``ENSEMBLE_REQUIRE_INTEGRATION=1`` (CI), so CI never passes by skipping.

Importable from every test folder (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest


def integration_required() -> bool:
    """True when ENSEMBLE_REQUIRE_INTEGRATION=1: a missing component then fails, never skips."""
    return os.environ.get("ENSEMBLE_REQUIRE_INTEGRATION", "").strip() == "1"


def missing(reason: str) -> NoReturn:
    """A component the test needs is missing: fail in CI, skip elsewhere, naming ``reason``."""
    if integration_required():
        pytest.fail(f"{reason} (required: ENSEMBLE_REQUIRE_INTEGRATION=1)", pytrace=False)
    pytest.skip(reason)


def require_binary(path_or_name: str | Path, how_to_get: str) -> str:
    """The absolute path of an executable, given as a path or a name looked up on PATH.

    When it is missing: :func:`missing` with ``how_to_get`` in the reason.
    """
    text = str(path_or_name)
    found: str | None
    if os.sep in text:
        path = Path(text)
        found = str(path.resolve()) if path.is_file() and os.access(path, os.X_OK) else None
    else:
        found = shutil.which(text)
    if found is None:
        missing(f"{text} not found: {how_to_get}")
    return found
