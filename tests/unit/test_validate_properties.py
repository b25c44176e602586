"""Properties of the validator: it survives any bytes, and its fast path agrees with the
JSON Schemas (checked by the ``jsonschema`` package) on arbitrary records."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from validate_support import event, heartbeat, snapshot

from ensemble_otel._validate_engine import Source, check_bytes
from ensemble_otel._validate_rules import NO_EXPECT, valid_date
from ensemble_otel.contract import registry, schemas
from ensemble_otel.validate import main, validate

_SETTINGS = settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)


@_SETTINGS
@given(data=st.binary(max_size=3000), strict=st.booleans())
def test_any_bytes_never_crash(tmp_path: Path, data: bytes, strict: bool) -> None:
    path = tmp_path / "logs/events/s1/2024-03-01.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    report = validate([str(tmp_path)], strict=strict, cap=0, workers=1)
    assert report.exit_code in (0, 1, 2)
    assert report.lines == (data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1))
    assert all(1 <= v.line <= report.lines for v in report.violations)
    assert report.violation_count == len(report.violations)


@_SETTINGS
@given(lines=st.lists(st.binary(max_size=200) | st.sampled_from([
    json.dumps(event(1)).encode(), json.dumps(snapshot(3)).encode(), b"", b"{", b"\xff",
    json.dumps(heartbeat()).encode()]), max_size=12), strict=st.booleans())
def test_any_lines_through_the_command(tmp_path: Path, lines: list[bytes], strict: bool) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(lines))
    args = ["--strict"] if strict else []
    for fmt in ("text", "json"):
        assert main([*args, "--format", fmt, str(path)]) in (0, 1, 2)


# --- agreement with the JSON Schemas -------------------------------------------------------

_BASE = {"health_snapshot_1h": snapshot(10), "health_snapshot_24h": snapshot(0, "24h"),
         "event": event(1), "heartbeat": heartbeat()}


def _schema_ok(kind: str, record: dict[str, Any]) -> bool:
    validator = Draft202012Validator(schemas.load(kind))
    return validator.is_valid(record)


def _known_difference(kind: str, record: dict[str, Any]) -> bool:
    """Where the validator is stricter than the schema by design (see _validate_rules)."""
    fields = {f.name: f for f in registry.RECORD_KINDS_BY_NAME[kind].fields}
    for name, value in record.items():
        f = fields.get(name)
        if f is None:
            continue
        if f.type == "integer" and isinstance(value, float) and value.is_integer():
            return True  # 4.0 is an integer to JSON Schema, a number here
        if f.format == "date-time" and isinstance(value, str) and (
                value.endswith("\n") or (len(value) >= 10 and not valid_date(value[:10]))):
            return True  # Python's `$` before a final newline; no February 30th
        if isinstance(value, str) and f.pattern and value.endswith("\n"):
            return True
    return False


def _validator_ok(kind: str, record: dict[str, Any]) -> bool:
    data = json.dumps(record).encode() + b"\n"
    report = check_bytes(data, Source("x", None, len(data), NO_EXPECT), True, True, 0)
    return report.problem_count == 0


mutation = st.tuples(
    st.sampled_from(["drop", "set", "add"]),
    st.sampled_from(sorted({f.name for k in registry.RECORD_KINDS for f in k.fields}
                           | {"extra", "ts"})),
    json_values | st.sampled_from(["2024-03-01T10:00:00Z", "2024-03-01T10:00:00+01:00",
                                   "1.2", "", "s2", "24h", "1h", "running", 0, -1, 1.5]),
)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(sorted(_BASE)), mutations=st.lists(mutation, max_size=3))
def test_strict_verdict_equals_the_schema_verdict(
        kind: str, mutations: list[tuple[str, str, Any]]) -> None:
    record = dict(_BASE[kind])
    for op, name, value in mutations:
        if op == "drop":
            record.pop(name, None)
        else:
            record[name] = value
    assume(not any(isinstance(v, float) and not math.isfinite(v) for v in record.values()))
    assume(not _known_difference(kind, record))
    # the kind a mutated record shows by its fields is what the validator checks it as
    from ensemble_otel._validate_rules import kind_of

    shown = kind_of(record)
    assume(shown is not None)
    assert _validator_ok(kind, record) == _schema_ok(shown, record), (shown, record)


@settings(max_examples=300, deadline=None)
@given(record=st.dictionaries(st.sampled_from(["strategy_id", "schema_version", "x", "ts"]),
                              json_values, max_size=4))
def test_permissive_verdict(record: dict[str, Any]) -> None:
    data = json.dumps(record).encode() + b"\n"
    report = check_bytes(data, Source("x", None, len(data), NO_EXPECT), False, True, 0)
    expected = all(isinstance(record.get(k), str) and record[k] != ""
                   for k in ("strategy_id", "schema_version"))
    assert (report.problem_count == 0) == expected, record


# --- the bulk timestamp check --------------------------------------------------------------

_digit = st.sampled_from("0123456789")


@st.composite
def near_timestamps(draw: st.DrawFn) -> str:
    """Strings shaped like ISO-8601 timestamps, with the usual ways of getting them wrong."""
    def digits(n: int) -> str:
        return "".join(draw(st.lists(_digit, min_size=n, max_size=n)))

    sep = draw(st.sampled_from(["T", "T", "T", "t", " "]))
    frac = draw(st.sampled_from(["", "", ".", "." + digits(draw(st.integers(1, 11)))]))
    zone = draw(st.sampled_from(["Z", "Z", "+00:00", "z", "-00:00", "+01:00", "", "Z\n"]))
    year = draw(st.sampled_from(["2024", "2023", "0000", "0001", "9999", "1900", "2000"]))
    month = draw(st.sampled_from(["01", "02", "12", "13", "00", digits(2)]))
    day = draw(st.sampled_from(["01", "28", "29", "30", "31", "32", "00", digits(2)]))
    clock = draw(st.sampled_from(["00:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60",
                                  f"{digits(2)}:{digits(2)}:{digits(2)}", "12:00"]))
    return f"{year}-{month}-{day}{sep}{clock}{frac}{zone}"


@st.composite
def good_timestamps(draw: st.DrawFn) -> str:
    """Valid ISO-8601 UTC timestamps: any date and time, 0 to 9 fraction digits, Z or +00:00."""
    moment = draw(st.datetimes())
    digits = draw(st.integers(0, 9))
    frac = f"{moment.microsecond:06d}000"[:digits]
    zone = draw(st.sampled_from(["Z", "+00:00"]))
    return moment.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + (f".{frac}" if frac else "") + zone


def _exactly_valid(value: str) -> bool:
    from ensemble_otel._validate_rules import check_timestamp

    return check_timestamp("ts", value) is None


@settings(max_examples=600, deadline=None)
@given(value=near_timestamps() | good_timestamps())
@example("2024-01-01T00:00:00+01:00")
@example("2024-01-01T00:00:00-00:00")
@example("2024-02-29T23:59:59.123456789Z")
@example("2023-02-29T00:00:00Z")
def test_bulk_timestamp_check_equals_the_exact_one_on_single_values(value: str) -> None:
    from ensemble_otel._validate_rules import timestamps_ok

    assert timestamps_ok({value}) == _exactly_valid(value), value


@settings(max_examples=300, deadline=None)
@given(values=st.sets(near_timestamps() | good_timestamps() | st.text(max_size=30),
                      max_size=8))
@example({"2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00+01:00"})
def test_bulk_timestamp_check_never_passes_a_bad_value(values: set[str]) -> None:
    from ensemble_otel._validate_rules import timestamps_ok

    if timestamps_ok(values):
        assert all(_exactly_valid(v) for v in values), values
