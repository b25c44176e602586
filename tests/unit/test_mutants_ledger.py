"""The ledger in detail: which bars take the fast path (the general path says so through
its hooks), the boundaries of the fast path's guard, every field a bar sets on either path,
drawdown floors, hour folds, drops, refusals and the Refused result."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ensemble_otel.errors import BarError
from ensemble_otel.health import ledger as ledger_mod
from ensemble_otel.health.checks import TS_MAX
from ensemble_otel.health.ledger import NOTIONAL_ROOM, Ledger, Refused, turnover

H0 = 1_709_251_200.0  # 2024-03-01T00:00:00Z
INF = math.inf


class Spy(Ledger):
    """A ledger that notes what its general path does."""

    def __init__(self, *, strict: bool = False) -> None:
        self._init_ledger(strict=strict)
        self.general = 0
        self.drops: list[float] = []
        self.refusals: list[BarError] = []
        self.closes: list[float] = []
        self.publishes = 0

    def _accepted(self) -> None:
        self.general += 1

    def _dropped(self, t: float) -> None:
        self.drops.append(t)

    def _refused(self, error: BarError) -> None:
        self.refusals.append(error)

    def _close(self, t: float) -> list[dict[str, Any]]:
        self.closes.append(t)
        return super()._close(t)

    def _publish(self) -> None:
        self.publishes += 1
        super()._publish()


def _bar(ledger: Ledger, t: float, equity: float = 100.0, **fields: Any) -> Any:
    values: dict[str, Any] = {"realized_pnl": 0.0, "unrealized_pnl": 0.0,
                              "traded_notional": 0.0, "risk_breaches": 0,
                              "risk_warnings": 0, "open_positions": 0}
    values.update(fields)
    return ledger.maybe_emit(t, equity=equity, **values)


def _opened(**fields: Any) -> Spy:
    """A ledger whose open hour is H0's (one bar at H0 + 1 on the general path)."""
    spy = Spy()
    assert _bar(spy, H0 + 1.0, **fields) == []
    assert spy.general == 1 and spy.closes == [H0 + 1.0]
    return spy


# -- which bars take the fast path ------------------------------------------------------------


def test_an_exact_bar_in_the_open_hour_takes_the_fast_path() -> None:
    spy = _opened()
    assert _bar(spy, H0 + 2.0, 101.0, realized_pnl=1.5, unrealized_pnl=-0.5,
                traded_notional=3.0, risk_breaches=2, risk_warnings=1, open_positions=4) == []
    assert spy.general == 1
    assert (spy._writing, spy.last_ts, spy.equity, spy.realized, spy.unrealized,
            spy.positions) == (H0 + 2.0, H0 + 2.0, 101.0, 1.5, -0.5, 4)
    assert (spy._h_bars, spy._h_notional, spy._h_breaches, spy._h_warnings) == (2, 3.0, 2, 1)
    assert spy.peak == 101.0 and spy._dd_floor == 101.0 * (1.0 + 1e-12)
    _bar(spy, H0 + 3.0, 101.0, traded_notional=2.0, risk_breaches=1, risk_warnings=3)
    assert (spy._h_bars, spy._h_notional, spy._h_breaches, spy._h_warnings) == (3, 5.0, 3, 4)
    assert spy.general == 1


