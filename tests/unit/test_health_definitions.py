"""Health snapshot definitions on hand-computed series (bar time, UTC)."""

from __future__ import annotations

import builtins
import logging
import math
import os
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from unit_support import DAY0, at, read_jsonl, snapshot_records

from ensemble_otel.contract import registry as names
from ensemble_otel.contract.registry import HEALTH_1H, HEALTH_24H
from ensemble_otel.testing import Capture, capture

UTC = timezone.utc


def _hour_files(root: Path) -> Path:
    return root / "logs" / "1h" / "health_snapshot" / "s1"


def _day_files(root: Path) -> Path:
    return root / "logs" / "24h" / "health_snapshot" / "s1"


def test_peak_drawdown_and_recovery_to_a_new_peak(cap: Capture) -> None:
    h = cap.health
    # hour 0: first equity 100, peak 120, ends at 90
    h.maybe_emit(at(0, 10), equity=100.0, traded_notional=50.0, realized_pnl=5.0)
    h.maybe_emit(at(0, 20), equity=120.0, traded_notional=30.0, risk_breaches=1)
    h.maybe_emit(at(0, 40), equity=90.0, risk_warnings=2, realized_pnl=7.5,
                 unrealized_pnl=-2.0, open_positions=3)
    # hour 1: 96 (drawdown 0.2 < 0.25 so far), then a new peak at 130
    [h0] = h.maybe_emit(at(1, 5), equity=96.0, traded_notional=10.0)
    h.maybe_emit(at(1, 50), equity=130.0, open_positions=0)
    # hour 2: 117
    [h1] = h.maybe_emit(at(2, 0), equity=117.0)
    # hour 3: 65, a deeper drawdown from the new peak
    [h2] = h.maybe_emit(at(3, 30), equity=65.0, traded_notional=13.0)
    [h3] = h.maybe_emit(at(4, 0), equity=131.0)

    assert h0 == {
        "ts": "2024-03-01T00:00:00Z", "period": "1h", "strategy_id": "s1",
        "schema_version": "1.1",
        "equity": 90.0, "peak_equity": 120.0, "drawdown": 1 - 90 / 120,
        "max_drawdown": 1 - 90 / 120, "pnl": 90.0 - 100.0, "turnover": (50 + 30) / 90,
        "traded_notional": 80.0, "realized_pnl": 7.5, "unrealized_pnl": -2.0,
        "open_positions": 3, "risk_breaches": 1, "risk_warnings": 2, "bars": 3,
        "bars_refused": 0,
        "first_bar_ts": "2024-03-01T00:10:00Z", "last_bar_ts": "2024-03-01T00:40:00Z",
    }
    assert (h1["ts"], h1["equity"], h1["peak_equity"], h1["drawdown"]) == (
        "2024-03-01T01:00:00Z", 130.0, 130.0, 0.0)
    assert h1["max_drawdown"] == 1 - 90 / 120  # 1 - 96/120 = 0.2 did not raise it
    assert h1["pnl"] == 130.0 - 90.0
    assert h1["turnover"] == 10 / 130 and h1["traded_notional"] == 10.0
    assert (h1["bars"], h1["risk_breaches"], h1["risk_warnings"]) == (2, 0, 0)
    # levels are the last bar's: it reported no PnL, so they are null, not carried over
    assert (h1["realized_pnl"], h1["unrealized_pnl"], h1["open_positions"]) == (None, None, 0)

    assert (h2["equity"], h2["peak_equity"], h2["drawdown"]) == (117.0, 130.0, 1 - 117 / 130)
    assert h2["max_drawdown"] == 1 - 90 / 120
    assert h2["pnl"] == 117.0 - 130.0 and h2["turnover"] == 0.0 and h2["bars"] == 1

    assert h3["ts"] == "2024-03-01T03:00:00Z"
    assert h3["drawdown"] == 1 - 65 / 130
    assert h3["max_drawdown"] == 1 - 65 / 130  # the deeper drawdown after the new peak
    assert h3["pnl"] == 65.0 - 117.0 and h3["turnover"] == 13 / 65

    assert snapshot_records(cap.root, "1h", "s1") == [h0, h1, h2, h3]
    # the current (open) state: the 131 bar is a new peak
    assert cap.metric(names.EQUITY_PEAK).value == 131.0
    assert cap.metric(names.DRAWDOWN).value == 0.0
    assert cap.metric(names.DRAWDOWN_MAX).value == 1 - 65 / 130


