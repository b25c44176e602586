"""require_binary: a missing component skips locally and fails under CI's variable."""

from __future__ import annotations

from pathlib import Path

import pytest

SUPPORT_DIR = Path(__file__).resolve().parent

TEST = """
import sys
sys.path[:0] = [{support!r}, {tests!r}]  # collector_support, and the integration_gate it uses
from collector_support import require_binary

def test_needs_missing_tool():
    require_binary({target!r}, "install it with the frobnicate package")

def test_needs_present_tool():
    assert require_binary("sh", "apt-get install dash").endswith("/sh")
"""


@pytest.mark.parametrize("target", ["no-such-tool-ensemble", "/no/such/dir/otelcol-ensemble"])
@pytest.mark.parametrize(("required", "outcome"), [("1", "failed"), ("", "skipped")])
def test_missing_binary(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                        target: str, required: str, outcome: str) -> None:
    monkeypatch.setenv("ENSEMBLE_REQUIRE_INTEGRATION", required)
    pytester.makepyfile(TEST.format(support=str(SUPPORT_DIR), tests=str(SUPPORT_DIR.parent),
                                     target=target))
    result = pytester.runpytest_subprocess("-rfs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, **{outcome: 1})
    result.stdout.fnmatch_lines([f"*{target} not found: install it with the frobnicate package*"])
