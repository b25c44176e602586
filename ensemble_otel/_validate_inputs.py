"""What ``validate`` reads: the files a list of paths names, each with what its location
under a root says about its records.

Only regular files are read; a directory walk never follows a symbolic link (one found is
reported, not read); standard input (``-``) is the one stream taken.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ensemble_otel import _validate_rules as rules
from ensemble_otel.contract.registry import RECORD_KINDS_BY_NAME
from ensemble_otel.paths import location
from ensemble_otel.readers import RefusedFile, open_regular

STDIN = "-"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule. ``line`` is 0 for a problem with the file itself."""

    file: str
    line: int
    rule: str
    message: str
    field: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Source:
    """One input: a file (or stdin) and what its location says about its records."""

    name: str  # as shown in messages
    path: str | None  # None: standard input
    size: int
    expect: rules.Expect
    document: bool = False  # a whole-file JSON document (the heartbeat), not JSONL
    follow: bool = False  # named on the command line: a symbolic link there is followed


# --- finding inputs ------------------------------------------------------------------------


def expect_for(path: str) -> tuple[rules.Expect, Violation | None]:
    """What the location of ``path`` says about its records (and a bad file-name date)."""
    where = location(path)
    if where is None:
        return rules.NO_EXPECT, None
    kind, date = where.kind, where.partition
    directory, _, file_name = where.relative.rpartition("/")
    expect = rules.Expect(kind.name, where.strategy_id, date, directory + "/", file_name)
    if date is not None and not rules.valid_date(date if len(date) == 10 else date + "-01"):
        bad = Violation(path, 0, "file-date", f"file name: {date} is not a calendar date")
        return rules.Expect(kind.name, where.strategy_id), bad
    return expect, None


def _is_document(path: str, expect: rules.Expect) -> bool:
    if expect.kind is not None:
        return not RECORD_KINDS_BY_NAME[expect.kind].path.endswith(".jsonl")
    return path.endswith(".json")


def _wanted(path: str) -> bool:
    """Inside a directory: every ``*.jsonl``, and ``*.json`` at a record kind's location."""
    if path.endswith(".jsonl"):
        return True
    return path.endswith(".json") and expect_for(path)[0].kind is not None


def discover(paths: Sequence[str]) -> tuple[list[tuple[str, bool]], list[Violation]]:
    """Files to read in a stable order, each with whether it was named (not found by a
    directory walk), and the paths that cannot be read. A walk never follows a symbolic
    link: one found where a record file or directory may be is refused."""
    files: list[tuple[str, bool]] = []
    errors: list[Violation] = []
    for path in paths:
        if path == STDIN:
            files.append((STDIN, True))
        elif os.path.isdir(path):
            for top, dirs, names in os.walk(path, onerror=_walk_error(errors, path)):
                dirs.sort()
                for name in [d for d in dirs if os.path.islink(os.path.join(top, d))]:
                    dirs.remove(name)
                    errors.append(_read_error(os.path.join(top, name), None))
                files.extend((os.path.join(top, n), False) for n in sorted(names)
                             if _wanted(os.path.join(top, n)))
        elif os.path.lexists(path):
            files.append((path, True))
        else:
            errors.append(Violation(path, 0, "read-error",
                                    "cannot read: no such file or directory"))
    return files, errors


def _walk_error(errors: list[Violation], root: str) -> Callable[[OSError], None]:
    def record(exc: OSError) -> None:
        errors.append(_read_error(exc.filename or root, exc))
    return record


def _read_error(path: str, exc: OSError | None) -> Violation:
    reason = "" if exc is None else (exc.strerror or str(exc))
    try:
        if os.path.islink(path):
            target = os.readlink(path)
            reason = (f"broken symbolic link to {target}" if not os.path.exists(path)
                      else f"symbolic link to {target} (not followed)")
    except OSError:
        pass
    return Violation(path, 0, "read-error", f"cannot read: {reason}")


def open_sources(files: Iterable[tuple[str, bool]]
                 ) -> tuple[list[Source], list[Violation]]:
    """Sources (stat'ed, location known) and the files that cannot be read.

    Only regular files are read: a FIFO, device or socket is refused before it is opened
    for good (it could block or never end), a symbolic link found by a walk is not followed;
    standard input (``-``) is the one stream taken, read as it comes.
    """
    sources: list[Source] = []
    errors: list[Violation] = []
    for path, named in files:
        if path == STDIN:
            sources.append(Source("<stdin>", None, 0, rules.NO_EXPECT))
            continue
        try:
            fd = open_regular(path, follow=named)
            try:
                size = os.fstat(fd).st_size
                os.read(fd, 1)  # an unreadable file fails here at the latest
            finally:
                os.close(fd)
        except RefusedFile as exc:
            violation = (_read_error(path, None) if os.path.islink(path) and not named
                         else Violation(path, 0, "read-error", f"cannot read: {exc.reason}"))
            errors.append(violation)
            continue
        except OSError as exc:
            errors.append(_read_error(path, exc))
            continue
        expect, bad = expect_for(path)
        if bad is not None:
            errors.append(bad)
        sources.append(Source(path, path, size, expect, _is_document(path, expect), named))
    return sources, errors