def test_record_fields_and_types(cap: Capture) -> None:
    h = cap.health
    h.maybe_emit(at(0, 0), equity=1.5)
    h.maybe_emit(at(0, 30), equity=2, realized_pnl=1, unrealized_pnl=0, open_positions=1)
    written = h.maybe_emit(at(days=1), equity=2.5)
    assert [r["period"] for r in written] == ["1h", "24h"]
    kinds = {"1h": HEALTH_1H, "24h": HEALTH_24H}
    py_types = {"string": str, "integer": int, "number": (int, float)}
    for record in written:
        kind = kinds[record["period"]]
        assert list(record) == list(kind.field_names())
        for field in kind.fields:
            value = record[field.name]
            if value is None:
                assert field.nullable, field.name
                continue
            assert isinstance(value, py_types[field.type]), (field.name, value)
            assert not isinstance(value, bool)
            if isinstance(value, float):
                assert math.isfinite(value)
    # numbers given as int are written as numbers of the same value
    assert written[0]["equity"] == 2.0 and written[0]["realized_pnl"] == 1.0


def test_gaps_write_only_buckets_that_saw_bars(cap: Capture) -> None:
    h = cap.health
    h.maybe_emit(at(0, 15), equity=100.0, traded_notional=1.0)
    assert h.maybe_emit(at(5, 10), equity=104.0) != []  # closes only hour 0
    h.maybe_emit(at(5, 40), equity=108.0)
    h.maybe_emit(at(9, 0), equity=101.0)
    h.maybe_emit(at(2, 0, days=3), equity=99.0)  # three days later
    hours = snapshot_records(cap.root, "1h", "s1")
    assert [r["ts"][11:16] for r in hours] == ["00:00", "05:00", "09:00"]
    assert [r["pnl"] for r in hours] == [0.0, 108.0 - 100.0, 101.0 - 108.0]
    assert [r["bars"] for r in hours] == [1, 2, 1]
    days = snapshot_records(cap.root, "24h", "s1")
    assert [r["ts"] for r in days] == ["2024-03-01T00:00:00Z"]
    assert days[0]["bars"] == 4 and days[0]["pnl"] == 101.0 - 100.0
    assert days[0]["traded_notional"] == 1.0 and days[0]["turnover"] == 1.0 / 101.0
    assert sorted(p.name for p in _hour_files(cap.root).iterdir()) == ["2024-03-01.jsonl"]


