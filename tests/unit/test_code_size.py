"""The size guide, enforced: no module in ensemble_otel/ over 500 lines, no class over 300,
no function (or method) over 80. Every module is walked; nothing is exempt."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ensemble_otel

PACKAGE = Path(ensemble_otel.__file__).resolve().parent
MODULE_MAX = 500
CLASS_MAX = 300
FUNCTION_MAX = 80
MODULES = sorted(PACKAGE.rglob("*.py"))


def oversized(path: Path, base: Path = PACKAGE.parent) -> list[str]:
    """What in ``path`` breaks the size guide, one line each (empty: nothing)."""
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(base).as_posix()
    found: list[str] = []
    lines = len(text.splitlines())
    if lines > MODULE_MAX:
        found.append(f"{name}: module of {lines} lines (max {MODULE_MAX})")
    for node in ast.walk(ast.parse(text, filename=name)):
        if isinstance(node, ast.ClassDef):
            limit, what = CLASS_MAX, "class"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            limit, what = FUNCTION_MAX, "function"
        else:
            continue
        size = (node.end_lineno or node.lineno) - node.lineno + 1
        if size > limit:
            found.append(f"{name}:{node.lineno}: {what} {node.name} of {size} lines "
                         f"(max {limit})")
    return found


def test_the_package_has_modules() -> None:
    assert len(MODULES) > 20  # the walk found the package, not an empty directory


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_module_within_size_guide(path: Path) -> None:
    found = oversized(path)
    assert not found, "over the size guide:\n" + "\n".join(found)


def test_the_checker_finds_each_kind_of_excess(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_MAX))
    method = f"    def big(self) -> None:\n{body.replace('    x', '        x')}\n"
    filler = "\n".join(f"    y{i} = {i}" for i in range(CLASS_MAX))
    text = (f"def f() -> None:\n{body}\n\n"
            f"class C:\n{method}{filler}\n"
            + "\n" * MODULE_MAX)
    probe = tmp_path / "probe.py"
    probe.write_text(text)
    found = oversized(probe, tmp_path)
    assert sorted(line.split(": ", 1)[1].split(" of ")[0] for line in found) == [
        "class C", "function big", "function f", "module"]
