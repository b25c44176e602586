"""Every path under PAPER_TRADING_ROOT, from the contract registry's templates.

A template such as ``logs/1h/health_snapshot/{strategy_id}/{YYYY-MM-DD}.jsonl`` gives the
file a record belongs in (:func:`record_path`), the files present (:func:`scan`, which walks
the template level by level and never follows a symbolic link planted under the root), a
regex reading the kind, strategy and partition back from any path (:func:`location`), and
the time span a partition covers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from ensemble_otel._time import iso, parse_datetime
from ensemble_otel.contract.registry import (
    HEALTH_STATE_PATH,
    HEARTBEAT,
    RECORD_KINDS,
    REPORT_PATH,
    STRATEGY_LOCK_PATH,
    RecordKind,
)
from ensemble_otel.readers import file_type

PLACEHOLDER = re.compile(r"\{([^}]+)\}")
# placeholder -> (regex for the value, its length): a partition is the start of the ISO-8601
# UTC time (``_time.iso``) of the day it holds
PARTITION_FORMATS: dict[str, tuple[str, int]] = {
    "YYYY-MM-DD": (r"[0-9]{4}-[0-9]{2}-[0-9]{2}", 10),
    "YYYY-MM": (r"[0-9]{4}-[0-9]{2}", 7),
}
JOURNAL_SUFFIX = ".wal"


def partition_text(placeholder: str, unix: float) -> str:
    """The partition (``2024-03-01`` for ``YYYY-MM-DD``, ``2024-03`` for ``YYYY-MM``) that
    holds UTC time ``unix``."""
    return iso(unix // 86400 * 86400)[:PARTITION_FORMATS[placeholder][1]]


def fill(template: str, strategy_id: str, when: datetime | None = None) -> str:
    """A template with its placeholders filled (``when`` for the date partitions)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "strategy_id":
            return strategy_id
        if when is None:
            raise ValueError(f"{template}: {{{name}}} needs a time")
        return partition_text(name, when.timestamp())

    return PLACEHOLDER.sub(sub, template)


def record_path(root: Path, kind: RecordKind, strategy_id: str,
                when: datetime | None = None) -> Path:
    """The file a record of ``kind`` for ``strategy_id`` at ``when`` (UTC) belongs in."""
    return Path(root) / fill(kind.path, strategy_id, when)


@cache
def _file_template(template: str) -> tuple[str, str, str]:
    """The last segment of a partitioned template: (text before, placeholder, text after)."""
    last = template.rsplit("/", 1)[-1]
    m = PLACEHOLDER.search(last)
    if m is None or m.group(1) not in PARTITION_FORMATS or "{strategy_id}" not in (
            template.rsplit("/", 2)[-2]):
        raise ValueError(f"{template}: not a strategy directory of partition files")
    return last[:m.start()], m.group(1), last[m.end():]


def partition_file(kind: RecordKind, unix: float) -> str:
    """The name of ``kind``'s file holding UTC time ``unix`` in the strategy's directory
    (:func:`strategy_path`), e.g. ``2024-03-01.jsonl``: :func:`record_path` of that time is
    that directory / this name. Cheap (no regex, no strftime): a bucket close calls it."""
    before, placeholder, after = _file_template(kind.path)
    return before + partition_text(placeholder, unix) + after


def heartbeat_path(root: Path, strategy_id: str) -> Path:
    return record_path(root, HEARTBEAT, strategy_id)


def state_path(root: Path, strategy_id: str) -> Path:
    """The health state file (its journal is this path + ``.wal``)."""
    return Path(root) / fill(HEALTH_STATE_PATH, strategy_id)


def journal_path(state: Path) -> Path:
    return state.with_name(state.name + JOURNAL_SUFFIX)


def lock_path(root: Path, strategy_id: str) -> Path:
    return Path(root) / fill(STRATEGY_LOCK_PATH, strategy_id)


def report_path(root: Path) -> Path:
    return Path(root) / REPORT_PATH


def strategy_entry(template: str | RecordKind, strategy_id: str) -> tuple[tuple[str, ...], str]:
    """Where everything of one strategy for ``template`` lives: the directories under the
    root, and the entry in the last of them that is the strategy's (its directory of
    partition files, or its one file), e.g. ``(("logs", "events"), "s1")`` or
    ``(("logs", "heartbeat"), "s1.json")``."""
    text = template.path if isinstance(template, RecordKind) else template
    segments = text.split("/")
    at = next(i for i, segment in enumerate(segments) if "{strategy_id}" in segment)
    return tuple(segments[:at]), fill(segments[at], strategy_id)


def strategy_path(root: Path, template: str | RecordKind, strategy_id: str) -> Path:
    """The strategy's entry for ``template`` under ``root`` (see :func:`strategy_entry`)."""
    directory, name = strategy_entry(template, strategy_id)
    return Path(root).joinpath(*directory, name)


def strategy_dir_entries(strategy_id: str) -> list[tuple[tuple[str, ...], str, bool]]:
    """:func:`strategy_entry` of every record kind and of the health state, with whether the
    entry is a file (True) or the strategy's directory of partition files (False)."""
    out = []
    for template in (*(k.path for k in RECORD_KINDS), HEALTH_STATE_PATH):
        directory, name = strategy_entry(template, strategy_id)
        out.append((directory, name, len(directory) == template.count("/")))
    return out