@pytest.mark.parametrize(("fields", "fast"), [
    ({"equity": 1e-8}, False),
    ({"equity": 1.0000001e-8}, True),
    ({"equity": 0.0}, False),
    ({"traded_notional": 0.0}, True),
    ({"risk_breaches": 0xFFFFFFFF, "risk_warnings": 0xFFFFFFFF,
      "open_positions": 0xFFFFFFFF}, True),
    ({"risk_breaches": 0x100000000}, False),
    ({"risk_warnings": 0x100000000}, False),
    ({"open_positions": 0x100000000}, False),
    ({"open_positions": -1}, False),
    ({"realized_pnl": 1e308, "unrealized_pnl": 1e308}, False),
    ({"equity": 1e308, "traded_notional": 1e308}, False),
    ({"realized_pnl": None}, False),
    ({"unrealized_pnl": 1}, False),
    ({"traded_notional": 1}, False),
    ({"risk_breaches": True}, False),
    ({"risk_warnings": 1.0}, False),
    ({"open_positions": None}, False),
])
def test_the_fast_path_guard(fields: dict[str, Any], fast: bool) -> None:
    spy = _opened()
    fields = dict(fields)  # the parameter itself is kept for the next run
    equity = fields.pop("equity", 100.0)
    _bar(spy, H0 + 2.0, equity, **fields)
    if fast:
        assert spy.general == 1 and spy.refusals == []
    else:  # the general path: accepted there, or refused
        assert spy.general + len(spy.refusals) == 2


def test_a_bar_at_the_last_bar_time_or_at_the_hour_end_takes_the_general_path() -> None:
    spy = _opened()
    _bar(spy, H0 + 1.0)
    assert spy.drops == [H0 + 1.0] and spy.dropped == 1 and spy.general == 1
    _bar(spy, H0 + 3599.0)
    assert spy.general == 1
    _bar(spy, H0 + 3600.0)
    assert spy.general == 2 and spy.closes == [H0 + 1.0, H0 + 3600.0]


def test_a_bar_reaching_the_notional_cap_takes_the_general_path() -> None:
    spy = _opened(traded_notional=1.0)
    spy._n_cap = 3.0
    _bar(spy, H0 + 2.0, traded_notional=1.5)  # 2.5 < 3: fast
    assert spy.general == 1
    _bar(spy, H0 + 3.0, traded_notional=0.5)  # 3.0: the general path
    assert spy.general == 2 and spy._h_notional == 3.0


def test_a_float_ts_out_of_range_is_refused_on_the_general_path() -> None:
    spy = _opened()
    result = _bar(spy, TS_MAX)
    assert isinstance(result, Refused) and (result.field, result.value) == ("ts", TS_MAX)
    assert result.rule == ("must be unix seconds between 1970-01-01 and 9999-12-31 (is it in "
                           "milliseconds?)")
    assert spy.refused == 1 and spy.last_ts == H0 + 1.0


def test_a_closing_bar_of_exact_types_is_not_checked_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _opened()

    def no_check(*fields: Any) -> Any:
        raise AssertionError("checked again")

    monkeypatch.setattr(ledger_mod.checks, "check_bar", no_check)
    assert _bar(spy, H0 + 3600.0, 90.0, traded_notional=2.0) == []
    assert spy.general == 2 and spy._h_bars == 1 and spy._c_bars == 1


# -- the general path -------------------------------------------------------------------------


def test_the_first_bar_sets_first_equity_peak_and_first_times() -> None:
    spy = Spy()
    _bar(spy, H0 + 5.0, -20.0, traded_notional=4.0, risk_breaches=1, risk_warnings=2,
         open_positions=None, realized_pnl=None)
    assert (spy.first_equity, spy.peak, spy.equity) == (-20.0, -20.0, -20.0)
    assert spy._dd_floor == -INF and spy.drawdown == 0.0
    assert spy._hour.first_ts == H0 + 5.0 and spy._day.first_ts == H0 + 5.0
    assert (spy._h_bars, spy._h_notional, spy._h_breaches, spy._h_warnings) == (1, 4.0, 1, 2)
    assert spy.realized is None and spy.positions is None
    assert spy._hour_end == H0 + 3600.0 and spy._end == H0 + 3600.0
    assert spy._hour.start == int(H0) and spy._day.start == int(H0)


