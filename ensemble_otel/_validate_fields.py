"""The one field checker: the contract's rules for one field's value (type, null, enum,
minimum, pattern, ISO-8601 UTC date-time on a real calendar date), and for a whole record's
fields (which break a rule, which are missing, which the contract does not know).

The validator (``--strict`` and permissive), the report, the health state loader and any
reader of saved records use these functions, so a field is judged the same way everywhere.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from ensemble_otel._time import record_ts_error
from ensemble_otel.contract.registry import Field, RecordKind
from ensemble_otel.contract.schemas import field_enum

META_FIELDS = ("strategy_id", "schema_version")
_EXCERPT = 60


@dataclass(frozen=True, slots=True)
class Problem:
    """One rule a line breaks. ``field`` is None for line-level problems."""

    rule: str
    message: str
    field: str | None = None


def python_pattern(pattern: str) -> str:
    """A JSON Schema (ECMA-262) pattern for Python's ``re.search``.

    ``$`` in Python also matches before a final newline; ``\\Z`` does not.
    """
    if pattern.endswith("$") and not pattern.endswith(r"\$"):
        return pattern[:-1] + r"\Z"
    return pattern


@cache
def compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(python_pattern(pattern))


def excerpt(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_EXPECTED = {
    "string": "a non-empty string",
    "integer": "an integer",
    "number": "a finite number",
    "boolean": "true or false",
    "object": "an object",
}
_TYPE_OK: dict[str, tuple[str, ...]] = {
    "string": ("string",),
    "integer": ("integer",),
    "number": ("integer", "number"),
    "boolean": ("boolean",),
    "object": ("object",),
}


def check_field(kind: RecordKind | None, field: Field, value: Any) -> Problem | None:
    """The first rule ``value`` breaks for ``field`` of ``kind``, or None. ``kind`` None:
    a field of no record kind (the health state's), its own ``enum`` only."""
    name = field.name
    expected = _EXPECTED[field.type] + (" or null" if field.nullable else "")
    if value is None:
        if field.nullable:
            return None
        return Problem("type", f"{name}: must be {expected} (got null)", name)
    got = type_name(value)
    if got not in _TYPE_OK[field.type]:
        return Problem("type", f"{name}: must be {expected} (got {got} {excerpt(value)})", name)
    if isinstance(value, float) and not math.isfinite(value):
        return Problem("type", f"{name}: must be a finite number (got {value})", name)
    enum = field.enum if kind is None else field_enum(kind, field)
    if enum:
        if value in enum:
            return None
        return Problem("enum", f"{name}: must be one of {', '.join(enum)} "
                               f"(got {excerpt(value)})", name)
    if field.type == "string":
        if value == "":
            return Problem("empty", f'{name}: must be a non-empty string (got "")', name)
        if field.format == "date-time":
            return check_timestamp(name, value)
        if field.pattern and not compiled(field.pattern).search(value):
            return Problem("pattern", f"{name}: must match {field.pattern} "
                                      f"(got {excerpt(value)})", name)
    if field.minimum is not None and value < field.minimum:
        bound = int(field.minimum) if float(field.minimum).is_integer() else field.minimum
        return Problem("minimum", f"{name}: must be >= {bound} (got {excerpt(value)})", name)
    return None


def check_timestamp(name: str, value: str) -> Problem | None:
    why = record_ts_error(value)
    if why == "form":
        return Problem("timestamp", f"{name}: must be ISO-8601 UTC, YYYY-MM-DDTHH:MM:SS[.f] "
                       f"ending in Z or +00:00 (got {excerpt(value)})", name)
    if why == "date":
        return Problem("timestamp", f"{name}: {value[:10]} is not a calendar date", name)
    return None


def check_meta(obj: dict[str, Any]) -> list[Problem]:
    """The permissive rules: strategy_id and schema_version are non-empty strings."""
    problems = []
    for name in META_FIELDS:
        if name not in obj:
            problems.append(Problem("missing", f"{name}: required field is missing", name))
            continue
        value = obj[name]
        if not isinstance(value, str):
            problems.append(Problem("type", f"{name}: must be a non-empty string (got "
                                    f"{type_name(value)} {excerpt(value)})", name))
        elif value == "":
            problems.append(Problem("empty", f'{name}: must be a non-empty string (got "")',
                                    name))
    return problems


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """What :func:`check_fields` found in one record, each in registry field order."""

    problems: tuple[Problem, ...] = ()  # fields present that break their rule
    missing: tuple[str, ...] = ()  # required fields absent
    unknown: tuple[str, ...] = ()  # fields a kind without extras does not know

    def bad(self, names: tuple[str, ...] | None = None) -> list[Problem]:
        """The problems of fields present, and a "missing" one for each absent field of
        ``names`` (None: of every required field): what a reader cannot do without."""
        absent = self.missing if names is None else [n for n in self.missing if n in names]
        return [*(Problem("missing", f"{n}: required field is missing", n) for n in absent),
                *self.problems]


def check_fields(kind: RecordKind, record: dict[str, Any]) -> FieldCheck:
    """The one field checker: every field of ``record`` against ``kind``'s contract.

    Tolerant readers keep a record whose :attr:`FieldCheck.bad` (for the fields they cannot
    do without) is empty, and say what it lacks (``missing``) or has in excess (``unknown``).
    """
    problems = tuple(p for f in kind.fields if f.name in record
                     if (p := check_field(kind, f, record[f.name])) is not None)
    missing = tuple(f.name for f in kind.fields if f.required and f.name not in record)
    unknown: tuple[str, ...] = ()
    if not kind.additional_fields:
        known = set(kind.field_names())
        unknown = tuple(n for n in record if n not in known)
    return FieldCheck(problems, missing, unknown)
