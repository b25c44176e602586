"""Events: a JSONL record with strategy metadata and an OTel log record with the resource."""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import time
import warnings
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from unit_support import read_jsonl

import ensemble_otel
from ensemble_otel import EventError
from ensemble_otel.contract.registry import EVENT, STRATEGY_ID_ATTRIBUTE
from ensemble_otel.events import OtelLoggingHandler, severity
from ensemble_otel.testing import Capture, capture


def _event_files(root: Path, strategy: str = "s1") -> list[Path]:
    return sorted((root / "logs" / "events" / strategy).glob("*.jsonl"))


def test_record_shape_and_file(cap: Capture) -> None:
    before = time.time()
    record = cap.events.emit("order_filled", symbol="EURUSD", qty=1000, price=1.0842,
                             tags=["a", "b"], detail={"venue": "paper", "ok": True},
                             note=None)
    after = time.time()
    assert list(record)[:4] == ["ts", "event", "strategy_id", "schema_version"]
    assert list(record)[:4] == list(EVENT.field_names())
    assert record["event"] == "order_filled"
    assert (record["strategy_id"], record["schema_version"]) == ("s1", "1.1")
    assert {k: record[k] for k in list(record)[4:]} == {
        "symbol": "EURUSD", "qty": 1000, "price": 1.0842, "tags": ["a", "b"],
        "detail": {"venue": "paper", "ok": True}, "note": None}
    ts = datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
    assert record["ts"].endswith("Z") and before - 1e-3 <= ts.timestamp() <= after + 1e-3
    [path] = _event_files(cap.root)
    assert path.name == f"{record['ts'][:10]}.jsonl"
    assert read_jsonl(path) == [record]


def test_caller_fields_are_not_changed(cap: Capture) -> None:
    fields: dict[str, Any] = {"qty": 3, "nested": {"a": [1, 2]}, "when": "2020-01-01T00:00:00Z"}
    snapshot = {"qty": 3, "nested": {"a": [1, 2]}, "when": "2020-01-01T00:00:00Z"}
    record = cap.events.emit("fill", **fields)
    assert fields == snapshot  # the caller's dict is untouched
    for key, value in snapshot.items():
        assert record[key] == value
    [line] = read_jsonl(_event_files(cap.root)[0])
    assert line["when"] == "2020-01-01T00:00:00Z"  # a caller's own time field stays as given


def test_otel_log_record(cap: Capture) -> None:
    cap.events.emit("risk_limit", limit="max_dd", value=0.2, hit=True, ids=[1, 2])
    [log] = cap.logs()
    assert log.log_record.body == {"limit": "max_dd", "value": 0.2, "hit": True, "ids": [1, 2]}
    assert log.log_record.event_name == "risk_limit"
    assert dict(log.log_record.attributes or {}) == {"event.name": "risk_limit"}
    assert log.log_record.severity_text == "INFO"
    assert log.resource.attributes[STRATEGY_ID_ATTRIBUTE] == "s1"
    assert log.log_record.timestamp is not None
    assert abs(log.log_record.timestamp / 1e9 - time.time()) < 60


def test_emit_event_goes_to_the_configured_telemetry(cap: Capture) -> None:
    record = ensemble_otel.emit_event("via_facade", n=1)
    assert read_jsonl(_event_files(cap.root)[0]) == [record]
    assert len(cap.logs()) == 1


def test_events_in_order_one_line_each(cap: Capture) -> None:
    for i in range(200):
        cap.events.emit("tick", i=i, text="line\nbreak and \"quotes\"")
    [path] = _event_files(cap.root)
    assert [r["i"] for r in read_jsonl(path)] == list(range(200))
    assert path.read_bytes().count(b"\n") == 200


class _Float(float):
    pass


@dataclasses.dataclass
class _Point:
    x: float
    y: float


class _Level(enum.Enum):
    BAD = math.nan


