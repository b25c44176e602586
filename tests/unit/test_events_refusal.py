"""Events never raise into the bot by default: a bad event is refused, counted, logged once
a minute, and ``emit`` says so; strict mode raises. Events are bounded in size."""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ensemble_otel import EventError
from ensemble_otel.contract.registry import EVENTS_REFUSED
from ensemble_otel.events import (
    MAX_FIELD_BYTES,
    MAX_OTEL_RECORD_BYTES,
    MAX_RECORD_BYTES,
    TRUNCATED_MARKER,
    Refused,
)
from ensemble_otel.testing import Capture, capture


def _lines(root: Path, sid: str = "s1") -> list[bytes]:
    out: list[bytes] = []
    for path in sorted((root / "logs" / "events" / sid).glob("*.jsonl")):
        data = path.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{path}: half-written last line"
        out.extend(data.splitlines())
    return out


@pytest.fixture
def lenient(root: Path) -> Any:
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        yield cap


class Boom:
    def __float__(self) -> float:
        raise RuntimeError("no float")

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Raising:
    """``__float__`` and ``__str__`` raise (a repr works, so a failing example prints)."""

    def __float__(self) -> float:
        raise RuntimeError("no float")

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        return "Raising()"


class BadZone(dt.tzinfo):
    def __repr__(self) -> str:
        return "BadZone()"

    def utcoffset(self, d: dt.datetime | None) -> dt.timedelta:
        raise RuntimeError("no offset")

    def dst(self, d: dt.datetime | None) -> dt.timedelta:
        raise RuntimeError("no dst")

    def tzname(self, d: dt.datetime | None) -> str:
        raise RuntimeError("no name")


def _recursive_list() -> list[Any]:
    a: list[Any] = []
    a.append(a)
    return a


def _recursive_dict() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


BAD: list[tuple[str, dict[str, Any]]] = [
    ("nan", {"x": math.nan}),
    ("infinity", {"x": [1.0, math.inf]}),
    ("object", {"x": object()}),
    ("raising dunders", {"x": Boom()}),
    ("huge int", {"x": 10**30}),
    ("odd tzinfo", {"x": dt.datetime(2024, 1, 1, tzinfo=BadZone())}),
    ("recursive list", {"x": _recursive_list()}),
    ("recursive dict", {"x": _recursive_dict()}),
    ("non-string key", {"x": {1: "a"}}),
    ("surrogate", {"x": "\ud800"}),
    ("reserved", {"strategy_id": "other"}),
]


@pytest.mark.parametrize(("label", "fields"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_event_is_refused_not_raised(lenient: Capture, label: str,
                                           fields: dict[str, Any]) -> None:
    result = lenient.events.emit("tick", **fields)
    assert isinstance(result, Refused) and not result
    assert result.field and result.rule
    assert _lines(lenient.root) == []
    assert lenient.metric(EVENTS_REFUSED).value == 1
    assert lenient.logs() == []


@pytest.mark.parametrize(("label", "fields"), BAD, ids=[b[0] for b in BAD])
def test_strict_mode_raises(cap: Capture, label: str, fields: dict[str, Any]) -> None:
    assert cap.telemetry.settings.strict  # on by default in the test kit
    with pytest.raises(EventError):
        cap.events.emit("tick", **fields)
    assert _lines(cap.root) == []


def test_a_bad_name_is_refused(lenient: Capture) -> None:
    for name in ("", "has space", None, 3):
        result = lenient.events.emit(name, a=1)  # type: ignore[arg-type]
        assert isinstance(result, Refused) and result.field == "event"
    assert lenient.metric(EVENTS_REFUSED).value == 4


def test_refusals_are_logged_once_a_minute(
    lenient: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ensemble_otel"):
        for _ in range(5):
            lenient.events.emit("tick", x=math.nan)
    lines = [r.getMessage() for r in caplog.records if "event refused" in r.getMessage()]
    assert len(lines) == 1
    assert "x=nan" in lines[0] and "NaN" in lines[0]  # the field, the value, the rule
    assert lenient.metric(EVENTS_REFUSED).value == 5


def test_good_events_still_return_the_record(lenient: Capture) -> None:
    record = lenient.events.emit("tick", n=1)
    assert record["n"] == 1 and not isinstance(record, Refused)
    assert lenient.metric(EVENTS_REFUSED).value == 0


def test_the_counter_is_in_the_registry_and_exported(cap: Capture) -> None:
    point = cap.metric(EVENTS_REFUSED)
    assert point.value == 0 and point.unit == "{event}"


# -- arbitrary values: nothing escapes, nothing half-written ---------------------------------

_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(),
    st.binary(max_size=8), st.datetimes(timezones=st.just(BadZone()) | st.timezones()),
    st.decimals(), st.just(Raising()), st.just(object()), st.complex_numbers(),
)
_values = st.recursive(
    _leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.one_of(st.text(max_size=5), st.integers()), inner, max_size=4), max_leaves=12)


@settings(database=None, derandomize=True, max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(name=st.one_of(st.text(max_size=10), st.sampled_from(["tick", "fill"]), st.none()),
       fields=st.dictionaries(st.text(min_size=1, max_size=8), _values, max_size=4))
def test_emit_never_raises_and_never_half_writes(
    lenient: Capture, name: Any, fields: dict[str, Any]
) -> None:
    before = len(_lines(lenient.root))
    result = lenient.events.emit(name, **fields)
    lines = _lines(lenient.root)
    if isinstance(result, Refused):
        assert len(lines) == before
    else:
        assert len(lines) == before + 1
        assert orjson.loads(lines[-1])["event"] == name
    for line in lines:
        orjson.loads(line)


# -- size bounds ---------------------------------------------------------------------------

def test_a_record_over_the_limit_is_refused_whole(lenient: Capture) -> None:
    lenient.events.emit("small", n=1)
    result = lenient.events.emit("huge", blob="x" * (8 << 20))
    assert isinstance(result, Refused) and "byte limit" in result.rule
    lenient.events.emit("small", n=2)
    assert [orjson.loads(x)["event"] for x in _lines(lenient.root)] == ["small", "small"]
    assert [r.log_record.event_name for r in lenient.logs()] == ["small", "small"]


def test_a_long_field_is_kept_in_the_file_and_cut_in_the_log_record(cap: Capture) -> None:
    blob = "é" * (100 << 10)  # 200 KiB of UTF-8
    record = cap.events.emit("big", blob=blob, other="short")
    assert record["blob"] == blob
    [line] = _lines(cap.root)
    assert orjson.loads(line)["blob"] == blob  # the JSONL keeps it whole
    [log] = cap.logs()
    body = log.log_record.body
    assert body["other"] == "short"
    kept = body["blob"]
    marker = TRUNCATED_MARKER.split("{")[0]
    assert kept.startswith("é" * 1000) and marker in kept
    assert len(kept.split(marker)[0].encode()) <= MAX_FIELD_BYTES


def test_the_log_record_as_a_whole_is_bounded(cap: Capture) -> None:
    fields = {f"f{i}": "y" * (60 << 10) for i in range(15)}  # 900 KiB: under the file limit
    assert cap.events.emit("wide", **fields)
    [log] = cap.logs()
    body = log.log_record.body
    assert isinstance(body, str) and len(body.encode()) <= MAX_OTEL_RECORD_BYTES + 100
    assert MAX_RECORD_BYTES > 900 << 10
