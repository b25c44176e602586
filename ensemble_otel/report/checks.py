"""Line checks for the report: is a record usable, and if not, why.

The report reads files that a bot may be writing right now, so it is permissive: extra
fields are fine, and a bad line is skipped and counted, never fatal. The rules come from
the contract registry (type, required, nullable, enum, minimum, pattern, date-time).

Seam: when `ensemble_otel.validate` offers a record-level check, `check_record` defers to
it (see `_contract_validator`) so the report and `ensemble-otel validate` agree; this
module's own check is the fallback and stays small.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import orjson

from ensemble_otel.contract.registry import UTC_TIMESTAMP_PATTERN, Field, RecordKind

Validator = Callable[[RecordKind, dict[str, Any]], list[str]]

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


@cache
def _contract_validator() -> Validator | None:
    """`ensemble_otel.validate.check_record(kind, record) -> list[str]` when it exists."""
    try:
        module = importlib.import_module("ensemble_otel.validate")
    except ImportError:
        return None
    func = getattr(module, "check_record", None)
    return func if callable(func) else None


def check_record(kind: RecordKind, record: dict[str, Any]) -> list[str]:
    """Reasons the record is not usable (contract validator if present, else our own)."""
    validator = _contract_validator() or permissive_check
    return list(validator(kind, record))


def parse_line(kind: RecordKind, line: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """One JSONL line -> (record, None) or (None, reason)."""
    if not line.strip():
        return None, "empty line"
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc})"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {type(value).__name__}"
    reasons = check_record(kind, value)
    if reasons:
        return None, "; ".join(reasons)
    return value, None
