"""Record rules for the validator, derived from the contract registry.

Two views of the same rules:

- fast: msgspec Struct types per record kind (``forbid_unknown_fields`` unless the kind
  takes the caller's own fields), used to accept good lines at C speed; string patterns
  and calendar dates are checked after decoding, over all records of a range at once
  (:func:`pattern_fields`), because a regex call per value inside the decoder is slow;
- exact: :func:`diagnose`, plain Python that explains a rejected line with one message
  per broken rule, naming the field and the rule.

Both follow the JSON Schemas in ``contract/schemas/`` (generated from the same registry),
with one deliberate difference: an ``integer`` field written with a fraction (``1.0``) is
rejected here, while JSON Schema would take it. Timestamps must also be calendar dates
(no February 30th), which the schema's pattern cannot say.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal

import msgspec
import orjson

from ensemble_otel._time import valid_date
from ensemble_otel._validate_fields import (
    META_FIELDS,
    Problem,
    check_field,
    check_fields,
    check_meta,
    check_timestamp,
    compiled,
    excerpt,
    python_pattern,
    type_name,
)
from ensemble_otel.contract.registry import (
    PERIOD_FIELD,
    RECORD_KINDS,
    RECORD_KINDS_BY_NAME,
    UTC_TIMESTAMP_PATTERN,
    Field,
    RecordKind,
    kind_period,
)
from ensemble_otel.contract.schemas import field_enum

__all__ = ["META_FIELDS", "NO_EXPECT", "Expect", "Problem", "check_field", "check_fields",
           "check_location", "check_meta", "check_record", "check_timestamp", "compiled",
           "diagnose", "excerpt", "parse", "python_pattern", "type_name", "valid_date"]


@dataclass(frozen=True, slots=True)
class Expect:
    """What a file's location says about its records (all None: nothing)."""

    kind: str | None = None
    strategy_id: str | None = None
    date: str | None = None  # YYYY-MM-DD or YYYY-MM: the prefix every record's ts has
    directory: str = ""  # for messages, e.g. logs/1h/health_snapshot/s1/
    file_name: str = ""


NO_EXPECT = Expect()


# --- patterns and timestamps ---------------------------------------------------------------


CANONICAL_TS_LENGTH = len("2024-01-01T00:00:00Z")
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TS_SHAPE = re.compile(rb"0000-00-00T00:00:00(?:\.0{1,9})?(?:Z|\+00:00)")
_DATETIMES = list[dt.datetime]


def timestamps_ok(values: set[str]) -> bool:
    """True when every value is an ISO-8601 UTC timestamp of a real date and time, checked
    in bulk: one shape for all (digits as 0: the pattern's layout) and msgspec's RFC 3339
    parser for the ranges and the calendar. False means "look closer", value by value."""
    if not values:
        return True
    items = list(values)
    try:
        blob = "\n".join(items).encode("ascii")
    except UnicodeEncodeError:
        return False
    shape = items[0].encode("ascii").translate(_DIGITS_TO_ZERO)
    if _TS_SHAPE.fullmatch(shape) is None:
        return False
    if blob.translate(_DIGITS_TO_ZERO) != b"\n".join([shape] * len(items)):
        return False
    # the shape hides which digits the offset has: +00:00 must be there literally
    if shape.endswith(b"+00:00") and (blob + b"\n").count(b"+00:00\n") != len(items):
        return False
    try:
        msgspec.convert(items, _DATETIMES)
    except msgspec.ValidationError:
        return False
    return True


def bucket_ts(ts: str) -> str:
    """A canonical spelling of a UTC timestamp, so ``Z``/``+00:00`` and ``.000`` compare equal."""
    if ts.endswith("+00:00"):
        ts = ts[:-6] + "Z"
    if "." in ts:
        head, frac = ts[:-1].split(".", 1)
        frac = frac.rstrip("0")
        ts = f"{head}.{frac}Z" if frac else f"{head}Z"
    return ts


# --- fast types ----------------------------------------------------------------------------


def _field_type(kind: RecordKind, field: Field) -> Any:
    base: Any
    enum = field_enum(kind, field)
    if enum:
        base = Literal[enum]  # type: ignore[valid-type]
    elif field.type == "string":
        base = Annotated[str, msgspec.Meta(min_length=1)]  # pattern: see pattern_fields
    elif field.type in ("integer", "number"):
        py = int if field.type == "integer" else float
        base = Annotated[py, msgspec.Meta(ge=field.minimum)] if field.minimum is not None else py
    elif field.type == "boolean":
        base = bool
    else:
        base = dict[str, Any]
    return base | None if field.nullable else base


