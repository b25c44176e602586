"""Read the records a report shows: health snapshots, heartbeats, events.

Every line is checked (see checks.py); bad lines are skipped and listed with file:line and
the reason. Nothing here raises on bad data: what is missing becomes a note on the page.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensemble_otel._time import parse_iso
from ensemble_otel.contract.registry import (
    EVENT,
    HEARTBEAT,
    RECORD_KINDS_BY_NAME,
    STRATEGY_ID_PATTERN,
    RecordKind,
)
from ensemble_otel.paths import RecordFile, dir_hint, record_files, scan
from ensemble_otel.readers import (
    HEARTBEAT_MAX_BYTES,
    line_batches,
    open_regular,
    read_limited,
    too_long,
)

from .checks import ContractVerdicts, contract_verdicts, parse_line

PERIODS: tuple[str, ...] = next(
    f.enum for f in RECORD_KINDS_BY_NAME["health_snapshot_1h"].fields if f.name == "period"
)
MAX_LISTED_BAD_LINES = 500  # all are counted; this many are listed on the page
MAX_LISTED_EVENTS = 50  # per strategy, the latest ones
PARTITION_SLACK_S = 86400.0  # read neighbouring partitions too: a file is skipped only if
# its whole span lies more than a day outside --from/--to


def snapshot_kind(period: str) -> RecordKind:
    if period not in PERIODS:
        raise ValueError(f"period: {period!r} is not one of {', '.join(PERIODS)}")
    return RECORD_KINDS_BY_NAME[f"health_snapshot_{period}"]


@dataclass(slots=True)
class FileStat:
    """One file read: its path relative to the root, its kind, lines and bad lines."""

    path: str
    kind: str
    lines: int = 0
    bad: int = 0


@dataclass(frozen=True, slots=True)
class BadLine:
    path: str
    line: int
    reason: str


@dataclass(slots=True)
class Validation:
    """What the files held: counts per file, and the bad lines (listed up to a cap)."""

    files: list[FileStat] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)
    bad_total: int = 0
    notes: list[str] = field(default_factory=list)  # file-level findings (lines kept)
    checked_with: str = ""
    validator_unavailable: str | None = None

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    def bad(self, stat: FileStat, line: int, reason: str) -> None:
        stat.bad += 1
        self.bad_total += 1
        if len(self.bad_lines) < MAX_LISTED_BAD_LINES:
            self.bad_lines.append(BadLine(stat.path, line, reason))


@dataclass(slots=True)
class StrategyData:
    """One strategy's records within the selection, oldest first."""

    strategy_id: str
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # bucket start, unix seconds
    heartbeat: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # the latest, oldest first
    event_count: int = 0
    event_names: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # what is missing, in words


@dataclass(slots=True)
class Dataset:
    root: Path
    period: str
    start: float | None
    end: float | None
    strategies: list[StrategyData]
    validation: Validation
    problems: list[str]  # report-wide: what is missing

    @property
    def records(self) -> int:
        return sum(len(s.snapshots) for s in self.strategies)


def _in_range(t: float, start: float | None, end: float | None) -> bool:
    return (start is None or t >= start) and (end is None or t <= end)


def _partition_wanted(rf: RecordFile, start: float | None, end: float | None) -> bool:
    span = rf.span()
    if span is None:
        return True
    lo, hi = span
    if start is not None and hi + PARTITION_SLACK_S <= start:
        return False
    return not (end is not None and lo - PARTITION_SLACK_S > end)


def _lines(path: Path, kind: RecordKind, validation: Validation, stat: FileStat
           ) -> Iterator[bytes | None]:
    """The lines of a record file, read as every reader does (a regular file, no link
    followed, a heartbeat up to 64 KiB, JSONL streamed); None for a line too long to read,
    which is listed as bad. A file that cannot be read is listed and gives nothing."""
    try:
        if not kind.path.endswith(".jsonl"):  # the heartbeat: one JSON document
            yield read_limited(path, HEARTBEAT_MAX_BYTES).strip()
            return
        fd = open_regular(path)
    except OSError as exc:
        validation.bad(stat, 0, f"cannot read the file: {exc.strerror or exc}")
        return
    number = 0
    with os.fdopen(fd, "rb") as fh:
        try:
            for batch in line_batches(fh.read):
                if batch.skipped:
                    number += 1
                    validation.bad(stat, number, too_long(batch.skipped))
                    yield None
                    continue
                lines = batch.data.split(b"\n")
                if lines[-1] == b"":
                    lines.pop()
                number += len(lines)
                yield from lines
        except OSError as exc:
            validation.bad(stat, number + 1, f"cannot read on: {exc.strerror or exc}")


