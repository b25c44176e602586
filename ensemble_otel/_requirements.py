"""The installed dependencies are the versions ensemble-otel declares (pyproject.toml).

pip enforces the declared ranges at install time, but an environment can still end up with
an older OpenTelemetry SDK: ``pip install --no-deps``, a later ``pip install`` of another
package that pins an older SDK (pip only warns), a vendored copy. Such an SDK fails late and
far from the cause (a ``TypeError`` inside ``emit``). :func:`check_installed` runs at
``configure()`` and refuses it with one line naming the package, the installed and the
required version.

The ranges are read from this package's installed metadata (``Requires-Dist``, generated
from pyproject.toml), so pyproject.toml is the one place they are written. Run from a source
tree that was never installed, there is no metadata and nothing is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import metadata

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from ensemble_otel.errors import ConfigError

DISTRIBUTION = "ensemble-otel"


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def declared() -> list[str]:
    """ensemble-otel's ``Requires-Dist`` lines; empty when it is not installed."""
    try:
        return metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []


def _range(specifier: SpecifierSet) -> str:
    """``>=1.39,<2`` (floor first), the way pyproject.toml writes it."""
    return ",".join(sorted((str(s) for s in specifier), key=lambda s: not s.startswith(">")))


def _satisfies(version: str, specifier: SpecifierSet) -> bool:
    try:
        return specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def unmet(requires: Iterable[str],
          version: Callable[[str], str | None]) -> list[tuple[str, str | None, str]]:
    """``(name, installed or None, required range)`` for each runtime requirement not met.

    Requirements of extras (``extra == "dev"``) and those whose marker is false here are
    skipped: only what ``import ensemble_otel`` needs is checked.
    """
    found: list[tuple[str, str | None, str]] = []
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        installed = version(req.name)
        if installed is None or not _satisfies(installed, req.specifier):
            found.append((req.name, installed, _range(req.specifier)))
    return found


_met = False  # versions do not change in a running process: a pass is not repeated


def check_installed() -> None:
    """Raise :class:`ConfigError` naming the first unmet requirement (and any others)."""
    global _met
    if _met:
        return
    problems = unmet(declared(), installed_version)
    if not problems:
        _met = True
        return
    name, installed, wanted = problems[0]
    own = _shown(installed_version(DISTRIBUTION))
    rule = (f"ensemble-otel {own} requires {name}{wanted}, "
            f"{'not installed' if installed is None else f'installed {_shown(installed)}'}"
            f"; run: pip install '{name}{wanted}'")
    rule += "".join(f"; also {n}{w} (installed {_shown(i) if i else 'none'})"
                    for n, i, w in problems[1:])
    raise ConfigError(name, installed, rule)


def _shown(version: str | None) -> str:
    """A version as read from metadata, quoted when it holds anything but printable text."""
    return version if version is not None and version.isprintable() else repr(version)
