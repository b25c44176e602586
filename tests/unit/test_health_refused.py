"""The bar path never raises by default: bad bars are refused, counted, logged once a
minute, and the call says so; equity <= 0 is recorded; replays say what they drop; the
first accepted bar wakes whoever asked."""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import pytest
from test_health_bad_input import BAD, BAD_TS
from unit_support import at, snapshot_records

import ensemble_otel
from ensemble_otel import BarError
from ensemble_otel.contract import registry as names
from ensemble_otel.health import HealthSnapshotEmitter, Refused
from ensemble_otel.testing import Capture, capture


@pytest.fixture
def cap(root: Path) -> Iterator[Capture]:
    """Default mode (strict off, whatever the test kit's default): bad bars are refused."""
    with capture(root=root, strategy_id="s1", strict=False) as c:
        yield c


def _start(cap: Capture) -> None:
    cap.health.maybe_emit(at(0, 10), equity=100.0, traded_notional=1.0, risk_breaches=1)
    cap.health.maybe_emit(at(0, 20), equity=90.0, traded_notional=2.0)


def _assert_refused_and_nothing_recorded(cap: Capture, result: Any, field: str,
                                         refused: int = 1) -> None:
    assert isinstance(result, Refused) and result == [] and not result
    assert result.refused is True and result.field == field
    assert isinstance(result.error, BarError) and result.error.field == field
    assert result.rule and field in str(result.error)
    assert not (cap.root / "logs" / "1h").exists()
    assert cap.metric(names.BARS_REFUSED).value == refused
    assert cap.health.state()["refused"] == refused
    [record] = cap.health.maybe_emit(at(1, 5), equity=95.0)
    assert (record["bars"], record["equity"], record["peak_equity"]) == (2, 90.0, 100.0)
    assert (record["traded_notional"], record["risk_breaches"]) == (3.0, 1)
    assert record["bars_refused"] == refused
    assert snapshot_records(cap.root, "1h", "s1") == [record]
    assert cap.metric(names.BARS_DROPPED).value == 0


@pytest.mark.parametrize(("field", "value", "rule"), BAD,
                         ids=[f"{f}={v!r}"[:40] for f, v, _ in BAD])
def test_bad_field_is_refused_without_raising(cap: Capture, field: str, value: Any,
                                              rule: str) -> None:
    _start(cap)
    result = cap.health.maybe_emit(at(1, 0), **{"equity": 95.0, field: value})
    assert rule in result.rule
    _assert_refused_and_nothing_recorded(cap, result, field)


@pytest.mark.parametrize(("ts", "rule"), BAD_TS, ids=[repr(t)[:40] for t, _ in BAD_TS])
def test_bad_ts_is_refused_without_raising(cap: Capture, ts: Any, rule: str) -> None:
    _start(cap)
    result = cap.health.maybe_emit(ts, equity=95.0)
    assert rule in result.rule
    _assert_refused_and_nothing_recorded(cap, result, "ts")


class _FloatRaises:
    def __float__(self) -> float:
        raise RuntimeError("no float today")


class _ReprRaises(float):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _IndexRaises:
    def __index__(self) -> int:
        raise KeyError("no index")


