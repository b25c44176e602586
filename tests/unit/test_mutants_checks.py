"""Bar field checks word for word: each refusal's field and exact rule, the boundaries of
each range, the conversions, and the stand-in for a value that cannot be shown."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from ensemble_otel.errors import BarError
from ensemble_otel.health import checks
from ensemble_otel.health.checks import (
    COUNT_MAX,
    TS_MAX,
    bar_error,
    check_bar,
    count,
    number,
    safe_value,
    to_unix,
)

RANGE = "must be unix seconds between 1970-01-01 and 9999-12-31"
TS_KIND = "must be a datetime (naive = UTC) or unix seconds"
WHOLE = "must be a whole number >= 0"
FINITE = "must be finite (not NaN or infinity)"


def _refusal(call: Any, *args: Any, **kwargs: Any) -> BarError:
    with pytest.raises(BarError) as info:
        call(*args, **kwargs)
    return info.value


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Offset(tzinfo):
    """A tzinfo whose offset is whatever the test says (or raises)."""

    def __init__(self, offset: Any) -> None:
        self.offset = offset

    def utcoffset(self, dt: datetime | None) -> Any:
        if isinstance(self.offset, BaseException):
            raise self.offset
        return self.offset

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None


class BadFloat(float):
    def __float__(self) -> float:
        raise RuntimeError("no float")


class BadIndex:
    def __index__(self) -> int:
        raise RuntimeError("no index")


class Index:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class FloatSubclass(float):
    pass


# -- safe_value, bar_error ---------------------------------------------------------------------


def test_safe_value_keeps_a_short_printable_value() -> None:
    assert safe_value(12.5) == 12.5
    text = "x" * 198  # repr adds the quotes: 200 characters
    assert safe_value(text) is text


def test_safe_value_of_a_long_value() -> None:
    text = "y" * 199  # 201 characters with its quotes
    assert safe_value(text) == "<str: '" + "y" * 59 + "...>"


class Shown:
    """A value whose repr is the text given."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def test_safe_value_of_an_unprintable_repr() -> None:
    short = Shown("\x1b" + "a" * 59)  # 60 characters: all shown, escaped
    assert safe_value(short) == "<Shown: \\x1b" + "a" * 59 + ">"
    long = Shown("\x1b" + "a" * 60)
    assert safe_value(long) == "<Shown: \\x1b" + "a" * 59 + "...>"
    kept = Shown("a" * 200)
    assert safe_value(kept) is kept
    assert safe_value(Shown("a" * 201)) == "<Shown: " + "a" * 60 + "...>"


def test_safe_value_of_a_value_whose_repr_raises() -> None:
    assert safe_value(BadRepr()) == "<BadRepr whose repr raised RuntimeError>"


def test_bar_error_carries_field_safe_value_and_rule() -> None:
    error = bar_error("equity", BadRepr(), "must be a number")
    assert (error.field, error.value, error.rule) == (
        "equity", "<BadRepr whose repr raised RuntimeError>", "must be a number")


# -- ts ----------------------------------------------------------------------------------------


def test_ts_conversions() -> None:
    assert to_unix(0) == 0.0 and type(to_unix(0)) is float
    assert to_unix(Fraction(3, 2)) == 1.5
    assert to_unix(datetime(1970, 1, 1, 1)) == 3600.0  # naive: UTC
    assert to_unix(datetime(1970, 1, 1, 2, tzinfo=timezone(timedelta(hours=1)))) == 3600.0
    assert to_unix(datetime(1970, 1, 1, 1, tzinfo=Offset(None))) == 3600.0  # no offset: UTC
    assert to_unix(TS_MAX - 1) == TS_MAX - 1