def _read(
    root: Path, rf: RecordFile, kind: RecordKind, validation: Validation,
    verdicts: ContractVerdicts, expect: dict[str, str],
    buckets: dict[float, str] | None = None,
) -> list[tuple[float, dict[str, Any]]]:
    """Good records of one file with their time; bad lines go to `validation`.

    ``buckets`` (snapshots): bucket time -> where it was first seen; a later record of the
    same bucket is a bad line (the validator flags it too, unless the record breaks
    another rule first, such as a missing field, which the report tolerates)."""
    stat = FileStat(rf.path.relative_to(root).as_posix(), kind.name)
    validation.files.append(stat)
    for reason in verdicts.reasons(rf.path, 0):  # the file itself, e.g. its name
        validation.notes.append(f"{stat.path}: {reason}")
    out: list[tuple[float, dict[str, Any]]] = []
    lacking: Counter[str] = Counter()
    extra: Counter[str] = Counter()
    for number, line in enumerate(_lines(rf.path, kind, validation, stat), 1):
        stat.lines += 1
        if line is None:
            continue
        flagged = verdicts.reasons(rf.path, number)
        if flagged:
            validation.bad(stat, number, "; ".join(flagged))
            continue
        parsed = parse_line(kind, line)
        record, reason = parsed.record, parsed.reason
        if record is not None:
            reason = _mismatch(record, expect)
        if record is None or reason is not None:
            validation.bad(stat, number, reason or "unusable record")
            continue
        try:
            t = parse_iso(record["ts"])
        except (TypeError, ValueError):
            validation.bad(stat, number, f"ts: {record['ts']!r} is not an ISO-8601 date-time")
            continue
        if buckets is not None:
            first = buckets.setdefault(t, f"{stat.path}:{number}")
            if first != f"{stat.path}:{number}":
                validation.bad(stat, number, f"duplicate bucket: ts {record['ts']} is already "
                               f"at {first}")
                continue
        lacking.update(parsed.missing)
        extra.update(parsed.unknown)
        out.append((t, record))
    if lacking:
        validation.notes.append(f"{stat.path}: records without {_counted(lacking)}: charted "
                                "with the fields they have")
    if extra:
        validation.notes.append(f"{stat.path}: fields the contract does not know (a newer "
                                f"writer?): {_counted(extra)}")
    return out


def _counted(counter: Counter[str]) -> str:
    return ", ".join(f"{name} ({n})" for name, n in sorted(counter.items()))


def _mismatch(record: dict[str, Any], expect: dict[str, str]) -> str | None:
    """A field that contradicts the file's location (one absent is noted as missing)."""
    for name, wanted in expect.items():
        if name in record and record[name] != wanted:
            return f"{name}: {record.get(name)!r} does not match the file's {wanted!r}"
    return None


@dataclass(slots=True)
class _Plan:
    """The files to read for one strategy."""

    strategy_id: str
    snapshots: list[RecordFile]
    heartbeat: list[RecordFile]
    events: list[RecordFile]
    snapshot_files_exist: bool

    def all(self) -> list[RecordFile]:
        return [*self.snapshots, *self.heartbeat, *self.events]