def field_pattern(field: Field) -> str | None:
    return UTC_TIMESTAMP_PATTERN if field.format == "date-time" else field.pattern


@cache
def pattern_fields(kind_name: str) -> tuple[tuple[str, re.Pattern[str], bool], ...]:
    """(field, compiled pattern, is a timestamp) for the string fields with a pattern."""
    kind = RECORD_KINDS_BY_NAME[kind_name]
    return tuple(
        (f.name, compiled(pattern), f.format == "date-time")
        for f in kind.fields if (pattern := field_pattern(f)) is not None and not f.enum
    )


@cache
def record_type(kind_name: str) -> type[msgspec.Struct]:
    """The msgspec Struct that accepts the good records of a kind, patterns aside."""
    kind = RECORD_KINDS_BY_NAME[kind_name]
    required: list[tuple[str, Any]] = []
    optional: list[tuple[str, Any, Any]] = []
    for f in kind.fields:
        if f.required:
            required.append((f.name, _field_type(kind, f)))
        else:
            optional.append((f.name, _field_type(kind, f) | msgspec.UnsetType, msgspec.UNSET))
    return msgspec.defstruct(
        f"Record_{kind.name}", [*required, *optional],
        forbid_unknown_fields=not kind.additional_fields,
        gc=False,  # scalars only (and JSON trees): no cycles, nothing for the collector
    )


@cache
def record_decoder(kind_name: str) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(record_type(kind_name))


_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class MetaRecord(msgspec.Struct, gc=False):
    """What the permissive mode asks of every line."""

    strategy_id: _NonEmpty
    schema_version: _NonEmpty


meta_decoder: msgspec.json.Decoder[MetaRecord] = msgspec.json.Decoder(MetaRecord)


# --- telling kinds apart -------------------------------------------------------------------


def _unique_markers() -> dict[str, str]:
    """A field found in one kind only -> that kind. Kinds taking extra fields come first:
    their marker may sit beside another kind's marker, and then they win."""
    markers: dict[str, str] = {}
    for kind in sorted(RECORD_KINDS, key=lambda k: not k.additional_fields):
        others = {n for k in RECORD_KINDS if k is not kind for n in k.field_names()}
        marker = next((n for n in kind.field_names() if n not in others), None)
        if marker is not None:
            markers[marker] = kind.name
    return markers


MARKERS: dict[str, str] = _unique_markers()
PERIOD_KINDS: dict[str, str] = {
    p: k.name for k in RECORD_KINDS if (p := kind_period(k)) is not None
}
BUCKET_KINDS: frozenset[str] = frozenset(PERIOD_KINDS.values())


def kind_period_of(kind_name: str) -> str:
    """The period of a bucket kind (KeyError for other kinds)."""
    period = kind_period(RECORD_KINDS_BY_NAME[kind_name])
    if period is None:
        raise KeyError(kind_name)
    return period

# Byte patterns that pick the decoder to try first for a line of unknown kind. A wrong
# guess only costs time: a record that a kind's Struct accepts is of that kind by
# :func:`kind_of` (non-marker kinds forbid unknown fields, so carry no other marker).
# Order: what JSONL files hold most (events, then snapshots) first; the heartbeat, a
# whole-file document, last.
_OPEN_KINDS = {k.name for k in RECORD_KINDS if k.additional_fields}
SNIFF: tuple[tuple[bytes, str], ...] = (
    *((f'"{name}":'.encode(), kind) for name, kind in MARKERS.items() if kind in _OPEN_KINDS),
    *((f'"{PERIOD_FIELD}":"{p}"'.encode(), kind) for p, kind in PERIOD_KINDS.items()),
    *((f'"{name}":'.encode(), kind) for name, kind in MARKERS.items()
      if kind not in _OPEN_KINDS),
)


def kind_of(obj: dict[str, Any]) -> str | None:
    """The kind of a record told from its fields, or None.

    A kind's marker field (one no other kind has) decides; snapshot kinds share their
    fields and are told apart by the period value.
    """
    for name, kind in MARKERS.items():
        if name in obj:
            return kind
    period = obj.get(PERIOD_FIELD)
    if isinstance(period, str):
        return PERIOD_KINDS.get(period)
    return None


def describe_markers() -> str:
    names = [f"'{m}'" for m in MARKERS]
    names.append(f"'{PERIOD_FIELD}' of {' or '.join(PERIOD_KINDS)}")
    return ", ".join(names)


