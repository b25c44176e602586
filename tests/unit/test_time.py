"""The one UTC time formatter and parser (ensemble_otel._time): every format the records
use, byte for byte as the strftime formats they replace, and round trips through the parser."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble_otel import _time
from ensemble_otel.contract.registry import UTC_TIMESTAMP_PATTERN

T = 1709251200.0  # 2024-03-01T00:00:00Z
# 1900 to 2200, whole microseconds (what the records hold)
MICROS = st.integers(-2208988800 * 10**6, 7258118400 * 10**6)
RECORD_TS = re.compile(UTC_TIMESTAMP_PATTERN)


def _strftime(unix: float, fmt: str) -> str:
    return datetime.fromtimestamp(unix, tz=timezone.utc).strftime(fmt)


@pytest.mark.parametrize(("unix", "iso", "seconds", "micro"), [
    (T, "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-01T00:00:00.000000Z"),
    (T + 0.5, "2024-03-01T00:00:00.500000Z", "2024-03-01T00:00:00Z",
     "2024-03-01T00:00:00.500000Z"),
    (T + 86399.25, "2024-03-01T23:59:59.250000Z", "2024-03-01T23:59:59Z",
     "2024-03-01T23:59:59.250000Z"),
    (T - 1, "2024-02-29T23:59:59Z", "2024-02-29T23:59:59Z", "2024-02-29T23:59:59.000000Z"),
    (0.0, "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
    (-0.5, "1969-12-31T23:59:59.500000Z", "1969-12-31T23:59:59Z",
     "1969-12-31T23:59:59.500000Z"),
    (T + 1e-7, "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-01T00:00:00.000000Z"),
])
def test_each_format(unix: float, iso: str, seconds: str, micro: str) -> None:
    assert _time.iso(unix) == iso
    assert _time.iso_seconds(unix) == seconds
    assert _time.iso_micro(unix) == micro


@settings(database=None, derandomize=True, max_examples=500, deadline=None)
@given(micros=MICROS)
def test_formats_are_the_strftime_formats_they_replace(micros: int) -> None:
    for unix in (micros / 10**6, float(micros // 10**6)):
        assert _time.iso_micro(unix) == _strftime(unix, "%Y-%m-%dT%H:%M:%S.%fZ")
        assert _time.iso_seconds(unix) == _strftime(unix, "%Y-%m-%dT%H:%M:%SZ")
        dt = datetime.fromtimestamp(unix, tz=timezone.utc)
        expected = _strftime(unix, "%Y-%m-%dT%H:%M:%S.%fZ" if dt.microsecond
                             else "%Y-%m-%dT%H:%M:%SZ")
        assert _time.iso(unix) == expected


@settings(database=None, derandomize=True, max_examples=500, deadline=None)
@given(micros=MICROS)
def test_round_trips(micros: int) -> None:
    unix = micros / 10**6
    for text in (_time.iso(unix), _time.iso_micro(unix)):
        assert RECORD_TS.search(text) and _time.record_ts_error(text) is None
        assert _time.parse_iso(text) == unix
        assert _time.iso(_time.parse_iso(text)) == _time.iso(unix)
    whole = _time.iso_seconds(unix)
    assert _time.record_ts_error(whole) is None
    assert _time.parse_iso(whole) == float(micros // 10**6)


def test_the_day_cache_gives_each_day_its_own_date() -> None:
    # alternate between two days: the cached date must follow
    for _ in range(3):
        assert _time.iso(T + 3600) == "2024-03-01T01:00:00Z"
        assert _time.iso(T - 3600) == "2024-02-29T23:00:00Z"


def test_the_hour_cache_follows_hours_days_and_the_epoch() -> None:
    # alternate between hours of one day, of two days, and around 1970 (hour -1 included)
    for _ in range(3):
        assert _time.iso(T + 3600 + 59) == "2024-03-01T01:00:59Z"
        assert _time.iso(T + 7200 + 3599) == "2024-03-01T02:59:59Z"
        assert _time.iso(T + 3600) == "2024-03-01T01:00:00Z"
        assert _time.iso(T - 1) == "2024-02-29T23:59:59Z"
        assert _time.iso(-1800.0) == "1969-12-31T23:30:00Z"
        assert _time.iso(0.0) == "1970-01-01T00:00:00Z"
        assert _time.iso(-86400.0 - 3600) == "1969-12-30T23:00:00Z"


@pytest.mark.parametrize(("text", "unix"), [
    ("2024-03-01T00:00:00Z", T),
    ("2024-03-01T00:00:00z", T),
    ("2024-03-01T00:00:00+00:00", T),
    ("2024-03-01T01:00:00+01:00", T),
    ("2024-03-01T00:00:00", T),  # naive means UTC
    ("2024-03-01 00:00:00", T),  # a space for the T (CSV data)
    ("  2024-03-01T00:00:00Z\n", T),
    ("2024-03-01", T),
    ("2024-03-01T00:00:00.5Z", T + 0.5),  # 1 to 9 fraction digits
    ("2024-03-01T00:00:00.25Z", T + 0.25),
    ("2024-03-01T00:00:00.123456789Z", T + 0.123456),
])
def test_parse_takes_what_readers_meet(text: str, unix: float) -> None:
    assert _time.parse_iso(text) == unix
    assert _time.parse_datetime(text).tzinfo is not None


@pytest.mark.parametrize("text", ["", "yesterday", "2024-02-30T00:00:00Z", "2024-03-01T25:00:00Z"])
def test_parse_refuses_what_is_no_time(text: str) -> None:
    with pytest.raises(ValueError):
        _time.parse_iso(text)


@pytest.mark.parametrize(("text", "why"), [
    ("2024-03-01T00:00:00Z", None),
    ("2024-03-01T00:00:00.123456789Z", None),
    ("2024-03-01T00:00:00+00:00", None),
    ("2024-03-01T00:00:00", "form"),  # naive: readers take it, records must not hold it
    ("2024-03-01T00:00:00+01:00", "form"),
    ("2024-03-01T00:00:00z", "form"),
    ("2024-03-01 00:00:00Z", "form"),
    ("2024-03-01T00:00:00.1234567890Z", "form"),
    ("2024-03-01T00:00:00Z\n", "form"),
    ("2023-02-29T00:00:00Z", "date"),
    ("2024-02-29T00:00:00Z", None),
    ("2024-04-31T00:00:00Z", "date"),
])
def test_the_strict_rule_of_a_record_timestamp(text: str, why: str | None) -> None:
    assert _time.record_ts_error(text) == why


def test_valid_date() -> None:
    assert _time.valid_date("2024-02-29")
    assert not _time.valid_date("2023-02-29")
    assert not _time.valid_date("20240229")  # fromisoformat takes it; a record must not