BAD_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"x": object()}, "x", "JSON-serialisable"),
    ({"x": {1, 2}}, "x", "JSON-serialisable"),
    ({"x": Decimal("1.5")}, "x", "JSON-serialisable"),
    ({"x": b"bytes"}, "x", "JSON-serialisable"),
    ({"ok": 1, "x": {"nested": object()}}, "x", "JSON-serialisable"),
    ({"x": {1: "int key"}}, "x", "JSON-serialisable"),
    ({"x": 2**70}, "x", "JSON-serialisable"),
    ({"x": math.nan}, "x", "NaN"),
    ({"x": math.inf}, "x", "infinity"),
    ({"x": [1.0, -math.inf]}, "x", "NaN"),
    ({"x": {"deep": [{"deeper": math.nan}]}}, "x", "NaN"),
    ({"ok": None, "x": _Float("nan")}, "x", "JSON-serialisable"),  # orjson: no float subclass
    ({"x": _Point(1.0, math.inf)}, "x", "NaN"),  # a dataclass orjson writes field by field
    ({"x": _Level.BAD}, "x", "NaN"),  # an enum orjson writes as its value
    ({"ts": "2020-01-01T00:00:00Z"}, "ts", "set by ensemble-otel"),
    ({"event": "other"}, "event", "set by ensemble-otel"),
    ({"strategy_id": "other"}, "strategy_id", "set by ensemble-otel"),
    ({"schema_version": "9.9"}, "schema_version", "set by ensemble-otel"),
]


@pytest.mark.parametrize(("fields", "field", "rule"), BAD_FIELDS,
                         ids=[repr(f)[:40] for f, _, _ in BAD_FIELDS])
def test_bad_field(cap: Capture, fields: dict[str, Any], field: str, rule: str) -> None:
    with pytest.raises(EventError) as info:
        cap.events.emit("bad", **fields)
    exc = info.value
    assert isinstance(exc, ValueError)
    assert exc.field == field and str(exc).startswith(f"{field}=")
    assert rule in str(exc)
    assert _event_files(cap.root) == []
    assert cap.logs() == []


@pytest.mark.parametrize("name", ["", "1abc", "has space", "a/b", "x" * 129, None, 5, "é"])
def test_bad_event_name(cap: Capture, name: Any) -> None:
    with pytest.raises(EventError) as info:
        cap.events.emit(name, x=1)
    assert info.value.field == "event" and "must be a name" in str(info.value)
    assert _event_files(cap.root) == []


def test_a_bad_event_does_not_disturb_the_good_ones(cap: Capture) -> None:
    cap.events.emit("first", n=1)
    with pytest.raises(EventError):
        cap.events.emit("second", n=math.nan)
    cap.events.emit("third", n=3)
    assert [r["event"] for r in read_jsonl(_event_files(cap.root)[0])] == ["first", "third"]


def test_events_for_two_strategies_go_to_their_own_files(tmp_path: Path) -> None:
    for strategy in ("alpha", "beta"):
        with capture(root=tmp_path, strategy_id=strategy) as cap:
            cap.events.emit("hello", who=strategy)
    for strategy in ("alpha", "beta"):
        [path] = _event_files(tmp_path, strategy)
        assert [r["who"] for r in read_jsonl(path)] == [strategy]