# --- exact diagnosis -----------------------------------------------------------------------


def check_record(obj: dict[str, Any], kind: RecordKind) -> list[Problem]:
    """Every rule of ``kind``'s schema that ``obj`` breaks, in registry field order (the
    fields through :func:`check_fields`, the one field checker)."""
    found = check_fields(kind, obj)
    problems = []
    missing = found.missing
    if len(missing) == 1:
        problems.append(Problem("missing", f"{missing[0]}: required field is missing",
                                missing[0]))
    elif missing:
        problems.append(Problem("missing", f"required fields are missing: {', '.join(missing)}",
                                ",".join(missing)))
    period = kind_period(kind)
    for problem in found.problems:
        value = obj.get(PERIOD_FIELD)
        if problem.field == PERIOD_FIELD and period is not None and value in PERIOD_KINDS:
            problem = Problem(
                "period-dir", f"period: {excerpt(value)} does not match the "
                f"directory: {kind.name} records ({kind.path}) have period {period}",
                PERIOD_FIELD)
        problems.append(problem)
    if found.unknown:
        unknown = [excerpt(n)[1:-1] for n in found.unknown]
        what = "unknown field" if len(unknown) == 1 else "unknown fields"
        problems.append(Problem("unknown-field", f"{', '.join(unknown)}: {what} "
                                f"(the {kind.name} schema allows no others)",
                                ",".join(unknown)))
    return problems


def check_location(rec: Any, expect: Expect, kind_name: str) -> list[Problem]:
    """Rules that tie a record to its file: strategy directory and file-name date.

    ``rec`` is a dict or a decoded Struct of a kind whose rules it already passed.
    """
    get = rec.get if isinstance(rec, dict) else lambda n: getattr(rec, n, None)
    problems = []
    sid = get("strategy_id")
    if expect.strategy_id is not None and isinstance(sid, str) and sid != expect.strategy_id:
        problems.append(Problem(
            "strategy-dir", f"strategy_id: {excerpt(sid)} does not match its location "
            f"{expect.directory} (expected {excerpt(expect.strategy_id)})", "strategy_id"))
    ts = get("ts")
    if expect.date is not None and isinstance(ts, str) and not ts.startswith(expect.date):
        problems.append(Problem(
            "file-date", f"ts: {excerpt(ts)} is not in the file's date {expect.date} "
            f"({expect.file_name})", "ts"))
    return problems


_ORJSON_POS = re.compile(r":? line \d+ column (\d+) \(char \d+\)$")


def parse(line: bytes) -> tuple[dict[str, Any] | None, Problem | None]:
    """Decode one line with the rules of JSON (UTF-8, no NaN/Infinity), or say why not."""
    if not line.strip():
        return None, Problem("blank-line", "blank line: every line must be one JSON object")
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, Problem("utf-8", f"invalid UTF-8: byte 0x{line[exc.start]:02x} at "
                                      f"column {exc.start + 1}")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        msg = str(exc)
        pos = _ORJSON_POS.search(msg)
        detail = _ORJSON_POS.sub("", msg) + (f" at column {pos.group(1)}" if pos else "")
        return None, Problem("json", f"invalid JSON: {detail}")
    if not isinstance(obj, dict):
        return None, Problem("not-object", f"not a JSON object (got {type_name(obj)})")
    return obj, None


def diagnose(line: bytes, strict: bool, expect: Expect = NO_EXPECT,
             fallback: Callable[[], str] | None = None) -> list[Problem]:
    """Why a line was rejected: one problem per broken rule.

    The kind is the one ``expect`` gives (from the file's location), else told from the
    fields. ``fallback`` describes the fast decoder's complaint, for the rare case where
    the exact rules find nothing.
    """
    obj, problem = parse(line)
    if obj is None:
        return [problem] if problem is not None else []
    if not strict:
        problems = check_meta(obj)
    else:
        name = expect.kind or kind_of(obj)
        if name is None:
            problems = [Problem("kind", "cannot tell the record kind: it has none of "
                                        f"{describe_markers()}"), *check_meta(obj)]
        else:
            problems = check_record(obj, RECORD_KINDS_BY_NAME[name])
            broken = {p.field for p in problems}
            problems += [p for p in check_location(obj, expect, name) if p.field not in broken]
    if not problems and fallback is not None:
        problems = [Problem("record", f"rejected: {fallback()}")]
    return problems
