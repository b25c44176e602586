"""The demo bot's parts: the SMA signal, the paper account, the risk limits (no telemetry)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble_otel.demo.broker import PaperBroker, RiskLimits, RiskMonitor
from ensemble_otel.demo.data import DATASETS, data_file, load_bars
from ensemble_otel.demo.strategy import SmaCross


def test_bundled_data_is_real_and_ordered() -> None:
    for name in DATASETS:
        bars = load_bars(name)
        assert len(bars) > 2000
        ts = [b.ts for b in bars]
        assert ts == sorted(ts) and len(set(ts)) == len(ts)
        assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    assert load_bars("EURUSD", 3)[0].close == 1.07219  # the first line of EURUSD.csv


def test_unknown_data_set_is_named() -> None:
    with pytest.raises(ValueError, match=r"--data='BTC': must be one of EURUSD, GOOG"):
        data_file("BTC")


def test_sma_signal_matches_rolling_means() -> None:
    closes = np.array([b.close for b in load_bars("GOOG", 400)])
    fast = np.convolve(closes, np.ones(10) / 10, mode="valid")[20:]  # aligned to slow's end
    slow = np.convolve(closes, np.ones(30) / 30, mode="valid")
    sma = SmaCross(10, 30)
    got = [sma.update(c) for c in closes]
    assert got[:29] == [0] * 29
    expected = []
    last = 0
    for f, s in zip(fast, slow, strict=True):
        last = 1 if f > s else -1 if f < s else last
        expected.append(last)
    assert got[29:] == expected
    assert 1 in expected and -1 in expected


def test_long_only_signal_goes_flat_instead_of_short() -> None:
    sma = SmaCross(2, 3, allow_short=False)
    assert [sma.update(x) for x in (3.0, 2.0, 1.0, 5.0)] == [0, 0, 0, 1]


def test_sma_rejects_bad_windows() -> None:
    with pytest.raises(ValueError, match="fast=30, slow=10"):
        SmaCross(30, 10)


def test_average_price_and_realised_pnl() -> None:
    b = PaperBroker(10_000.0, commission_rate=0.0, lot=1.0)
    for qty, price in ((10, 100.0), (10, 110.0)):
        b.submit(qty, "t", 0.0)
        b.fill_pending(1.0, price)
    assert b.qty == 20 and b.avg_price == 105.0
    b.submit(-15, "t", 0.0)
    (fill,) = b.fill_pending(2.0, 120.0)
    assert fill.realized_pnl == 15 * 15.0 and b.qty == 5 and b.avg_price == 105.0
    b.submit(-10, "t", 0.0)  # closes 5 at a loss, opens 5 short
    (fill,) = b.fill_pending(3.0, 90.0)
    assert fill.realized_pnl == 5 * (90.0 - 105.0)
    assert b.qty == -5 and b.avg_price == 90.0
    assert b.realized_pnl == 225.0 - 75.0


def test_target_counts_pending_orders_and_lots() -> None:
    b = PaperBroker(100_000.0, commission_rate=0.0, lot=1_000.0)
    order = b.target(12_345.0, "signal", 0.0)
    assert order is not None and order.qty == 12_000.0
    assert b.target(12_999.0, "signal", 0.0) is None  # pending already reaches it
    assert b.direction_after_pending() == 1 and b.qty == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.floats(1.0, 1000.0)), min_size=1,
                max_size=40),
       st.floats(0.0, 0.01))
def test_equity_is_cash_plus_realised_plus_unrealised(
    trades: list[tuple[int, float]], commission: float
) -> None:
    b = PaperBroker(1_000_000.0, commission_rate=commission, lot=1.0)
    for qty, price in trades:
        b.submit(float(qty), "t", 0.0)
        b.fill_pending(0.0, price)
        assert b.equity(price) == pytest.approx(
            1_000_000.0 + b.realized_pnl + b.unrealized_pnl(price), rel=1e-9, abs=1e-6)
    assert b.qty == sum(q for q, _ in trades)


LIMITS = RiskLimits(target_exposure=1.0, warn_exposure=1.5, max_exposure=2.0,
                    warn_drawdown=0.05, max_drawdown=0.10, window=4)


def test_risk_events_fire_once_per_crossing() -> None:
    m = RiskMonitor(RiskLimits(1.0, 1.5, 2.0, 0.05, 0.10, window=10))
    seen = []
    for i, equity in enumerate([100.0, 94.0, 93.0, 96.0, 94.0]):
        seen.append([(e.kind, e.limit) for e in m.check(i, equity, 0.5)])
    # 94 is 6% below the peak: a warning; 93, still beyond: nothing new; 96 (4%) re-arms
    assert seen == [[], [("warning", "drawdown")], [], [], [("warning", "drawdown")]]


def test_drawdown_breach_blocks_entries_for_a_window() -> None:
    m = RiskMonitor(LIMITS)
    assert m.check(0, 100.0, 0.5) == []
    (event,) = m.check(1, 89.0, 0.5)
    assert (event.kind, event.limit, event.action) == ("breach", "drawdown", "flatten")
    assert math.isclose(event.value, 0.11) and event.threshold == 0.10
    assert m.entries_blocked(2) and m.entries_blocked(4) and not m.entries_blocked(5)
    assert m.check(2, 89.0, 0.0) == []  # measured afresh from the breach: no repeat


def test_exposure_limits() -> None:
    m = RiskMonitor(LIMITS)
    assert [(e.kind, e.limit) for e in m.check(0, 100.0, 1.6)] == [("warning", "exposure")]
    assert [(e.kind, e.action) for e in m.check(1, 100.0, 2.1)] == [("breach", "reduce")]
    assert m.check(2, 100.0, 2.2) == []
    assert m.check(3, 100.0, 1.0) == []
    assert [e.kind for e in m.check(4, 100.0, 2.5)] == ["breach"]