def test_general_path_peak_and_drawdown() -> None:
    spy = Spy()
    _bar(spy, H0 + 1.0, 100.0, realized_pnl=None)
    _bar(spy, H0 + 2.0, 120.0, realized_pnl=None)
    assert spy.peak == 120.0 and spy.max_drawdown == 0.0
    assert spy._dd_floor == 120.0 * (1.0 + 1e-12)
    _bar(spy, H0 + 3.0, 90.0, realized_pnl=None)
    assert spy.max_drawdown == 1.0 - 90.0 / 120.0
    assert spy._dd_floor == 120.0 * (1.0 - spy.max_drawdown + 1e-12)
    _bar(spy, H0 + 4.0, 100.0, realized_pnl=None)  # above the floor: unchanged
    assert spy.max_drawdown == 1.0 - 90.0 / 120.0 and spy.drawdown == 1.0 - 100.0 / 120.0
    assert spy.general == 4


def test_fast_path_peak_and_drawdown() -> None:
    spy = _opened()
    _bar(spy, H0 + 2.0, 120.0)
    assert spy.peak == 120.0 and spy._dd_floor == 120.0 * (1.0 + 1e-12)
    _bar(spy, H0 + 3.0, 90.0)
    assert spy.max_drawdown == 1.0 - 90.0 / 120.0
    assert spy._dd_floor == 120.0 * (1.0 - spy.max_drawdown + 1e-12)
    _bar(spy, H0 + 4.0, 60.0)
    assert spy.max_drawdown == 0.5
    _bar(spy, H0 + 5.0, 80.0)
    assert spy.max_drawdown == 0.5 and spy.peak == 120.0
    _bar(spy, H0 + 6.0, 130.0)
    assert spy._dd_floor == 130.0 * (1.0 - 0.5 + 1e-12)
    assert spy.general == 1


def test_an_equity_at_the_floor_leaves_the_max_drawdown() -> None:
    spy = _opened()
    spy.max_drawdown = 0.5
    spy._reset_dd_floor()
    floor = spy._dd_floor
    assert floor == 100.0 * (0.5 + 1e-12)
    _bar(spy, H0 + 2.0, floor)
    assert spy.max_drawdown == 0.5
    spy._deeper(50.0)  # exactly the max drawdown: not deeper
    assert spy.max_drawdown == 0.5 and spy._dd_floor == floor
    spy._deeper(40.0)
    assert spy.max_drawdown == 0.6 and spy._dd_floor == 100.0 * (1.0 - 0.6 + 1e-12)


def test_reset_dd_floor_without_a_positive_peak() -> None:
    spy = Spy()
    spy.peak = 0.0
    spy._reset_dd_floor()
    assert spy._dd_floor == -INF
    spy.peak, spy.max_drawdown = 10.0, 0.25
    spy._reset_dd_floor()
    assert spy._dd_floor == 10.0 * (0.75 + 1e-12)


def test_hour_fold_moves_the_sums() -> None:
    spy = _opened(traded_notional=2.0, risk_breaches=1, risk_warnings=3)
    _bar(spy, H0 + 10.0, traded_notional=1.0, risk_warnings=1)
    h, d = spy._hour, spy._day
    assert spy._roll(int(H0) + 3600, int(H0)) == [h]
    assert (h.bars, h.notional, h.breaches, h.warnings, h.last_ts) == (2, 3.0, 1, 4, H0 + 10.0)
    spy._open(int(H0) + 3600, int(H0))
    _bar(spy, H0 + 3600.0 + 5, 99.0, traded_notional=4.0, risk_breaches=2)
    assert (h.bars, h.notional, h.breaches, h.warnings) == (0, 0.0, 0, 0)  # reset
    assert (d.bars, d.notional, d.breaches, d.warnings, d.last_ts) == (2, 3.0, 1, 4, H0 + 10.0)
    assert (spy._c_bars, spy._c_notional, spy._c_breaches, spy._c_warnings) == (2, 3.0, 1, 4)
    assert (spy._h_bars, spy._h_notional, spy._h_breaches, spy._h_warnings) == (1, 4.0, 2, 0)
    assert spy._n_cap == NOTIONAL_ROOM - 3.0
    assert (spy.total_bars, spy.total_notional, spy.total_breaches, spy.total_warnings) == (
        3, 7.0, 3, 4)
    assert h.start == int(H0) + 3600 and h.first_ts == H0 + 3605.0
    assert d.first_ts == H0 + 1.0 and spy._end == H0 + 7200.0


