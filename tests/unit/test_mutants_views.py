"""The view table in detail: when a view is whole and how views order, every level of a
view, a record built from a view field by field, and the instruments the table makes."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ensemble_otel.contract import registry as names
from ensemble_otel.health import views
from ensemble_otel.health.buckets import Bucket
from ensemble_otel.health.ledger import Ledger
from ensemble_otel.health.views import AT, LEVELS, STATE_ATTRS, drawdown, order, take, whole

H0 = 1_709_251_200.0  # 2024-03-01T00:00:00Z


def _ledger() -> Ledger:
    ledger = Ledger()
    ledger._init_ledger()
    ledger._unwritten = ()  # the emitter's: records of closed buckets not appended yet
    return ledger


def _view(**changes: Any) -> tuple[Any, ...]:
    values = list(take(_ledger()))
    for name, value in changes.items():
        values[AT[name]] = value
    return tuple(values)


def test_whole() -> None:
    assert whole(_view(_writing=5.0, last_ts=5.0))
    assert not whole(_view(_writing=6.0, last_ts=5.0))  # a bar under way
    assert not whole(_view(_writing=5.0, last_ts=5.0, _rolling=True))  # a close under way
    assert whole(_view(_writing=5.0, last_ts=5.0, _rolling=False)) is True


def test_order() -> None:
    view = _view(last_ts=1.0, _rolls=2, dropped=3, refused=4, _unwritten=())
    assert order(view) == (1.0, 2, 3, 4, True)
    assert order(_view(_unwritten=(("1h", "f", {}),)))[4] is False
    assert views.KEY == 6 and STATE_ATTRS[:6] == (
        "_writing", "last_ts", "_rolling", "_rolls", "dropped", "refused")


def test_drawdown() -> None:
    assert drawdown(_view(equity=80.0, peak=100.0)) == pytest.approx(0.2)
    assert drawdown(_view(equity=-50.0, peak=100.0)) == 1.5
    assert drawdown(_view(equity=5.0, peak=0.0)) == 0.0
    assert drawdown(_view(equity=5.0, peak=-10.0)) == 0.0


def test_every_level_of_a_view() -> None:
    view = _view(equity=90.0, peak=120.0, max_drawdown=0.3, realized=1.5, unrealized=-2.5,
                 positions=4, last_ts=H0, _c_bars=10, _h_bars=3, dropped=2, refused=1,
                 _c_notional=100.0, _h_notional=25.0, _c_breaches=5, _h_breaches=2,
                 _c_warnings=7, _h_warnings=1)
    assert {name: fn(view) for name, fn in LEVELS.items()} == {
        names.EQUITY: 90.0, names.EQUITY_PEAK: 120.0, names.DRAWDOWN: 0.25,
        names.DRAWDOWN_MAX: 0.3, names.PNL_REALIZED: 1.5, names.PNL_UNREALIZED: -2.5,
        names.POSITIONS_OPEN: 4, names.BAR_TIMESTAMP: H0, names.BARS: 13,
        names.BARS_DROPPED: 2, names.BARS_REFUSED: 1, names.TRADED_NOTIONAL: 125.0,
        names.RISK_BREACHES: 7, names.RISK_WARNINGS: 8}


def _bucket(**fields: Any) -> Bucket:
    b = Bucket("1h", 3600)
    b.load({"start": int(H0), "bars": 3, "notional": 50.0, "breaches": 2, "warnings": 1,
            "first_ts": H0 + 60, "last_ts": H0 + 1800.5, **fields})
    return b


def test_record_of_a_bucket() -> None:
    view = _view(equity=80.0, peak=100.0, max_drawdown=0.25, realized=3.0, unrealized=None,
                 positions=2)
    rec = views.record(_bucket(prev_close=70.0), view, 60.0, 4, "s1", "2")
    assert rec == {
        "ts": "2024-03-01T00:00:00Z", "period": "1h", "strategy_id": "s1",
        "schema_version": "2", "equity": 80.0, "peak_equity": 100.0, "drawdown": 1 - 0.8,
        "max_drawdown": 0.25, "pnl": 10.0, "turnover": 50.0 / 80.0, "traded_notional": 50.0,
        "realized_pnl": 3.0, "unrealized_pnl": None, "open_positions": 2, "risk_breaches": 2,
        "risk_warnings": 1, "bars": 3, "bars_refused": 4,
        "first_bar_ts": "2024-03-01T00:01:00Z", "last_bar_ts": "2024-03-01T00:30:00.500000Z"}
    assert list(rec) == list(views.record(_bucket(), view, 60.0, 0, "s1", "2"))


def test_record_pnl_from_the_first_equity_and_turnover_at_zero_equity() -> None:
    view = _view(equity=-20.0, peak=100.0, max_drawdown=1.2)
    rec = views.record(_bucket(), view, 60.0, 0, "s1", "1")
    assert rec["pnl"] == -80.0 and rec["turnover"] == 50.0 / 20.0
    rec = views.record(_bucket(prev_close=0.0), _view(equity=0.0, peak=1.0), 60.0, 0, "s", "1")
    assert rec["pnl"] == 0.0 and rec["turnover"] is None


def _collect(ledger: Ledger) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    views.register(provider.get_meter("t"), lambda i: lambda: take(ledger))
    data = reader.get_metrics_data()
    found: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    kinds: dict[str, tuple[str, str, str]] = {}
    if data is not None:
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    found[m.name] = [(p.value, dict(p.attributes or {}))
                                     for p in m.data.data_points]
                    kinds[m.name] = (type(m.data).__name__, m.unit or "", m.description or "")
    provider.shutdown()
    for name, (kind, unit, description) in kinds.items():
        spec = names.METRICS_BY_NAME[name]
        assert kind == ("Sum" if spec.instrument == "observable_counter" else "Gauge"), name
        assert (unit, description) == (spec.unit, spec.description), name
    return found


def test_no_points_before_the_first_bar() -> None:
    assert _collect(_ledger()) == {}


def test_instruments_of_the_table() -> None:
    ledger = _ledger()
    ledger.maybe_emit(H0 + 60, equity=100.0, traded_notional=5.0, risk_breaches=1)
    found = _collect(ledger)
    assert found[names.EQUITY] == [(100.0, {})]
    assert found[names.BARS] == [(1, {})]
    assert found[names.TRADED_NOTIONAL] == [(5.0, {})]
    assert names.PNL_REALIZED not in found  # None: no point
    assert names.BUCKET_PNL not in found  # no bucket closed yet
    assert set(found) == set(LEVELS) - {names.PNL_REALIZED, names.PNL_UNREALIZED,
                                        names.POSITIONS_OPEN}
    ledger._hour.last_pnl, ledger._day.last_pnl = 2.5, 7.5
    ledger._hour.last_start = int(H0)
    found = _collect(ledger)
    assert found[names.BUCKET_PNL] == [(2.5, {names.PERIOD_ATTRIBUTE: "1h"}),
                                       (7.5, {names.PERIOD_ATTRIBUTE: "24h"})]
    assert found[names.BUCKET_START] == [(int(H0), {names.PERIOD_ATTRIBUTE: "1h"})]
    assert names.BUCKET_TURNOVER not in found


def test_field_and_total_read_the_view() -> None:
    view = _view(equity=3.0, _c_bars=4, _h_bars=5)
    assert views._field("equity")(view) == 3.0
    assert views._total("_c_bars", "_h_bars")(view) == 9
    assert views._total("_h_bars", "_c_bars")(_view(_c_bars=10, _h_bars=1)) == 11


def test_drawdown_of_a_peak_below_one() -> None:
    assert drawdown(_view(equity=0.25, peak=0.5)) == 0.5


def test_every_instrument_has_its_own_callback_index() -> None:
    asked: list[int] = []
    ledger = _ledger()
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    views.register(provider.get_meter("t"),
                   lambda i: asked.append(i) or (lambda: take(ledger)))  # type: ignore[func-returns-value]
    provider.shutdown()
    assert asked == list(range(len(LEVELS) + len(views.PER_PERIOD)))