class _BadZone(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta:
        raise ZeroDivisionError("broken zone")


class _NoneZone(tzinfo):
    def utcoffset(self, dt: datetime | None) -> None:
        return None


_loop: list[Any] = []
_loop.append(_loop)
HOSTILE: list[tuple[str, Any]] = [
    ("equity", _FloatRaises()),
    ("equity", _ReprRaises("nan")),
    ("equity", _loop),
    ("equity", 10**5000),  # too many digits even for repr's default limit
    ("equity", "\x1b[31mred\x07"),
    ("traded_notional", _FloatRaises()),
    ("risk_breaches", _IndexRaises()),
    ("risk_warnings", 10**40),
    ("open_positions", 2**40),
    ("ts", datetime(2024, 3, 1, 1, tzinfo=_BadZone())),
    ("ts", 10**5000),
    ("ts", _FloatRaises()),
]


@pytest.mark.parametrize(("field", "value"), HOSTILE, ids=[f"{f}-{i}" for i, (f, _) in
                                                           enumerate(HOSTILE)])
def test_hostile_values_are_refused_and_printable(
    cap: Capture, caplog: pytest.LogCaptureFixture, field: str, value: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    _start(cap)
    fields: dict[str, Any] = {"equity": 95.0}
    ts: Any = at(1, 0)
    if field == "ts":
        ts = value
    else:
        fields[field] = value
    result = cap.health.maybe_emit(ts, **fields)
    str(result.error)  # printable, whatever the value
    [message] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert field in message and "\x1b" not in message and "\x07" not in message
    _assert_refused_and_nothing_recorded(cap, result, field)


def test_naive_offset_tzinfo_is_taken_as_utc(cap: Capture) -> None:
    cap.health.maybe_emit(datetime(2024, 3, 1, 0, 10, tzinfo=_NoneZone()), equity=1.0)
    assert cap.health.last_ts == at(0, 10)


def test_refusals_are_logged_once_a_minute_naming_field_value_and_rule(
    cap: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    _start(cap)
    for _ in range(50):
        result = cap.health.maybe_emit(at(0, 30), equity=math.nan)
        assert result.refused and result.value is math.nan
    cap.health.maybe_emit(at(0, 40), equity=1.0, risk_breaches=-3)
    messages = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(messages) == 1, messages
    assert "equity=nan" in messages[0] and "finite" in messages[0]
    assert cap.metric(names.BARS_REFUSED).value == 51
    [hour0] = cap.health.maybe_emit(at(1, 5), equity=2.0)
    assert hour0["bars_refused"] == 51 and hour0["bars"] == 2
    [hour1] = cap.health.maybe_emit(at(2, 5), equity=2.0)
    assert hour1["bars_refused"] == 0  # counted once, in the next record of each period
    written = cap.health.maybe_emit(at(0, 5, days=1), equity=2.0)
    [day0] = [r for r in written if r["period"] == "24h"]
    assert day0["bars_refused"] == 51


def test_strict_setting_and_environment_raise(root: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSEMBLE_STRICT", "1")
    with capture(root=root, strategy_id="s1") as cap:
        assert cap.telemetry.settings.strict is True
        with pytest.raises(BarError, match="equity"):
            cap.health.maybe_emit(at(0, 1), equity=math.nan)
        assert cap.metric_names() & {names.BARS_REFUSED} == set()  # no bar yet: no point


def test_refused_count_survives_a_restart(root: Path) -> None:
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        cap.health.maybe_emit(at(0, 1), equity=1.0)
        cap.health.maybe_emit(at(0, 2), equity=None)
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        assert cap.metric(names.BARS_REFUSED).value == 1
        [record] = cap.health.maybe_emit(at(1, 1), equity=1.0)
    assert record["bars_refused"] == 1


# -- equity <= 0: recorded, with definitions a hand computation checks ------------------------


def test_blown_account_is_recorded_by_hand_computation(cap: Capture) -> None:
    h = cap.health
    h.maybe_emit(at(0, 10), equity=100.0, traded_notional=50.0)
    h.maybe_emit(at(0, 20), equity=120.0)  # the peak
    h.maybe_emit(at(0, 30), equity=-30.0, traded_notional=60.0)  # margin call: owes 30
    [hour0] = h.maybe_emit(at(1, 0), equity=0.0, traded_notional=10.0)
    assert hour0["equity"] == -30.0 and hour0["peak_equity"] == 120.0
    assert hour0["drawdown"] == hour0["max_drawdown"] == (120.0 - -30.0) / 120.0  # 1.25
    assert hour0["pnl"] == -30.0 - 100.0
    assert hour0["turnover"] == (50.0 + 60.0) / 30.0  # traded notional / |equity|
    [hour1] = h.maybe_emit(at(2, 0), equity=60.0)
    assert hour1["equity"] == 0.0 and hour1["drawdown"] == 1.0  # nothing left
    assert hour1["max_drawdown"] == 1.25 and hour1["pnl"] == 0.0 - -30.0
    assert hour1["turnover"] is None  # traded 10 against no equity: undefined
    assert cap.metric(names.DRAWDOWN).value == 1.0 - 60.0 / 120.0
    assert cap.metric(names.DRAWDOWN_MAX).value == 1.25
    assert cap.metrics(names.BUCKET_TURNOVER) == []  # the last hour's is undefined: no point
    assert snapshot_records(cap.root, "1h", "s1") == [hour0, hour1]
    from ensemble_otel.validate import validate

    report = validate([str(cap.root)], strict=True)
    assert report.violations == [], report.violations


def test_account_that_starts_below_zero(cap: Capture) -> None:
    """The first bar sets the peak whatever its sign; drawdown is 0 while peak <= 0."""
    h = cap.health
    h.maybe_emit(at(0, 10), equity=-10.0)
    h.maybe_emit(at(0, 20), equity=-5.0, traded_notional=5.0)
    [hour0] = h.maybe_emit(at(1, 0), equity=-20.0)
    assert (hour0["peak_equity"], hour0["drawdown"], hour0["max_drawdown"]) == (-5.0, 0.0, 0.0)
    assert hour0["turnover"] == 5.0 / 5.0 and hour0["pnl"] == -5.0 - -10.0
    h.maybe_emit(at(1, 10), equity=50.0)  # the first positive peak
    [hour1] = h.maybe_emit(at(2, 0), equity=20.0)
    assert (hour1["peak_equity"], hour1["drawdown"]) == (50.0, 0.0)
    [hour2] = h.maybe_emit(at(3, 0), equity=1.0)
    assert hour2["drawdown"] == hour2["max_drawdown"] == 1.0 - 20.0 / 50.0


# -- replays and restarts say what they drop ----------------------------------------------------


def test_a_replay_into_a_recorded_root_says_so_once_and_at_shutdown(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bars = [(at(0, 10 * i), 100.0 + i) for i in range(30)]
    with capture(root=root, strategy_id="demo") as cap:
        for ts, equity in bars:
            cap.health.maybe_emit(ts, equity=equity)
    caplog.set_level(logging.INFO, logger="ensemble_otel")
    with capture(root=root, strategy_id="demo") as cap:
        for ts, equity in bars:
            assert cap.health.maybe_emit(ts, equity=equity) == []
        caplog.clear()
    messages = [r.getMessage() for r in caplog.records]
    summary = [m for m in messages if "30 bar(s) of this run were already recorded" in m]
    assert len(summary) == 1 and "demo" in summary[0], messages


def test_first_drop_of_a_replay_is_announced_once(root: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with capture(root=root, strategy_id="demo") as cap:
        cap.health.maybe_emit(at(14), equity=1.0)
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    with capture(root=root, strategy_id="demo") as cap:
        for minutes in range(0, 14 * 60 + 1, 30):
            cap.health.maybe_emit(at(0, minutes), equity=1.0)
        said = [r.getMessage() for r in caplog.records if "already recorded" in r.getMessage()]
        assert said == ["ensemble-otel health: bars up to 2024-03-01T14:00:00Z are already "
                        "recorded for demo; replaying them adds nothing (they are dropped and "
                        "counted)"]


# -- the first accepted bar wakes whoever asked --------------------------------------------------


def test_on_first_bar_is_called_once_on_the_first_accepted_bar(root: Path) -> None:
    calls: list[float] = []
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        tel = cap.telemetry
        h = HealthSnapshotEmitter(tel.settings, meter=tel.meter_provider.get_meter("t"),
                                  appender=tel._appender,
                                  on_first_bar=lambda: calls.append(h.last_ts))
        assert h.maybe_emit(at(0, 1), equity=math.nan).refused
        assert calls == []
        for minute in range(2, 10):
            h.maybe_emit(float(at(0, minute)), equity=1.0, realized_pnl=0.0,
                         unrealized_pnl=0.0, traded_notional=0.0, risk_breaches=0,
                         risk_warnings=0, open_positions=0)
        assert calls == [at(0, 2)]
        h.close()


def test_on_first_bar_after_a_restart_mid_hour(root: Path) -> None:
    """The open hour continues after a restart (the fast path is armed): the first bar of
    the new process still wakes the caller."""
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        cap.health.maybe_emit(at(0, 1), equity=1.0)
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        tel = cap.telemetry
        calls: list[int] = []
        cap.health.close()
        h = HealthSnapshotEmitter(tel.settings, meter=tel.meter_provider.get_meter("t"),
                                  appender=tel._appender, on_first_bar=lambda: calls.append(1))
        h.maybe_emit(float(at(0, 2)), equity=1.0, realized_pnl=0.0, unrealized_pnl=0.0,
                     traded_notional=0.0, risk_breaches=0, risk_warnings=0, open_positions=0)
        h.maybe_emit(float(at(0, 3)), equity=1.0, realized_pnl=0.0, unrealized_pnl=0.0,
                     traded_notional=0.0, risk_breaches=0, risk_warnings=0, open_positions=0)
        assert calls == [1]
        h.close()


def test_on_first_bar_that_raises_never_reaches_the_bot(root: Path) -> None:
    def boom() -> None:
        raise RuntimeError("wake-up failed")

    with capture(root=root, strategy_id="s1", strict=False) as cap:
        tel = cap.telemetry
        h = HealthSnapshotEmitter(tel.settings, meter=tel.meter_provider.get_meter("t"),
                                  appender=tel._appender, on_first_bar=boom)
        assert h.maybe_emit(at(0, 1), equity=1.0) == []
        h.close()


def test_health_snapshot_emitter_with_no_arguments_is_the_configured_one(root: Path) -> None:
    with capture(root=root, strategy_id="s1", strict=False) as cap:
        assert HealthSnapshotEmitter() is cap.health
    telemetry = ensemble_otel.configure(root=root, strategy_id="s2")
    assert HealthSnapshotEmitter() is telemetry.health
    assert sys.modules["ensemble_otel.health"].HealthSnapshotEmitter is HealthSnapshotEmitter


def test_utc_offsets_far_from_zero(cap: Capture) -> None:
    plus14 = timezone(timedelta(hours=14))
    cap.health.maybe_emit(datetime(2024, 3, 1, 14, 5, tzinfo=plus14), equity=1.0)
    assert cap.health.last_ts == at(0, 5)


@pytest.mark.parametrize(("field", "value"), [
    ("risk_breaches", 2**32), ("risk_warnings", 2**32), ("open_positions", 2**32),
    ("risk_breaches", -1), ("risk_warnings", -1), ("open_positions", 2**40),
    ("open_positions", -2), ("traded_notional", -0.5), ("equity", 1e-9),
    ("realized_pnl", math.nan), ("unrealized_pnl", math.inf), ("traded_notional", math.inf),
    ("ts", None),
])
def test_counts_out_of_range_on_the_fast_path(cap: Capture, field: str, value: Any) -> None:
    """Every field of its exact type (the fast path's shape): the range checks still hold."""
    full: dict[str, Any] = dict(equity=100.0, realized_pnl=0.0, unrealized_pnl=0.0,
                                traded_notional=0.0, risk_breaches=0, risk_warnings=0,
                                open_positions=0)
    cap.health.maybe_emit(at(0, 1), **full)
    cap.health.maybe_emit(at(0, 2), **full)  # the fast path is armed
    if field == "ts":  # the same time again, every field exact: a duplicate, dropped
        assert cap.health.maybe_emit(at(0, 2), **full) == []
        assert (cap.health.dropped, cap.health.total_bars) == (1, 2)
        return
    result = cap.health.maybe_emit(at(0, 3), **{**full, field: value})
    if field == "equity":  # tiny but valid: the general path takes it
        assert result == [] and not getattr(result, "refused", False)
        assert cap.health.equity == 1e-9
    else:
        assert result.refused and result.field == field
        assert cap.health.total_bars == 2


@pytest.mark.parametrize("ts", [math.inf, 253402300800.0, 1e300, math.nan])
def test_a_closing_bar_of_exact_types_with_a_time_out_of_range_is_refused(
        cap: Capture, ts: float) -> None:
    """Every field of its exact type and valid but the time, which is after the open hour:
    the closing shortcut still refuses a time outside the calendar, naming ts."""
    full: dict[str, Any] = dict(equity=100.0, realized_pnl=0.0, unrealized_pnl=0.0,
                                traded_notional=0.0, risk_breaches=0, risk_warnings=0,
                                open_positions=0)
    cap.health.maybe_emit(at(0, 1), **full)
    result = cap.health.maybe_emit(ts, **full)
    assert result.refused and result.field == "ts"
    assert (cap.health.total_bars, cap.health.refused) == (1, 1)
    assert not (cap.root / "logs" / "1h").exists()
    [record] = cap.health.maybe_emit(at(1, 0), **full)  # the next good bar closes the hour
    assert (record["bars"], record["bars_refused"]) == (1, 1)


def test_a_closing_bar_of_exact_types_records_as_the_general_path_does(root: Path) -> None:
    """The same bars as exact floats and ints (the closing shortcut) and as other numbers
    (the field-by-field check): the same records, the same state."""
    from decimal import Decimal

    runs = []
    for shape in (float, Decimal):
        with capture(root=root / shape.__name__, strategy_id="s1") as c:
            for i in range(60):
                equity = 100.0 + (i * 37 % 11) - 5
                ts = at(i // 3, (i % 3) * 20)
                c.health.maybe_emit(ts if shape is float else int(ts), equity=shape(equity),
                                    realized_pnl=shape(i / 4), unrealized_pnl=shape(-1.5),
                                    traded_notional=shape(10.0 * (i % 2)),
                                    risk_breaches=i % 2, risk_warnings=1, open_positions=i % 3)
            state = c.health.state()
            runs.append((snapshot_records(c.root, "1h", "s1"), state))
    (records_a, state_a), (records_b, state_b) = runs
    assert len(records_a) == 19 and records_a == records_b
    assert state_a == state_b


@pytest.mark.parametrize("field", ["risk_breaches", "risk_warnings", "open_positions"])
def test_a_whole_float_count_above_count_max_is_refused(root: Path, field: str) -> None:
    """A count given as a whole float beyond COUNT_MAX is refused like the same int: it
    used to pass, and the hour's close then raised out of maybe_emit (the record lost)."""
    from ensemble_otel.health.checks import COUNT_MAX

    with capture(root=root, strategy_id="s1", strict=False) as cap:
        assert cap.health.maybe_emit(at(0, 1), equity=1.0) == []
        result = cap.health.maybe_emit(at(0, 2), equity=1.0, **{field: 1e20})
        assert result.refused and result.field == field
        assert result.rule == f"must be a whole number >= 0 and <= {COUNT_MAX}"
        kept = cap.health.maybe_emit(at(0, 3), equity=1.0, **{field: float(COUNT_MAX)})
        assert kept == [] and not getattr(kept, "refused", False)
        [record] = cap.health.maybe_emit(at(1, 1), equity=1.0)  # the close does not raise
    assert (record["bars"], record["bars_refused"]) == (2, 1)