def test_a_new_day_resets_the_day() -> None:
    spy = _opened(traded_notional=2.0)
    _bar(spy, H0 + 86400.0 + 7.0, traded_notional=1.0)
    d = spy._day
    assert d.start == int(H0) + 86400 and d.bars == 0 and d.notional == 0.0
    assert d.first_ts == H0 + 86407.0 and spy._hour.first_ts == H0 + 86407.0


def test_roll_in_the_open_hour_folds_nothing() -> None:
    spy = _opened(traded_notional=2.0)
    assert spy._roll(int(H0), int(H0)) == []
    assert spy._h_bars == 1 and spy._c_bars == 0
    assert spy._roll(int(H0) + 3600, int(H0)) == [spy._hour]
    assert spy._h_bars == 0 and spy._c_bars == 1
    assert spy._roll(int(H0) + 86400, int(H0) + 86400) == [spy._hour, spy._day]


def test_late_bars_and_bars_on_disk_are_dropped() -> None:
    spy = _opened()
    _bar(spy, H0 + 0.5)
    assert spy.drops == [H0 + 0.5] and spy.dropped == 1
    fresh = Spy()
    fresh._hour.last_written = int(H0)
    assert _bar(fresh, H0 + 10.0) == [] and fresh.drops == [H0 + 10.0]
    assert _bar(fresh, H0 + 3600.0) == [] and fresh.general == 1


def test_an_inactive_ledger_ignores_valid_bars() -> None:
    spy = _opened()
    spy._active = False
    spy._hour_end = -INF
    assert _bar(spy, H0 + 5.0, 50.0) == []
    assert spy.equity == 100.0 and spy.general == 1 and spy.dropped == 0


def test_a_request_for_a_copy_is_answered_by_the_general_path() -> None:
    spy = _opened()
    spy._copy_req, spy._hour_end = True, -INF
    _bar(spy, H0 + 5.0)
    assert spy.publishes == 1 and spy._copy_req is False and spy._hour_end == H0 + 3600.0
    _bar(spy, H0 + 6.0)
    assert spy.publishes == 1


# -- refusals -----------------------------------------------------------------------------------


def test_refused_bar() -> None:
    spy = _opened()
    result = _bar(spy, H0 + 5.0, math.nan)
    assert isinstance(result, Refused) and result == [] and result.refused is True
    assert (result.field, result.value, result.rule) == (
        "equity", result.error.value, "must be finite (not NaN or infinity)")
    assert math.isnan(result.value)
    assert repr(result) == f"Refused({result.error})"
    assert spy.refused == 1 and spy.refusals == [result.error] and spy.equity == 100.0


def test_strict_ledger_raises() -> None:
    spy = Spy(strict=True)
    with pytest.raises(BarError) as info:
        _bar(spy, H0 + 5.0, math.inf)
    assert info.value.field == "equity" and spy.refused == 0 and spy.refusals == []


def test_a_bar_whose_fields_cannot_be_read() -> None:
    spy = Spy()

    class Odd:
        @property  # type: ignore[misc]
        def __class__(self) -> type:  # isinstance() asks for it, and it raises
            raise RuntimeError("no")

    result = spy._bar(H0, 1.0, None, None, 0.0, 0, 0, [1, 2])
    assert isinstance(result, Refused) and result.field == "open_positions"
    odd = Odd()
    result = spy._bar(odd, 1.0, None, None, 0.0, 0, 0, None)
    assert isinstance(result, Refused) and result.field == "bar"
    assert result.value == (odd, 1.0, None, None, 0.0, 0, 0, None)
    assert result.rule == "could not be read (RuntimeError)"


