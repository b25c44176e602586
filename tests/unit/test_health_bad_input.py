"""Bad bar input in strict mode (``strict=True`` / ``ENSEMBLE_STRICT=1``): a BarError (a
ValueError) naming the field and the rule; nothing recorded. The default mode refuses the
same bars without raising: tests/unit/test_health_refused.py."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from unit_support import at, snapshot_records

from ensemble_otel import BarError, FieldError
from ensemble_otel.contract import registry as names
from ensemble_otel.testing import Capture, capture


@pytest.fixture
def cap(root: Any) -> Iterator[Capture]:
    """ensemble-otel in memory for strategy ``s1`` in strict mode: bad bars raise."""
    with capture(root=root, strategy_id="s1", strict=True) as c:
        yield c


NAN = math.nan
INF = math.inf

BAD: list[tuple[str, Any, str]] = [
    # (field, value, words the rule must contain)
    ("equity", NAN, "finite"),
    ("equity", INF, "finite"),
    ("equity", -INF, "finite"),
    # equity 0 and below are recorded, not refused (a blown account): test_health_refused.py
    ("equity", None, "number"),
    ("equity", "100", "number"),
    ("equity", b"100", "number"),
    ("equity", True, "number"),
    ("equity", False, "number"),
    ("equity", [100.0], "number"),
    ("equity", object(), "number"),
    ("equity", Decimal("NaN"), "finite"),
    ("realized_pnl", NAN, "finite"),
    ("realized_pnl", -INF, "finite"),
    ("realized_pnl", "1.5", "number"),
    ("realized_pnl", True, "number"),
    ("unrealized_pnl", INF, "finite"),
    ("unrealized_pnl", [1], "number"),
    ("traded_notional", -1.0, ">= 0"),
    ("traded_notional", -1, ">= 0"),
    ("traded_notional", NAN, ">= 0"),
    ("traded_notional", INF, "finite"),
    ("traded_notional", None, "number"),
    ("traded_notional", "5", "number"),
    ("traded_notional", True, "number"),
    ("risk_breaches", -1, ">= 0"),
    ("risk_breaches", 1.5, "whole number"),
    ("risk_breaches", -2.0, "whole number"),
    ("risk_breaches", NAN, "whole number"),
    ("risk_breaches", "1", "whole number"),
    ("risk_breaches", True, "whole number"),
    ("risk_breaches", None, "whole number"),
    ("risk_warnings", -3, ">= 0"),
    ("risk_warnings", 0.25, "whole number"),
    ("risk_warnings", INF, "whole number"),
    ("open_positions", -1, ">= 0"),
    ("open_positions", 2.5, "whole number"),
    ("open_positions", "2", "whole number"),
    ("open_positions", False, "whole number"),
]

BAD_TS: list[tuple[Any, str]] = [
    ("2024-03-01T01:00:00Z", "datetime"),
    (None, "datetime"),
    (NAN, "finite"),
    (INF, "finite"),
    (-INF, "finite"),
    (True, "datetime"),
    (date(2024, 3, 1), "datetime"),
    (b"1709254800", "datetime"),
    ([1709254800], "datetime"),
    # milliseconds by mistake: far beyond any datetime; it must not poison the clock
    (int(at(1)) * 1000, "unix seconds"),
    (at(1) * 1000.0, "unix seconds"),
    (1e300, "unix seconds"),
    (-1e300, "unix seconds"),
    (10**400, "unix seconds"),
    (datetime(1969, 12, 31, 23, tzinfo=timezone.utc), "unix seconds"),
    (-1, "unix seconds"),
    (datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5))), "unix seconds"),
]


def _start(cap: Capture) -> None:
    """Two good bars in hour 0; any bar in hour 1 would close it."""
    cap.health.maybe_emit(at(0, 10), equity=100.0, traded_notional=1.0, risk_breaches=1)
    cap.health.maybe_emit(at(0, 20), equity=90.0, traded_notional=2.0)


def _assert_nothing_recorded(cap: Capture) -> None:
    """No snapshot file, and the next good bar closes hour 0 as if the bad one never came."""
    assert not (cap.root / "logs" / "1h").exists()
    assert not (cap.root / "logs" / "24h").exists()
    [record] = [r for r in cap.health.maybe_emit(at(1, 5), equity=95.0)]
    assert (record["bars"], record["equity"], record["peak_equity"]) == (2, 90.0, 100.0)
    assert (record["traded_notional"], record["risk_breaches"]) == (3.0, 1)
    assert record["max_drawdown"] == 1 - 90 / 100
    assert snapshot_records(cap.root, "1h", "s1") == [record]
    assert cap.metric(names.BARS_DROPPED).value == 0


def _assert_names(exc: FieldError, field: str, value: Any, *words: str) -> None:
    assert isinstance(exc, BarError) and isinstance(exc, ValueError)
    assert exc.field == field
    text = str(exc)
    assert text.startswith(f"{field}=")
    for word in words:
        assert word in exc.rule and word in text, (word, text)


@pytest.mark.parametrize(("field", "value", "rule"), BAD,
                         ids=[f"{f}={v!r}"[:40] for f, v, _ in BAD])
def test_bad_field(cap: Capture, field: str, value: Any, rule: str) -> None:
    _start(cap)
    kwargs: dict[str, Any] = {"equity": 95.0, field: value}
    with pytest.raises(BarError) as info:
        cap.health.maybe_emit(at(1, 0), **kwargs)
    _assert_names(info.value, field, value, rule)
    _assert_nothing_recorded(cap)


@pytest.mark.parametrize(("ts", "rule"), BAD_TS, ids=[repr(t)[:40] for t, _ in BAD_TS])
def test_bad_ts(cap: Capture, ts: Any, rule: str) -> None:
    _start(cap)
    with pytest.raises(BarError) as info:
        cap.health.maybe_emit(ts, equity=95.0)
    _assert_names(info.value, "ts", ts, rule)
    _assert_nothing_recorded(cap)


def test_bad_ts_as_the_very_first_bar(cap: Capture) -> None:
    with pytest.raises(BarError):
        cap.health.maybe_emit(at(0) * 1000, equity=100.0)
    cap.health.maybe_emit(at(0, 10), equity=100.0)
    assert cap.metric(names.BAR_TIMESTAMP).value == at(0, 10)


def test_an_extreme_but_valid_datetime_is_accepted(cap: Capture) -> None:
    late = datetime(9999, 12, 30, 22, 0, tzinfo=timezone.utc)
    cap.health.maybe_emit(late, equity=1.0)
    [hour] = [r for r in cap.health.maybe_emit(late.replace(hour=23), equity=2.0)
              if r["period"] == "1h"]
    assert hour["ts"] == "9999-12-30T22:00:00Z"


@pytest.mark.parametrize(
    ("field", "value"),
    [("equity", 100), ("equity", Fraction(201, 2)), ("equity", Decimal("100.5")),
     ("traded_notional", 0), ("risk_breaches", 2.0), ("open_positions", 0),
     ("realized_pnl", -3), ("unrealized_pnl", 0)],
)
def test_numbers_of_other_types_are_accepted(cap: Capture, field: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"equity": 100.0, field: value}
    cap.health.maybe_emit(at(0, 1), **kwargs)
    assert cap.metric(names.BARS).value == 1


def test_numpy_numbers_are_accepted(cap: Capture) -> None:
    np = pytest.importorskip("numpy")
    cap.health.maybe_emit(np.int64(at(0, 1)), equity=np.float64(100.0),
                          traded_notional=np.float32(2.0), risk_breaches=np.int64(1),
                          open_positions=np.int32(3))
    cap.health.maybe_emit(np.float64(at(0, 2)), equity=100.0, open_positions=np.uint8(3))
    [record] = cap.health.maybe_emit(at(1), equity=100.0)
    assert (record["risk_breaches"], record["open_positions"], record["bars"]) == (1, 3, 2)
    with pytest.raises(BarError, match="equity"):
        cap.health.maybe_emit(at(2), equity=np.float64("nan"))


BIG = 1e308  # finite; two of them make infinity


def _full_bar(equity: float, notional: float) -> dict[str, Any]:
    """Every field of its exact type (the fast path when the bar stays in the open hour)."""
    return dict(equity=equity, realized_pnl=0.0, unrealized_pnl=0.0, traded_notional=notional,
                risk_breaches=0, risk_warnings=0, open_positions=0)


@pytest.mark.parametrize("path", ["fast", "general"])
def test_traded_notional_sum_overflow_is_refused(cap: Capture, path: str) -> None:
    """Finite increments whose sum in the hour would be infinity: the bar that would make
    it so is refused, naming traded_notional and the rule, and nothing of it is recorded;
    the file never gets null for traded_notional or turnover."""
    h = cap.health
    h.maybe_emit(at(0, 10), **_full_bar(100.0, BIG))
    before = h.state()
    bar = _full_bar(100.0, BIG) if path == "fast" else {"equity": 100, "traded_notional": BIG}
    with pytest.raises(BarError) as info:
        h.maybe_emit(at(0, 20), **bar)
    _assert_names(info.value, "traded_notional", BIG, "running sums", "finite")
    assert h.state() == before
    assert cap.metric(names.TRADED_NOTIONAL).value == BIG
    [record] = h.maybe_emit(at(1, 5), **_full_bar(100.0, 1.0))
    assert (record["bars"], record["traded_notional"], record["turnover"]) == (1, BIG, BIG / 100)


def test_overflow_of_the_day_and_total_sums_is_refused(cap: Capture) -> None:
    """Each hour's sum is finite, but the day's (and the total since the first bar) would
    not be: the bar opening the hour that would overflow them is refused, nothing closed."""
    h = cap.health
    h.maybe_emit(at(0, 10), equity=100.0, traded_notional=BIG)
    with pytest.raises(BarError) as info:
        h.maybe_emit(at(1, 10), equity=100.0, traded_notional=BIG)  # would close hour 0
    _assert_names(info.value, "traded_notional", BIG, "running sums")
    assert not (cap.root / "logs" / "1h").exists()  # hour 0 is still open
    assert cap.metric(names.TRADED_NOTIONAL).value == BIG
    [hour0] = h.maybe_emit(at(1, 20), equity=100.0, traded_notional=1.0)
    assert hour0["traded_notional"] == BIG and hour0["bars"] == 1


def test_turnover_overflow_is_refused(cap: Capture) -> None:
    """A finite sum divided by a tiny equity would be an infinite turnover."""
    h = cap.health
    h.maybe_emit(at(0, 10), equity=100.0, traded_notional=1e300)
    with pytest.raises(BarError) as info:
        h.maybe_emit(at(0, 20), **_full_bar(1e-10, 0.0))  # 1e300 / 1e-10
    _assert_names(info.value, "traded_notional", 0.0, "turnover")
    [record] = h.maybe_emit(at(1, 5), equity=100.0)
    assert record["turnover"] == 1e300 / 100.0 and record["bars"] == 1
