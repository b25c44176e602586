"""Line checks for the report: is a record usable, and if not, why.

The report reads files that a bot may be writing right now, so it is permissive: extra
fields are fine, and a bad line is skipped and counted, never fatal. The rules come from
the contract registry (type, required, nullable, enum, minimum, pattern, date-time).

Seam: `contract_verdicts` asks `ensemble_otel.validate` (the `ensemble-otel validate
--strict` engine) about the files to read, so the report and the validator agree on
which lines are bad; `permissive_check` is the fallback when that module is missing or
fails, and also guards what the report needs to draw (fields present, right types).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from ensemble_otel.contract.registry import UTC_TIMESTAMP_PATTERN, Field, RecordKind

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
}


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _field_problem(field: Field, value: Any) -> str | None:
    if value is None:
        return None if field.nullable else f"{field.name}: must not be null"
    wanted = _JSON_TYPES[field.type]
    if isinstance(value, bool) and field.type != "boolean":
        return f"{field.name}: expected {field.type}, got boolean"
    if not isinstance(value, wanted):
        return f"{field.name}: expected {field.type}, got {type(value).__name__}"
    if field.enum and value not in field.enum:
        return f"{field.name}: {value!r} is not one of {', '.join(field.enum)}"
    if field.minimum is not None and value < field.minimum:
        return f"{field.name}: {value!r} is below the minimum {field.minimum:g}"
    if field.format == "date-time" and not _regex(UTC_TIMESTAMP_PATTERN).match(value):
        return f"{field.name}: {value!r} is not an ISO-8601 UTC date-time"
    if field.pattern and not _regex(field.pattern).match(value):
        return f"{field.name}: {value!r} does not match {field.pattern}"
    return None


# What a record of each kind cannot be drawn without; any other field may be missing (an
# older or partial record): it is charted with what it has and the page's notes say so.
ESSENTIAL: dict[str, tuple[str, ...]] = {
    "heartbeat": ("ts", "unix", "strategy_id"),
    "event": ("ts", "event", "strategy_id"),
}
ESSENTIAL_DEFAULT = ("ts", "strategy_id")
TOLERATED_RULES = ("missing", "unknown-field")  # validator rules that become notes


def permissive_check(kind: RecordKind, record: dict[str, Any]) -> list[str]:
    """Reasons `record` breaks `kind`'s contract; empty when usable. Extra fields pass."""
    reasons: list[str] = []
    for field in kind.fields:
        if field.name not in record:
            if field.required:
                reasons.append(f"{field.name}: required field is missing")
            continue
        problem = _field_problem(field, record[field.name])
        if problem:
            reasons.append(problem)
    return reasons


def missing_fields(kind: RecordKind, record: dict[str, Any]) -> list[str]:
    """Required fields of `kind` the record lacks."""
    return [f.name for f in kind.fields if f.required and f.name not in record]


def unknown_fields(kind: RecordKind, record: dict[str, Any]) -> list[str]:
    """Fields the contract does not know (a newer writer's), for kinds without extras."""
    if kind.additional_fields:
        return []
    known = set(kind.field_names())
    return [name for name in record if name not in known]


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


def parse_line(kind: RecordKind, line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """One JSONL line -> (record, None) or (None, reason). A record missing a field other
    than the few it cannot be drawn without is usable (see `missing_fields`)."""
    if not line.strip():
        return None, "empty line"
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc})"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {type(value).__name__}"
    essential = ESSENTIAL.get(kind.name, ESSENTIAL_DEFAULT)
    reasons = [r for r in permissive_check(kind, value)
               if not r.endswith(": required field is missing")
               or r.split(":", 1)[0] in essential]
    if reasons:
        return None, "; ".join(reasons)
    return value, None