@pytest.mark.parametrize(("ts", "rule"), [
    (-0.5, f"{RANGE} (is it in milliseconds?)"),
    (TS_MAX, f"{RANGE} (is it in milliseconds?)"),
    (10**400, f"{RANGE} (is it in milliseconds?)"),
    (math.nan, "must be a finite unix time"),
    (math.inf, "must be a finite unix time"),
    (True, TS_KIND),
    ("1", TS_KIND),
    (BadFloat(1.0), TS_KIND),
    (datetime(2024, 1, 1, tzinfo=Offset(timedelta(hours=25))),
     f"{RANGE} (its UTC offset takes it out of range)"),
    (datetime(2024, 1, 1, tzinfo=Offset(ZeroDivisionError())),
     "must be a datetime whose tzinfo works (utcoffset raised ZeroDivisionError)"),
])
def test_ts_refusals(ts: Any, rule: str) -> None:
    error = _refusal(to_unix, ts)
    assert (error.field, error.rule) == ("ts", rule)
    assert repr(error.value) == repr(safe_value(ts))


def test_ts_of_a_datetime_before_1970() -> None:
    ts = datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    error = _refusal(to_unix, ts)
    assert (error.field, error.value, error.rule) == ("ts", ts, f"{RANGE} (is it in milliseconds?)")


def test_ts_whose_timestamp_is_not_a_finite_float(monkeypatch: pytest.MonkeyPatch) -> None:
    class Odd(datetime):
        def timestamp(self) -> Any:
            return FloatSubclass(5.0)

    class Inf(datetime):
        def timestamp(self) -> float:
            return math.inf

    for cls in (Odd, Inf):
        ts = cls(2024, 1, 1, tzinfo=timezone.utc)
        error = _refusal(to_unix, ts)
        assert (error.field, error.value, error.rule) == (
            "ts", ts, "must be a datetime whose tzinfo gives a finite offset")


# -- numbers and counts ------------------------------------------------------------------------


def test_number_conversions() -> None:
    assert number(3, "equity") == 3.0 and type(number(3, "equity")) is float
    assert number(Decimal("2.5"), "equity") == 2.5
    assert number(-1e308, "equity") == -1e308


@pytest.mark.parametrize(("value", "rule"), [
    (None, "must be a number"), (True, "must be a number"), ("1", "must be a number"),
    (b"1", "must be a number"), ([1.0], "must be a number"), (math.nan, FINITE),
    (-math.inf, FINITE), (10**400, FINITE), (BadFloat(1.0), "must be a number"),
])
def test_number_refusals(value: Any, rule: str) -> None:
    error = _refusal(number, value, "realized_pnl")
    assert (error.field, error.rule) == ("realized_pnl", rule)
    assert repr(error.value) == repr(safe_value(value))


def test_count_conversions() -> None:
    assert count(0, "risk_breaches") == 0
    assert count(COUNT_MAX, "risk_breaches") == COUNT_MAX
    assert count(3.0, "risk_breaches") == 3 and type(count(3.0, "risk_breaches")) is int
    assert count(0.0, "risk_breaches") == 0
    assert count(Index(7), "risk_breaches") == 7


@pytest.mark.parametrize(("value", "rule"), [
    (-1, WHOLE), (-1.0, WHOLE), (1.5, WHOLE), (True, WHOLE), ("1", WHOLE), (None, WHOLE),
    (math.inf, WHOLE), (BadIndex(), WHOLE), (Index(-2), WHOLE),
    (COUNT_MAX + 1, f"{WHOLE} and <= {COUNT_MAX}"),
])
def test_count_refusals(value: Any, rule: str) -> None:
    error = _refusal(count, value, "risk_warnings")
    assert (error.field, error.rule) == ("risk_warnings", rule)
    assert repr(error.value) == repr(safe_value(value))


# -- check_bar ---------------------------------------------------------------------------------


def _bar(**changes: Any) -> tuple[Any, ...]:
    fields = {"ts": 100.0, "equity": 1.0, "realized": None, "unrealized": None,
              "notional": 0.0, "breaches": 0, "warnings": 0, "positions": None}
    fields.update(changes)
    return check_bar(*fields.values())


