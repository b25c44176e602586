"""Property tests for maybe_emit: the definitions hold for any valid series, bad values are
always refused with BarError naming the field (and nothing is recorded)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ensemble_otel import BarError
from ensemble_otel.health import Refused, iso
from ensemble_otel.testing import capture
from ensemble_otel.validate import validate

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
# seeded: a failure reproduces (derandomize: examples come from the test's own name)
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

money = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
bar = st.fixed_dictionaries({
    "gap": st.one_of(st.integers(1, 4000), st.floats(0.5, 20000.0)),
    "equity": st.one_of(st.floats(1.0, 1e6), st.integers(1, 10**6)),
    "realized_pnl": st.one_of(st.none(), money),
    "unrealized_pnl": st.one_of(st.none(), money),
    "traded_notional": st.one_of(st.floats(0.0, 1e6), st.integers(0, 10**6)),
    "risk_breaches": st.integers(0, 3),
    "risk_warnings": st.integers(0, 3),
    "open_positions": st.one_of(st.none(), st.integers(0, 9)),
})


def reference(series: list[tuple[float, dict[str, Any]]], period: int) -> list[dict[str, Any]]:
    """Records of every closed bucket, computed plainly from the series."""
    out: list[dict[str, Any]] = []
    peak = max_dd = 0.0
    prev_close: float | None = None
    first_equity = float(series[0][1]["equity"])
    cur: dict[str, Any] | None = None
    for t, b in series:
        start = int(t // period) * period
        if cur is not None and cur["start"] != start:
            out.append(cur)
            prev_close = cur["equity"]
            cur = None
        equity = float(b["equity"])
        peak = max(peak, equity)
        dd = 1.0 - equity / peak
        max_dd = max(max_dd, dd)
        if cur is None:
            cur = {"start": start, "bars": 0, "traded_notional": 0.0, "risk_breaches": 0,
                   "risk_warnings": 0, "first": t}
        cur["bars"] += 1
        cur["traded_notional"] += float(b["traded_notional"])
        cur["risk_breaches"] += b["risk_breaches"]
        cur["risk_warnings"] += b["risk_warnings"]
        cur.update(equity=equity, peak_equity=peak, drawdown=dd, max_drawdown=max_dd,
                   last=t, realized_pnl=b["realized_pnl"], unrealized_pnl=b["unrealized_pnl"],
                   open_positions=b["open_positions"],
                   pnl=equity - (prev_close if prev_close is not None else first_equity))
    return out


@FUZZ
@given(st.lists(bar, min_size=1, max_size=60))
def test_records_follow_the_definitions_for_any_valid_series(bars: list[dict[str, Any]]) -> None:
    t = float(T0)
    series = []
    for b in bars:
        t += b.pop("gap")
        series.append((t, b))
    series.append((t + 3 * 86400.0, {**series[-1][1]}))  # closes everything before it
    written: list[dict[str, Any]] = []
    with capture(strategy_id="fz") as cap:
        for ts, b in series:
            written += cap.health.maybe_emit(ts, **b)
    for period, seconds in (("1h", 3600), ("24h", 86400)):
        got = [r for r in written if r["period"] == period]
        want = reference(series, seconds)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g["ts"] == iso(w["start"]) and g["bars"] == w["bars"]
            assert g["first_bar_ts"] == iso(w["first"]) and g["last_bar_ts"] == iso(w["last"])
            for key in ("equity", "peak_equity", "drawdown", "max_drawdown", "pnl",
                        "traded_notional"):
                assert g[key] == pytest.approx(w[key], rel=1e-9, abs=1e-9), key
            assert g["turnover"] == pytest.approx(w["traded_notional"] / w["equity"],
                                                  rel=1e-9, abs=1e-12)
            for key in ("risk_breaches", "risk_warnings", "open_positions"):
                assert g[key] == w[key], key
            for key in ("realized_pnl", "unrealized_pnl"):
                assert g[key] == (None if w[key] is None else pytest.approx(w[key])), key


BAD: dict[str, Any] = {
    # equity 0 and below are recorded (a blown account), not refused
    "equity": st.sampled_from([math.nan, math.inf, True, "1", None, -math.inf]),
    "realized_pnl": st.sampled_from([math.nan, math.inf, -math.inf, "x", True]),
    "unrealized_pnl": st.sampled_from([math.nan, -math.inf, b"1", False]),
    "traded_notional": st.sampled_from([-0.5, math.nan, math.inf, "0", None, True]),
    "risk_breaches": st.sampled_from([-1, 1.5, math.nan, "1", True, None]),
    "risk_warnings": st.sampled_from([-2, 0.25, "0", False]),
    "open_positions": st.sampled_from([-1, 2.5, math.inf, "3", True]),
}


@FUZZ
@given(st.sampled_from(sorted(BAD)).flatmap(lambda f: st.tuples(st.just(f), BAD[f])),
       st.booleans())
def test_invalid_values_are_always_refused(bad: tuple[str, Any], fast: bool) -> None:
    field, value = bad
    good: dict[str, Any] = {"equity": 100.0, "realized_pnl": 1.0, "unrealized_pnl": 2.0,
                            "traded_notional": 3.0, "risk_breaches": 0, "risk_warnings": 0,
                            "open_positions": 1}
    with capture(strategy_id="fz", strict=True) as cap:  # strict: bad values raise
        cap.health.maybe_emit(float(T0), **good)
        if fast:  # a second bar in the open hour: the fast path is armed
            cap.health.maybe_emit(float(T0 + 60), **good)
        before = cap.health.state()
        with pytest.raises(BarError) as err:
            cap.health.maybe_emit(float(T0 + 120), **{**good, field: value})
        assert err.value.field == field
        assert cap.health.state() == before  # nothing recorded


class _Raises:
    """A number-like object whose every conversion raises."""

    def __float__(self) -> float:
        raise RuntimeError("float")

    def __index__(self) -> int:
        raise RuntimeError("index")


_nested: list[Any] = []
_nested.append(_nested)
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8), st.binary(max_size=8),
    st.integers(), st.sampled_from([10**300, 10**400, -10**400]),
    st.floats(), st.floats(min_value=-1e6, max_value=1e6),
    st.decimals(), st.fractions(), st.lists(st.integers(), max_size=2),
    st.just(_Raises()), st.just(_nested), st.just(object()),
    # odd zones: far offsets, real zones around the range ends (a tzinfo that raises or
    # answers nonsense is in tests/unit/test_health_refused.py: Hypothesis hashes values)
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                 timezones=st.one_of(st.none(), st.timezones(),
                                     st.just(timezone(timedelta(hours=23, minutes=59))),
                                     st.just(timezone(-timedelta(hours=23, minutes=59))))),
)
FIELDS = ("equity", "realized_pnl", "unrealized_pnl", "traded_notional", "risk_breaches",
          "risk_warnings", "open_positions")
wild_bar = st.fixed_dictionaries(
    {"gap": st.integers(-3600, 8000)},
    optional={name: ANY_VALUE for name in ("ts", *FIELDS)},
)


@FUZZ
@given(st.lists(wild_bar, min_size=1, max_size=40))
def test_any_python_value_never_escapes_and_nothing_is_half_written(
        bars: list[dict[str, Any]]) -> None:
    """Default mode: whatever the bot passes, maybe_emit returns (a refused bar changes
    nothing but the refused count), and every file is whole and valid."""
    t = float(T0)
    with capture(strategy_id="fz", strict=False) as cap:  # default mode
        root = Path(cap.root)
        h = cap.health
        for b in bars:
            t += b.pop("gap")
            ts = b.pop("ts", t)
            fields = {"equity": 100.0, **b}
            before = h.state()
            result = h.maybe_emit(ts, **fields)
            assert isinstance(result, list)
            after = h.state()
            if isinstance(result, Refused):
                assert result == [] and result.field in ("ts", "bar", *FIELDS)
                str(result.error)
                assert after == {**before, "refused": before["refused"] + 1}
            else:
                assert after["refused"] == before["refused"]
        end = max(t, h.last_ts) + 3 * 86400.0
        h.maybe_emit(end, equity=1.0)  # closes whatever is open
        assert h.maybe_emit(end + 86400.0, equity=1.0) != []  # at least one record
        report = validate([str(root)], strict=True)
        assert report.violations == [], report.violations[:3]


def test_decimal_and_fraction_and_timezones_are_accepted() -> None:
    with capture(strategy_id="fz") as cap:
        cap.health.maybe_emit(datetime(2024, 1, 1, 5, tzinfo=timezone(timedelta(hours=5))),
                              equity=Decimal("100.5"), traded_notional=Fraction(1, 4))
        assert cap.health.state()["equity"] == 100.5
