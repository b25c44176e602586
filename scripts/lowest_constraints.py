"""Print a pip constraints file that pins every direct dependency to its declared floor.

    python scripts/lowest_constraints.py [--extra GROUP ...] [pyproject.toml] > constraints.txt

Reads ``[project] dependencies`` and the optional-dependency groups (default: all of them)
from pyproject.toml, so the floors tested by ``make test-lowest`` are the floors we promise.
Every requirement must carry a ``>=`` floor; one without, or one named twice with different
floors, is an error (exit 2), so a floor cannot go untested. Requirements whose environment
marker is false here are left out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

HEADER = "# Generated from pyproject.toml by scripts/lowest_constraints.py: every floor, pinned.\n"


def floor(req: Requirement) -> str | None:
    """The version of the requirement's ``>=`` specifier, or None."""
    floors = [spec.version for spec in req.specifier if spec.operator == ">="]
    return floors[0] if len(floors) == 1 else None


def constraints(requirements: Iterable[str]) -> dict[str, str]:
    """``{name: floor}`` for every requirement whose marker holds; ValueError names the bad."""
    pins: dict[str, str] = {}
    problems: list[str] = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        version = floor(req)
        if version is None:
            problems.append(f"{text!r}: needs exactly one '>=' floor")
        elif pins.setdefault(name, version) != version:
            problems.append(f"{name}: two floors, {pins[name]} and {version}")
    if problems:
        raise ValueError("; ".join(problems))
    return pins


def project_requirements(pyproject: Path, extras: Iterable[str] | None = None) -> list[str]:
    """The runtime requirements and those of ``extras`` (None: every group)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    found: list[str] = list(project.get("dependencies", []))
    groups = project.get("optional-dependencies", {})
    for extra in groups if extras is None else extras:
        if extra not in groups:
            raise ValueError(f"no optional-dependencies group {extra!r} in {pyproject}")
        found.extend(groups[extra])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", nargs="?", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--extra", action="append", default=None,
                        help="optional-dependency group to include (repeatable; default: all)")
    args = parser.parse_args(argv)
    try:
        pins = constraints(project_requirements(args.pyproject, args.extra))
    except (ValueError, OSError, KeyError) as exc:
        print(f"lowest_constraints: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(HEADER + "".join(f"{name}=={v}\n" for name, v in sorted(pins.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