def load(
    root: Path,
    *,
    period: str = "1h",
    strategies: list[str] | None = None,
    start: float | None = None,
    end: float | None = None,
) -> Dataset:
    """Read everything the report needs under `root`. Never raises on bad data."""
    kind = snapshot_kind(period)
    for sid in strategies or ():
        if not re.fullmatch(STRATEGY_ID_PATTERN, sid):
            raise ValueError(f"strategies: {sid!r} is not a strategy id "
                             f"(must match {STRATEGY_ID_PATTERN})")
    validation = Validation()
    problems: list[str] = []
    found: dict[str, list[RecordFile]] = {}
    exists = root.is_dir()
    if not exists:
        problems.append(f"the root directory {root} does not exist (set PAPER_TRADING_ROOT "
                        "or pass ROOT)")
    else:
        for k in (kind, HEARTBEAT, EVENT):
            files = scan(root, k)
            for rf in files.files:
                found.setdefault(rf.strategy_id, []).append(rf)
            validation.notes.extend(f"{path.relative_to(root).as_posix()}: {why}"
                                    for path, why in files.refused)
    ids = list(dict.fromkeys(strategies)) if strategies else sorted(found)
    if not ids and exists:
        problems.append(
            f"no records under {root}: looked for {dir_hint(kind)}<strategy>/, "
            f"{dir_hint(HEARTBEAT)}<strategy>.json and {dir_hint(EVENT)}"
            "<strategy>/"
        )
    if strategies and exists:
        for sid in ids:
            if sid not in found:
                problems.append(f"strategy {sid!r} has no files under {root} (found: "
                                f"{', '.join(sorted(found)) or 'none'})")
    plans = [_plan(root if exists else None, sid, kind, start, end) for sid in ids]
    verdicts = contract_verdicts([rf.path for plan in plans for rf in plan.all()], root)
    validation.checked_with = verdicts.source
    validation.validator_unavailable = verdicts.unavailable
    out = [_load_strategy(root, plan, kind, period, start, end, validation, verdicts)
           for plan in plans]
    if ids and not any(s.snapshots for s in out):
        problems.append(f"no {period} health snapshots to chart for "
                        f"{', '.join(ids)} in the selection")
    return Dataset(root, period, start, end, out, validation, problems)


def _plan(root: Path | None, sid: str, kind: RecordKind,
          start: float | None, end: float | None) -> _Plan:
    if root is None:
        return _Plan(sid, [], [], [], False)
    snaps = record_files(root, kind, sid)
    return _Plan(
        sid,
        [rf for rf in snaps if _partition_wanted(rf, start, end)],
        record_files(root, HEARTBEAT, sid),
        [rf for rf in record_files(root, EVENT, sid) if _partition_wanted(rf, start, end)],
        bool(snaps),
    )


def _load_strategy(
    root: Path, plan: _Plan, kind: RecordKind, period: str, start: float | None,
    end: float | None, validation: Validation, verdicts: ContractVerdicts,
) -> StrategyData:
    sid = plan.strategy_id
    sd = StrategyData(sid)
    rows: list[tuple[float, dict[str, Any]]] = []
    buckets: dict[float, str] = {}
    for rf in plan.snapshots:
        for t, rec in _read(root, rf, kind, validation, verdicts,
                            {"strategy_id": sid, "period": period}, buckets):
            if _in_range(t, start, end):
                rows.append((t, rec))
    rows.sort(key=lambda r: r[0])  # stable: same-time records keep file order
    sd.times = [t for t, _ in rows]
    sd.snapshots = [r for _, r in rows]
    where = f"{dir_hint(kind)}{sid}/"
    if not plan.snapshot_files_exist:
        sd.notes.append(f"no {period} health snapshot files ({where})")
    elif not sd.snapshots:
        sd.notes.append(f"no usable {period} health snapshots in the selection ({where})")

    if plan.heartbeat:
        hb = plan.heartbeat[0]
        beats = _read(root, hb, HEARTBEAT, validation, verdicts, {"strategy_id": sid})
        sd.heartbeat = beats[-1][1] if beats else None
        if sd.heartbeat is None:
            sd.notes.append(f"the heartbeat file {hb.path.relative_to(root).as_posix()} is "
                            "unusable (see the files read)")
    else:
        sd.notes.append(f"no heartbeat file ({dir_hint(HEARTBEAT)}{sid}.json)")

    for rf in plan.events:
        for t, rec in _read(root, rf, EVENT, validation, verdicts, {"strategy_id": sid}):
            if _in_range(t, start, end):
                sd.event_count += 1
                sd.event_names[rec["event"]] += 1
                sd.events.append(rec)
                if len(sd.events) > 2 * MAX_LISTED_EVENTS:
                    del sd.events[:MAX_LISTED_EVENTS]
    sd.events = sd.events[-MAX_LISTED_EVENTS:]
    return sd