def test_check_bar_converts_every_field() -> None:
    assert _bar() == (100.0, 1.0, None, None, 0.0, 0, 0, None)
    bar = _bar(ts=7, equity=2, realized=Fraction(1, 4), unrealized=-3, notional=4,
               breaches=1.0, warnings=Index(2), positions=3.0)
    assert bar == (7.0, 2.0, 0.25, -3.0, 4.0, 1, 2, 3)
    assert [type(v) for v in bar] == [float, float, float, float, float, int, int, int]
    assert _bar(ts=0.0, breaches=COUNT_MAX, warnings=COUNT_MAX, positions=COUNT_MAX)[5:] == (
        COUNT_MAX, COUNT_MAX, COUNT_MAX)


@pytest.mark.parametrize(("changes", "field", "rule"), [
    ({"ts": -1.0}, "ts", f"{RANGE} (is it in milliseconds?)"),
    ({"ts": TS_MAX}, "ts", f"{RANGE} (is it in milliseconds?)"),
    ({"equity": math.inf}, "equity", FINITE),
    ({"equity": -math.inf}, "equity", FINITE),
    ({"equity": math.nan}, "equity", FINITE),
    ({"realized": math.inf}, "realized_pnl", FINITE),
    ({"realized": -math.inf}, "realized_pnl", FINITE),
    ({"realized": "1"}, "realized_pnl", "must be a number"),
    ({"unrealized": math.inf}, "unrealized_pnl", FINITE),
    ({"unrealized": -math.inf}, "unrealized_pnl", FINITE),
    ({"unrealized": 1j}, "unrealized_pnl", "must be a number"),
    ({"notional": -1.0}, "traded_notional", "must be a finite number >= 0"),
    ({"notional": -1}, "traded_notional", "must be a finite number >= 0"),
    ({"notional": math.inf}, "traded_notional", "must be a finite number >= 0"),
    ({"notional": "1"}, "traded_notional", "must be a number"),
    ({"breaches": -1}, "risk_breaches", WHOLE),
    ({"breaches": COUNT_MAX + 1}, "risk_breaches", f"{WHOLE} and <= {COUNT_MAX}"),
    ({"warnings": -1}, "risk_warnings", WHOLE),
    ({"warnings": COUNT_MAX + 1}, "risk_warnings", f"{WHOLE} and <= {COUNT_MAX}"),
    ({"positions": -1}, "open_positions", WHOLE),
    ({"positions": COUNT_MAX + 1}, "open_positions", f"{WHOLE} and <= {COUNT_MAX}"),
    ({"positions": 0.5}, "open_positions", WHOLE),
])
def test_check_bar_refusals(changes: dict[str, Any], field: str, rule: str) -> None:
    error = _refusal(_bar, **changes)
    assert (error.field, error.rule) == (field, rule)
    [value] = changes.values()
    assert error.value == value or (error.value != error.value and value != value)  # NaN


def test_check_bar_names_the_first_bad_field() -> None:
    error = _refusal(_bar, equity=math.nan, notional=-1.0, breaches=-1)
    assert error.field == "equity"
    error = _refusal(_bar, realized="x", unrealized="y")
    assert error.field == "realized_pnl"


def test_module_bounds() -> None:
    assert checks.TS_MIN == 0.0 and TS_MAX == 253402300800.0 and COUNT_MAX == 2**32 - 1


def test_a_naive_datetime_is_utc_whatever_the_local_time_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A naive datetime means UTC on a host whose local zone is not UTC too."""
    import time

    from ensemble_otel.health.checks import to_unix

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert time.timezone != 0  # the zone took effect
        assert to_unix(datetime(2024, 3, 1)) == 1_709_251_200.0
        assert to_unix(datetime(2024, 7, 1, 12, 30)) == 1_719_837_000.0
    finally:
        monkeypatch.undo()
        time.tzset()
