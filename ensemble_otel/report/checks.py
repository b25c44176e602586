"""Line checks for the report: is a record usable, and if not, why.

The report reads files that a bot may be writing right now, so it is permissive: extra
fields are fine, a missing field is a note, and a bad line is skipped and counted, never
fatal. A field is judged by the validator's one field checker
(``ensemble_otel._validate_fields.check_fields``), in the validator's words.

Seam: `contract_verdicts` asks `ensemble_otel.validate` (the `ensemble-otel validate
--strict` engine) about the files to read, so the report and the validator agree on
which lines are bad; `permissive_check` is the fallback when that module is missing or
fails, and also guards what the report needs to draw (fields present, right types).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import orjson

from ensemble_otel._validate_fields import check_fields
from ensemble_otel.contract.registry import RecordKind

# What a record of each kind cannot be drawn without; any other field may be missing (an
# older or partial record): it is charted with what it has and the page's notes say so.
ESSENTIAL: dict[str, tuple[str, ...]] = {
    "heartbeat": ("ts", "unix", "strategy_id"),
    "event": ("ts", "event", "strategy_id"),
}
ESSENTIAL_DEFAULT = ("ts", "strategy_id")
TOLERATED_RULES = ("missing", "unknown-field")  # validator rules that become notes


def permissive_check(kind: RecordKind, record: dict[str, Any]) -> list[str]:
    """Reasons `record` breaks `kind`'s contract; empty when usable. Extra fields pass.
    The rules and their words are the validator's (:func:`check_fields`)."""
    return [p.message for p in check_fields(kind, record).bad()]


@dataclass(slots=True)
class ContractVerdicts:
    """What `ensemble-otel validate --strict` says about a set of files, line by line."""

    by_line: dict[tuple[str, int], list[str]] = dc_field(default_factory=dict)
    source: str = "the report's own permissive rules"
    unavailable: str | None = None  # why the contract validator was not used

    def reasons(self, path: Path, line: int) -> list[str]:
        return self.by_line.get((str(path), line), [])


def contract_verdicts(paths: Sequence[Path], root: Path | None = None) -> ContractVerdicts:
    """Run the contract validator (`ensemble_otel.validate.validate`, strict) over `paths`.

    This is the seam between the report and `ensemble-otel validate`: when the validator
    is importable, the report's bad lines are exactly the lines it flags (record rules,
    location, duplicate buckets, one schema_version per strategy). When it is missing or
    fails, the verdicts are empty and `parse_line`'s permissive check decides alone.
    """
    try:
        from ensemble_otel.validate import validate
    except ImportError as exc:
        return ContractVerdicts(unavailable=f"ensemble_otel.validate is not importable ({exc})")
    if not paths:
        return ContractVerdicts(source="ensemble-otel validate --strict")
    try:
        report = validate([str(p) for p in paths], strict=True, cap=0, workers=1,
                          follow=False)
    except Exception as exc:  # a report must still be written; say why below the table
        return ContractVerdicts(unavailable=f"ensemble_otel.validate failed: {exc!r}")
    verdicts = ContractVerdicts(source="ensemble-otel validate --strict")
    prefix = f"{root}/" if root is not None else None
    for v in report.violations:
        if v.rule in TOLERATED_RULES:  # a missing or newer field: a note, not a hole
            continue
        message = v.message.replace(prefix, "") if prefix else v.message  # paths as listed
        # A change of schema_version is worth a note, not a hole in the charts: the record
        # itself is valid, so it stays drawn and the file gets a note.
        line = 0 if v.rule == "schema-version" else v.line
        verdicts.by_line.setdefault((v.file, line), []).append(message)
    return verdicts


@dataclass(frozen=True, slots=True)
class Line:
    """One JSONL line read: a usable ``record`` (with what it lacks and what the contract
    does not know), or ``reason`` why not."""

    record: dict[str, Any] | None
    reason: str | None = None
    missing: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


def parse_line(kind: RecordKind, line: bytes) -> Line:
    """One JSONL line, checked by the validator's field checker (:func:`check_fields`):
    a record missing a field other than the few it cannot be drawn without is usable, and
    says what it lacks; a field present that breaks its rule makes the line bad."""
    if not line.strip():
        return Line(None, "empty line")
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Line(None, f"not valid JSON ({exc})")
    if not isinstance(value, dict):
        return Line(None, f"expected a JSON object, got {type(value).__name__}")
    found = check_fields(kind, value)
    reasons = found.bad(ESSENTIAL.get(kind.name, ESSENTIAL_DEFAULT))
    if reasons:
        return Line(None, "; ".join(p.message for p in reasons))
    return Line(value, None, found.missing, found.unknown)