def dir_hint(template: str | RecordKind) -> str:
    """The directory a template's files live in, for messages (``logs/1h/health_snapshot/``)."""
    text = template.path if isinstance(template, RecordKind) else template
    return text.split("{", 1)[0]


# --- reading paths back --------------------------------------------------------------------


def _segment_regex(segment: str, strategy_id: str | None = None) -> str:
    out, pos = [], 0
    for m in PLACEHOLDER.finditer(segment):
        out.append(re.escape(segment[pos:m.start()]))
        name = m.group(1)
        if name == "strategy_id":
            out.append(r"(?P<strategy_id>[^/]+)" if strategy_id is None
                       else f"(?P<strategy_id>{re.escape(strategy_id)})")
        else:
            out.append(f"(?P<partition>{PARTITION_FORMATS.get(name, (r'[^/]+', ''))[0]})")
        pos = m.end()
    out.append(re.escape(segment[pos:]))
    return "".join(out)


@cache
def path_regex(template: str) -> re.Pattern[str]:
    """Matches a path relative to the root (whole); groups strategy_id and partition."""
    return re.compile(_segment_regex(template))


@cache
def _location_regex(template: str) -> re.Pattern[str]:
    return re.compile(r"(?:^|/)" + _segment_regex(template) + r"\Z")


@dataclass(frozen=True, slots=True)
class Location:
    """What a path says about its records: the kind, strategy, partition and where the
    template's part of the path begins (``relative``, e.g. ``logs/heartbeat/s.json``)."""

    kind: RecordKind
    strategy_id: str
    partition: str | None
    relative: str


def location(path: str | os.PathLike[str]) -> Location | None:
    """The record kind a path is the file of (by its last segments), or None."""
    posix = os.path.abspath(os.fspath(path)).replace(os.sep, "/")
    for kind in RECORD_KINDS:
        m = _location_regex(kind.path).search(posix)
        if m is not None:
            groups = m.groupdict()
            return Location(kind, groups["strategy_id"], groups.get("partition"),
                            posix[m.start():].lstrip("/"))
    return None


@dataclass(frozen=True, slots=True)
class RecordFile:
    """One file of a record kind: its path, strategy id and partition (if any)."""

    path: Path
    strategy_id: str
    partition: str | None  # e.g. "2024-03-01" or "2024-03"; None for one-file kinds

    def span(self) -> tuple[float, float] | None:
        """[start, end) in unix seconds the partition covers, or None if unknown."""
        if self.partition is None:
            return None
        for regex, length in PARTITION_FORMATS.values():
            if re.fullmatch(regex, self.partition):
                monthly = length == 7
                try:
                    start = parse_datetime(self.partition + ("-01" if monthly else ""))
                except ValueError:  # not a calendar date: read the file, let checks decide
                    return None
                if monthly:
                    nxt = (start + timedelta(days=32)).replace(day=1)
                else:
                    nxt = start + timedelta(days=1)
                return start.timestamp(), nxt.timestamp()
        return None


@dataclass(slots=True)
class Scan:
    """Files found for a template, and what was refused on the way (path, reason)."""

    files: list[RecordFile] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)


def scan(root: Path, template: str | RecordKind, strategy_id: str | None = None) -> Scan:
    """Regular files matching ``template`` under ``root``, sorted by strategy and partition.

    The walk follows the template one directory level at a time and never follows a
    symbolic link below ``root``: a link, FIFO, device or socket where a record file or
    directory would be is listed in ``refused`` with the reason. Side files (``.torn``,
    temp files) do not match and are not listed.
    """
    text = template.path if isinstance(template, RecordKind) else template
    segments = text.split("/")
    result = Scan()
    level: list[tuple[Path, dict[str, str]]] = [(Path(root), {})]
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        regex = re.compile(_segment_regex(segment, strategy_id))
        found: list[tuple[Path, dict[str, str]]] = []
        for directory, groups in level:
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                m = regex.fullmatch(entry.name)
                if m is None:
                    continue
                path = directory / entry.name
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except OSError:
                    continue
                ok = (entry.is_file(follow_symlinks=False) if last
                      else entry.is_dir(follow_symlinks=False))
                if not ok:
                    if last or entry.is_symlink():
                        result.refused.append((path, f"not read: it is {file_type(mode)}"))
                    continue
                found.append((path, {**groups, **{k: v for k, v in m.groupdict().items()
                                                  if v is not None}}))
        level = found
    for path, groups in level:
        result.files.append(RecordFile(path, groups.get("strategy_id", ""),
                                       groups.get("partition")))
    result.files.sort(key=lambda f: (f.strategy_id, f.partition or "", f.path.name))
    return result


def record_files(root: Path, kind: RecordKind, strategy_id: str | None = None
                 ) -> list[RecordFile]:
    """Regular files of ``kind`` under ``root`` (one strategy or all); see :func:`scan`."""
    return scan(root, kind, strategy_id).files


def strategies(root: Path) -> list[str]:
    """Strategy ids with a heartbeat, a record file or a health state under ``root``."""
    found: set[str] = set()
    for template in (*(k.path for k in RECORD_KINDS), HEALTH_STATE_PATH):
        found.update(f.strategy_id for f in scan(root, template).files)
    return sorted(found)