def test_notional_that_would_overflow_is_refused() -> None:
    spy = _opened(traded_notional=1e308)
    result = _bar(spy, H0 + 5.0, traded_notional=1e308)
    assert isinstance(result, Refused) and result.field == "traded_notional"
    assert result.value == 1e308
    assert result.rule == (
        "must keep the running sums of traded_notional (the hour's, the day's, the total) "
        "and turnover (sum / |equity|) finite; it would overflow to infinity")
    low = _opened()
    assert _bar(low, H0 + 5.0, 1e-9, traded_notional=1.0) == []  # below the equity floor: checked
    assert low.general == 2 and low._h_notional == 1.0


# -- small things -------------------------------------------------------------------------------


def test_turnover() -> None:
    assert turnover(10.0, -4.0) == 2.5 and turnover(10.0, 0.0) is None


def test_arm_derives_the_fast_path_fields() -> None:
    spy = Spy()
    spy._end, spy._c_notional, spy.last_ts = H0 + 3600.0, 4e299, H0 + 9.0
    spy.peak, spy.max_drawdown = 10.0, 0.5
    spy._arm()
    assert spy._hour_end == H0 + 3600.0 and spy._n_cap == 6e299
    assert spy._writing == H0 + 9.0 and spy._dd_floor == 10.0 * (0.5 + 1e-12)


def test_a_new_ledger() -> None:
    spy = Spy()
    assert (spy.strict, spy._active, spy._copy_req, spy._rolling, spy._rolls) == (
        False, True, False, False, 0)
    assert (spy.equity, spy.first_equity, spy.peak, spy.max_drawdown, spy._dd_floor) == (
        None, None, 0.0, 0.0, 0.0)
    assert (spy.last_ts, spy._writing, spy._end, spy._hour_end, spy._n_cap) == (
        -INF, -INF, -INF, -INF, NOTIONAL_ROOM)
    assert (spy.dropped, spy.refused, spy.total_bars, spy.total_notional, spy.drawdown) == (
        0, 0, 0, 0.0, 0.0)
    assert (spy._hour.period, spy._day.period) == ("1h", "24h")
    assert Spy(strict=True).strict is True
    plain = Ledger()
    plain._init_ledger()
    plain._copy_req = True
    plain._publish()
    assert plain._copy_req is False


def test_a_bar_in_the_open_hour_after_its_end_was_cleared_closes_nothing() -> None:
    spy = _opened(traded_notional=2.0)
    spy._end = spy._hour_end = -INF  # as after a restore: the general path decides
    _bar(spy, H0 + 5.0, traded_notional=1.0)
    assert spy.closes == [H0 + 1.0, H0 + 5.0]
    assert (spy._h_bars, spy._h_notional, spy._c_bars) == (2, 3.0, 0)
    assert spy._end == H0 + 3600.0


def test_the_notional_cap_shrinks_by_the_closed_hours_total() -> None:
    spy = _opened(traded_notional=4e299)
    spy._roll(int(H0) + 3600, int(H0))
    assert spy._n_cap == NOTIONAL_ROOM - 4e299 == 6e299
    spy._open(int(H0) + 3600, int(H0))
    _bar(spy, H0 + 3601.0)  # opens the hour (general path)
    _bar(spy, H0 + 3602.0, traded_notional=5e299)  # below the cap: fast
    assert spy.general == 2
    _bar(spy, H0 + 3603.0, traded_notional=2e299)  # 7e299 reaches the cap: general
    assert spy.general == 3 and spy._h_notional == 7e299


def test_a_new_ledgers_levels_and_buckets() -> None:
    spy = Spy()
    assert (spy.realized, spy.unrealized, spy.positions) == (None, None, None)
    assert (spy._hour.seconds, spy._day.seconds) == (3600, 86400)


def test_a_peak_below_one_still_has_a_drawdown_floor() -> None:
    spy = _opened()
    spy.peak, spy.max_drawdown = 0.5, 0.0
    spy._reset_dd_floor()
    assert spy._dd_floor == 0.5 * (1.0 + 1e-12)
    _bar(spy, H0 + 2.0, 0.25)  # the fast path finds it below the floor
    assert spy.max_drawdown == 0.5 and spy.general == 1