def test_out_of_order_and_equal_bars_are_dropped_and_counted(
    cap: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    h = cap.health
    h.maybe_emit(at(0, 10), equity=100.0, traded_notional=10.0)
    h.maybe_emit(at(0, 20), equity=110.0, traded_notional=10.0, risk_breaches=1)
    assert h.maybe_emit(at(0, 20), equity=999.0, traded_notional=500.0) == []  # equal ts
    assert h.maybe_emit(at(0, 15), equity=1.0, risk_breaches=7) == []  # earlier ts
    h.maybe_emit(at(0, 30), equity=105.0)
    [record] = h.maybe_emit(at(1, 0), equity=106.0)
    # a late bar from the closed hour neither reopens nor rewrites it
    assert h.maybe_emit(at(0, 59), equity=50.0) == []
    assert (record["bars"], record["equity"], record["peak_equity"]) == (3, 105.0, 110.0)
    assert record["traded_notional"] == 20.0 and record["risk_breaches"] == 1
    assert record["last_bar_ts"] == "2024-03-01T00:30:00Z"
    assert cap.metric(names.BARS_DROPPED).value == 3
    assert cap.metric(names.BARS).value == 4
    assert cap.metric(names.EQUITY).value == 106.0
    warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1, warnings  # rate-limited: one warning for three drops
    assert "2024-03-01T00:20:00Z" in warnings[0]
    assert len(snapshot_records(cap.root, "1h", "s1")) == 1


def test_midnight_utc_day_and_month_boundary(cap: Capture) -> None:
    h = cap.health
    leap_day = datetime(2024, 2, 29, tzinfo=UTC)
    h.maybe_emit(leap_day + timedelta(hours=22, minutes=30), equity=100.0, traded_notional=4.0)
    h.maybe_emit(leap_day + timedelta(hours=23, minutes=10), equity=101.0)
    h.maybe_emit(leap_day + timedelta(hours=23, minutes=59, seconds=59), equity=102.0)
    written = h.maybe_emit(datetime(2024, 3, 1, 0, 0, 0, tzinfo=UTC), equity=103.0)
    h.maybe_emit(datetime(2024, 3, 1, 0, 50, tzinfo=UTC), equity=104.0)
    h.maybe_emit(datetime(2024, 3, 1, 1, 5, tzinfo=UTC), equity=105.0)
    h.maybe_emit(datetime(2024, 3, 2, 0, 5, tzinfo=UTC), equity=106.0)

    assert [(r["period"], r["ts"]) for r in written] == [
        ("1h", "2024-02-29T23:00:00Z"), ("24h", "2024-02-29T00:00:00Z")]
    hour_dir, day_dir = _hour_files(cap.root), _day_files(cap.root)
    assert sorted(p.name for p in hour_dir.iterdir()) == ["2024-02-29.jsonl", "2024-03-01.jsonl"]
    assert sorted(p.name for p in day_dir.iterdir()) == ["2024-02.jsonl", "2024-03.jsonl"]
    feb = read_jsonl(hour_dir / "2024-02-29.jsonl")
    assert [r["ts"] for r in feb] == ["2024-02-29T22:00:00Z", "2024-02-29T23:00:00Z"]
    assert feb[1]["bars"] == 2 and feb[1]["last_bar_ts"] == "2024-02-29T23:59:59Z"
    mar = read_jsonl(hour_dir / "2024-03-01.jsonl")
    assert [r["ts"] for r in mar] == ["2024-03-01T00:00:00Z", "2024-03-01T01:00:00Z"]
    assert mar[0]["first_bar_ts"] == "2024-03-01T00:00:00Z" and mar[0]["bars"] == 2
    [feb_day] = read_jsonl(day_dir / "2024-02.jsonl")
    [mar_day] = read_jsonl(day_dir / "2024-03.jsonl")
    assert (feb_day["bars"], feb_day["equity"], feb_day["pnl"]) == (3, 102.0, 102.0 - 100.0)
    assert feb_day["turnover"] == 4.0 / 102.0
    assert mar_day["ts"] == "2024-03-01T00:00:00Z"
    assert (mar_day["bars"], mar_day["equity"], mar_day["pnl"]) == (3, 105.0, 105.0 - 102.0)


def test_time_types_naive_aware_and_unix(cap: Capture) -> None:
    h = cap.health
    plus3 = timezone(timedelta(hours=3))
    minus5 = timezone(timedelta(hours=-5))
    h.maybe_emit(datetime(2024, 3, 1, 5, 0, 1), equity=1.0)  # naive: UTC
    h.maybe_emit(datetime(2024, 3, 1, 8, 10, tzinfo=plus3), equity=2.0)  # 05:10Z
    h.maybe_emit(int(at(5, 20)), equity=3.0)  # int unix seconds
    h.maybe_emit(at(5, 30) + 0.25, equity=4.0)  # float unix seconds
    h.maybe_emit(datetime(2024, 3, 1, 0, 40, tzinfo=minus5), equity=5.0)  # 05:40Z
    [record] = [r for r in h.maybe_emit(at(6), equity=6.0) if r["period"] == "1h"]
    assert record["ts"] == "2024-03-01T05:00:00Z"
    assert record["bars"] == 5 and record["equity"] == 5.0
    assert record["first_bar_ts"] == "2024-03-01T05:00:01Z"
    assert record["last_bar_ts"] == "2024-03-01T05:40:00Z"
    # an aware time at the same instant as the last bar is a duplicate, whatever its zone
    assert h.maybe_emit(datetime(2024, 3, 1, 9, 0, tzinfo=plus3), equity=7.0) == []
    assert cap.metric(names.BARS_DROPPED).value == 1
    assert cap.metric(names.BAR_TIMESTAMP).value == at(6)


def test_fractional_bar_times_keep_their_microseconds(cap: Capture) -> None:
    h = cap.health
    h.maybe_emit(at(0) + 0.5, equity=1.0)
    [record] = h.maybe_emit(at(1), equity=1.0)
    assert record["first_bar_ts"] == "2024-03-01T00:00:00.500000Z"


def test_records_returned_equal_the_lines_written(cap: Capture) -> None:
    h = cap.health
    returned: list[dict[str, Any]] = []
    for i in range(60):  # 20-minute bars over 20 hours
        returned += h.maybe_emit(DAY0 + i * 1200, equity=100.0 + (i % 7) - (i % 5),
                                 traded_notional=float(i), risk_warnings=i % 2)
    hours = snapshot_records(cap.root, "1h", "s1")
    assert hours == [r for r in returned if r["period"] == "1h"]
    assert len(hours) == 19 and all(r["bars"] == 3 for r in hours)
    assert sum(r["traded_notional"] for r in hours) == sum(range(57))
    assert sum(r["risk_warnings"] for r in hours) == sum(i % 2 for i in range(57))
    # pnl telescopes: the sum of bucket pnl is last close minus first equity
    assert math.isclose(sum(r["pnl"] for r in hours), hours[-1]["equity"] - 100.0,
                        abs_tol=1e-9)


def test_metric_values_equal_the_file_records(cap: Capture) -> None:
    """Levels in a record are the gauge values right before the closing bar; the bucket
    gauges after it carry the record's pnl, turnover and start."""
    h = cap.health
    series = [  # (minutes from DAY0, equity, notional, realized, unrealized, positions)
        (5, 1000.0, 200.0, 0.0, 0.0, 1),
        (25, 1010.0, 0.0, 0.0, 10.0, 1),
        (55, 990.0, 300.0, -10.0, 0.0, 0),
        (70, 1020.0, 100.0, 20.0, 0.0, 2),
        (118, 1005.0, 0.0, 20.0, -15.0, 2),
        (130, 1030.0, 50.0, 30.0, 0.0, 1),
        (60 * 24 + 3, 1040.0, 0.0, 40.0, 0.0, 0),
    ]
    gauges = {
        "equity": names.EQUITY, "peak_equity": names.EQUITY_PEAK, "drawdown": names.DRAWDOWN,
        "max_drawdown": names.DRAWDOWN_MAX, "realized_pnl": names.PNL_REALIZED,
        "unrealized_pnl": names.PNL_UNREALIZED, "open_positions": names.POSITIONS_OPEN,
    }
    compared = 0
    before: dict[str, float] | None = None
    for i, (minutes, equity, notional, realized, unrealized, positions) in enumerate(series):
        if i:  # the gauges observed right before this bar
            before = {field: cap.metric(name).value for field, name in gauges.items()}
        written = h.maybe_emit(DAY0 + minutes * 60, equity=equity, traded_notional=notional,
                               realized_pnl=realized, unrealized_pnl=unrealized,
                               open_positions=positions)
        for record in written:
            assert before is not None
            for field, value in before.items():
                assert record[field] == value, field
            period = {names.PERIOD_ATTRIBUTE: record["period"]}
            assert cap.metric(names.BUCKET_PNL, **period).value == record["pnl"]
            assert cap.metric(names.BUCKET_TURNOVER, **period).value == record["turnover"]
            start = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
            assert cap.metric(names.BUCKET_START, **period).value == start
            compared += 1
    assert compared == 4  # three hours and one day
    hours = snapshot_records(cap.root, "1h", "s1")
    total = cap.metric(names.TRADED_NOTIONAL).value
    assert total == sum(s[2] for s in series)
    assert total == sum(r["traded_notional"] for r in hours)  # the open hour traded nothing
    # units come from the registry
    for name in gauges.values():
        assert cap.metric(name).unit == names.METRICS_BY_NAME[name].unit


def test_bar_that_closes_nothing_does_no_io_and_no_collection(
    cap: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = cap.health
    h.maybe_emit(at(0, 1), equity=100.0)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("I/O or a collection on a bar that closes nothing")

    monkeypatch.setattr(os, "open", forbidden)
    monkeypatch.setattr(os, "write", forbidden)
    monkeypatch.setattr(builtins, "open", forbidden)
    monkeypatch.setattr(cap.metric_reader, "get_metrics_data", forbidden)
    monkeypatch.setattr(h._reader, "get_metrics_data", forbidden)
    for minute in range(2, 30):  # levels left out: the general path
        assert h.maybe_emit(at(0, minute), equity=100.0 + minute, traded_notional=1.0) == []
    for minute in range(30, 60):  # every field of its exact type: the fast path
        assert h.maybe_emit(at(0, minute), equity=100.0 - minute, traded_notional=1.0,
                            realized_pnl=0.0, unrealized_pnl=1.0, risk_breaches=0,
                            risk_warnings=1, open_positions=2) == []
    monkeypatch.undo()
    assert cap.metric(names.BARS).value == 59
    assert cap.metric(names.RISK_WARNINGS).value == 30
    [record] = h.maybe_emit(at(1), equity=1.0)
    assert (record["bars"], record["traded_notional"], record["equity"]) == (59, 58.0, 41.0)
    assert record["max_drawdown"] == 1 - 41 / 129


def test_fast_and_general_paths_agree(tmp_path: Path) -> None:
    """Bars with every field of its exact type take a shortcut; the same bars given as
    datetimes and ints take the general path. The records must be identical."""
    def bars() -> list[tuple[float, dict[str, Any]]]:
        out = []
        for i in range(400):  # 7-minute bars, about two days, several peaks and drawdowns
            out.append((DAY0 + i * 420.0, {
                "equity": 1000.0 + 120.0 * math.sin(i / 23.0) + 3.0 * (i % 9) + i * 0.2,
                "realized_pnl": float(i % 17) - 8.0,
                "unrealized_pnl": float(i % 5) * 0.5,
                "traded_notional": float((i * 31) % 200),
                "risk_breaches": int(i % 41 == 0),
                "risk_warnings": i % 3,
                "open_positions": i % 4,
            }))
        return out

    results = []
    for as_general in (False, True):
        with capture(root=tmp_path / str(as_general), strategy_id="s1") as cap:
            for ts, fields in bars():
                if as_general:
                    when: Any = datetime.fromtimestamp(ts, tz=UTC)
                    fields = {**fields, "traded_notional": Fraction(fields["traded_notional"])}
                else:
                    when = ts
                cap.health.maybe_emit(when, **fields)
            levels = {p.name: p.value for p in cap.collect() if not p.attributes
                      and p.name.startswith("ensemble.") and "heartbeat" not in p.name
                      and "uptime" not in p.name}
        results.append((snapshot_records(cap.root, "1h", "s1"),
                        snapshot_records(cap.root, "24h", "s1"), levels))
    assert len(results[0][0]) > 40 and len(results[0][1]) == 1
    assert results[0] == results[1]


def test_every_record_equals_an_sdk_collection_at_its_close(
    cap: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long random series (gaps of minutes to days, all fields, both bar paths): at every
    bucket close, an SDK collection of the observable instruments taken at that moment (from
    inside the close) gives exactly the record's levels, and one taken right after the
    closing bar gives the record's pnl, turnover and start per period."""
    import random

    from ensemble_otel.health import closes
    from ensemble_otel.health.views import RECORD_LEVELS

    rng = random.Random(20240301)
    build = closes.record
    at_close: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def levels() -> dict[str, Any]:
        from ensemble_otel._metricsdata import values

        return {name: value for (name, attributes), value in
                values(cap.metric_reader.get_metrics_data()).items() if not attributes}

    def checked(*args: Any) -> dict[str, Any]:
        record = build(*args)
        at_close.append((record, levels()))
        return record

    monkeypatch.setattr(closes, "record", checked)
    h = cap.health
    t = float(DAY0)
    written: list[dict[str, Any]] = []
    equity = 1000.0
    for i in range(3000):
        t += rng.choice([30.0, 60.0, 600.0, 1800.0, 3600.0, 5400.0, 86400.0 * 2]) * rng.random()
        equity = max(-50.0, equity * (1 + rng.gauss(0, 0.01)) + rng.choice([0.0, 0.0, -5.0]))
        fields: dict[str, Any] = {
            "equity": equity, "traded_notional": rng.choice([0.0, 10.0, 1234.5]),
            "realized_pnl": rng.choice([None, rng.uniform(-9, 9)]),
            "unrealized_pnl": rng.uniform(-9, 9), "risk_breaches": rng.randint(0, 1),
            "risk_warnings": rng.randint(0, 2), "open_positions": rng.choice([None, 0, 3]),
        }
        if i % 3 == 0:  # the exact types of the fast path
            fields = {**fields, "realized_pnl": fields["realized_pnl"] or 0.0,
                      "open_positions": fields["open_positions"] or 0}
        records = h.maybe_emit(t, **fields)
        written += records
        if records:
            after = {(p.name, p.attributes.get(names.PERIOD_ATTRIBUTE)): p.value
                     for p in cap.collect()}
            for record in records:
                period = record["period"]
                assert after[(names.BUCKET_PNL, period)] == record["pnl"]
                assert after.get((names.BUCKET_TURNOVER, period)) == record["turnover"]
                start = datetime.fromisoformat(record["ts"].replace("Z", "+00:00")).timestamp()
                assert after[(names.BUCKET_START, period)] == start
    assert len(at_close) == len(written) > 500
    for record, seen in at_close:
        for field, metric in RECORD_LEVELS.items():
            assert record[field] == seen.get(metric), (field, record, seen)
    assert snapshot_records(cap.root, "1h", "s1") == [r for r in written if r["period"] == "1h"]


def test_the_ledger_alone_accounts_without_io_or_sdk() -> None:
    """Bar accounting is a class of its own: no files, no SDK, no threads. Its fast and
    general paths, drops, refusals and bucket rolls work on a bare ledger."""
    from ensemble_otel.health.ledger import Ledger

    ledger = Ledger()
    ledger._init_ledger()
    t0 = float(DAY0)
    assert ledger.maybe_emit(t0 + 60, equity=100.0) == []  # general path, opens hour 0
    full = dict(realized_pnl=0.0, unrealized_pnl=0.0, risk_breaches=1, risk_warnings=0,
                open_positions=1)
    for minute in range(2, 60):
        ledger.maybe_emit(t0 + 60 * minute, equity=100.0 - minute, traded_notional=2.0, **full)
    assert (ledger.total_bars, ledger.total_notional, ledger.total_breaches) == (59, 116.0, 58)
    assert ledger.peak == 100.0 and ledger.max_drawdown == 1 - 41.0 / 100.0
    assert ledger.maybe_emit(t0 + 30, equity=1.0) == [] and ledger.dropped == 1
    assert ledger.maybe_emit(t0 + 3600, equity=float("nan")).refused and ledger.refused == 1
    ledger.maybe_emit(t0 + 3600 * 25, equity=50.0)  # rolls the hour and the day
    assert (ledger._hour.start, ledger._day.start) == (DAY0 + 3600 * 25, DAY0 + 86400)
    assert (ledger._c_bars, ledger._h_bars, ledger._day.bars) == (59, 1, 0)
    assert ledger.drawdown == 0.5 and ledger.total_bars == 60


def test_day_and_total_sums_add_every_hour(cap: Capture) -> None:
    """The day record and the counters sum each hour's breaches, warnings, notional and bars
    (the day takes the hours' sums as each hour closes)."""
    h = cap.health
    for hour in range(3):
        for minute in (10, 40):
            h.maybe_emit(at(hour, minute), equity=100.0 + hour, traded_notional=1.0 + hour,
                         risk_breaches=hour + 1, risk_warnings=2 * hour + 1)
    assert cap.metric(names.RISK_BREACHES).value == 2 * (1 + 2 + 3)
    assert cap.metric(names.RISK_WARNINGS).value == 2 * (1 + 3 + 5)
    written = h.maybe_emit(at(1, 0, days=1), equity=1.0)
    [day] = [r for r in written if r["period"] == "24h"]
    assert (day["risk_breaches"], day["risk_warnings"]) == (12, 18)
    assert (day["traded_notional"], day["bars"]) == (12.0, 6)
    assert cap.metric(names.RISK_BREACHES).value == 12  # the new day's bar had none
    assert cap.metric(names.TRADED_NOTIONAL).value == 12.0


def test_the_first_hour_of_1970_is_a_bucket_like_any_other(root: Path) -> None:
    """A bucket starting at unix 0 is on disk like any other: a replayed bar in it is dropped
    after a restart without state."""
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(600.0, equity=1.0)
        [record] = cap.health.maybe_emit(4000.0, equity=2.0)
        assert record["ts"] == "1970-01-01T00:00:00Z"
    (root / "state" / "health" / "s1.json").unlink()
    with capture(root=root, strategy_id="s1") as cap:
        assert cap.health.maybe_emit(1800.0, equity=3.0) == []
        assert cap.health.dropped == 1