def test_stdlib_logging_bridge(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated handler underneath
        with capture(root=tmp_path, strategy_id="s1", logging_bridge=True) as cap:
            log = logging.getLogger("my.bot")
            log.setLevel(logging.DEBUG)  # the bridge's own level (INFO) decides
            log.warning("spread too wide: %s", 3, extra={"symbol": "EURUSD", "legs": [1]})
            try:
                raise RuntimeError("venue down")
            except RuntimeError:
                log.exception("order failed")
            log.log(logging.INFO + 2, "a level between INFO and WARNING")
            log.debug("below the bridge's level: not sent")
            logging.getLogger("opentelemetry.sdk.x").error("an exporter's own trouble: not sent")
            logs = {r.log_record.body: r for r in cap.logs()}
            log.setLevel(logging.NOTSET)
        handlers = [h for h in logging.getLogger().handlers
                    if isinstance(h, OtelLoggingHandler)]
    assert handlers == []  # removed at shutdown
    assert sorted(logs) == ["a level between INFO and WARNING", "order failed",
                            "spread too wide: 3"]
    warned = logs["spread too wide: 3"]
    assert warned.resource.attributes[STRATEGY_ID_ATTRIBUTE] == "s1"
    assert warned.instrumentation_scope.name == "my.bot"
    assert (warned.log_record.severity_number, warned.log_record.severity_text) == (
        SeverityNumber.WARN, "WARN")
    attributes = dict(warned.log_record.attributes or {})
    assert attributes["code.file.path"] == __file__
    assert attributes["code.function.name"] == "test_stdlib_logging_bridge"
    assert isinstance(attributes["code.line.number"], int)
    assert (attributes["symbol"], attributes["legs"]) == ("EURUSD", "[1]")
    assert "exception.type" not in attributes
    failed = logs["order failed"]
    assert (failed.log_record.severity_number, failed.log_record.severity_text) == (
        SeverityNumber.ERROR, "ERROR")
    attributes = dict(failed.log_record.attributes or {})
    assert (attributes["exception.type"], attributes["exception.message"]) == (
        "RuntimeError", "venue down")
    assert 'raise RuntimeError("venue down")' in attributes["exception.stacktrace"]
    between = logs["a level between INFO and WARNING"]
    assert between.log_record.severity_number == SeverityNumber.INFO3


@pytest.mark.parametrize(("level", "expected"), [
    (logging.NOTSET, SeverityNumber.UNSPECIFIED), (5, SeverityNumber.UNSPECIFIED),
    (logging.DEBUG, SeverityNumber.DEBUG), (11, SeverityNumber.DEBUG2),
    (19, SeverityNumber.DEBUG4), (logging.INFO, SeverityNumber.INFO),
    (logging.WARNING, SeverityNumber.WARN), (logging.ERROR, SeverityNumber.ERROR),
    (42, SeverityNumber.ERROR3), (logging.CRITICAL, SeverityNumber.FATAL),
    (53, SeverityNumber.FATAL4), (99, SeverityNumber.FATAL4)])
def test_severity_of_stdlib_levels(level: int, expected: SeverityNumber) -> None:
    assert severity(level) == expected


def test_no_bridge_by_default(cap: Capture) -> None:
    logging.getLogger("my.bot").warning("not bridged")
    assert cap.logs() == []


def test_event_file_is_named_by_utc_date(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    late = datetime(2024, 2, 29, 23, 59, 59, 900000, tzinfo=timezone.utc)
    clock = [int(late.timestamp()) * 10**9 + 900_000_123]
    monkeypatch.setattr(time, "time_ns", lambda: clock[0])
    record = cap.events.emit("late")
    assert record["ts"] == "2024-02-29T23:59:59.900000Z"
    clock[0] += 99_999_000  # the last microsecond of the day, then the next day
    assert cap.events.emit("later")["ts"] == "2024-02-29T23:59:59.999999Z"
    clock[0] += 1000
    assert cap.events.emit("next_day")["ts"] == "2024-03-01T00:00:00.000000Z"
    clock[0] -= 10**9  # the wall clock stepped back a second
    assert cap.events.emit("stepped_back")["ts"] == "2024-02-29T23:59:59.000000Z"
    assert [p.name for p in _event_files(cap.root)] == ["2024-02-29.jsonl", "2024-03-01.jsonl"]
    assert [r["event"] for r in read_jsonl(_event_files(cap.root)[0])] == [
        "late", "later", "stepped_back"]


def test_reserved_names_through_the_facade(cap: Capture) -> None:
    with pytest.raises(EventError) as info:
        ensemble_otel.emit_event("fill", event="shadow")
    assert info.value.field == "event"
    assert _event_files(cap.root) == []


def test_null_in_a_line_is_not_taken_for_nan(cap: Capture) -> None:
    """NaN is refused by looking for the null orjson writes for it; a None or the text
    "null" in a field is still a good event."""
    cap.events.emit("fine", note=None, text="null", nested={"a": [None, 1.5]}, point=_Point(1, 2))
    [record] = read_jsonl(_event_files(cap.root)[0])
    assert (record["note"], record["text"], record["nested"], record["point"]) == (
        None, "null", {"a": [None, 1.5]}, {"x": 1, "y": 2})
