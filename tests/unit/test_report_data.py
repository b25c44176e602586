"""The report's numbers equal the files: read the data embedded in the page back.

The files are read here independently of the report's loader (plain json, paths from the
registry templates) and compared value by value with the page's embedded columns and
summary rows.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from report_synthetic import write_strategy

from ensemble_otel.contract.registry import EVENT, HEALTH_1H, HEALTH_24H
from ensemble_otel.report import write_report
from ensemble_otel.report.charts import CHARTS, COLUMNS

START = datetime(2024, 3, 1, tzinfo=timezone.utc)
KINDS = {"1h": HEALTH_1H, "24h": HEALTH_24H}


def page_data(path: Path) -> dict[str, Any]:
    """The JSON embedded in the page (the test reads it back as a browser would)."""
    html = path.read_text(encoding="utf-8")
    found = re.findall(
        r'<script type="application/json" id="ensemble-data">(.*?)</script>', html, re.S)
    assert len(found) == 1
    return json.loads(found[0])


def file_records(root: Path, period: str, sid: str) -> list[dict[str, Any]]:
    pattern = KINDS[period].path.format(strategy_id=sid, **{"YYYY-MM-DD": "*", "YYYY-MM": "*"})
    out: list[dict[str, Any]] = []
    for path in sorted(root.glob(pattern)):
        out.extend(json.loads(line) for line in path.read_text().splitlines())
    return out


def unix(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def two_strategies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    write_strategy(root, "alpha", start=START, hours=24 * 20, seed=3, bars_per_hour=4,
                   skip_hours=frozenset(range(100, 130)))  # a gap of 30 hours
    write_strategy(root, "beta.v2", start=START, hours=24 * 9 + 5, seed=4)
    return root


@pytest.mark.parametrize("period", ["1h", "24h"])
def test_embedded_columns_equal_every_record_in_the_files(two_strategies: Path,
                                                          period: str) -> None:
    result = write_report(two_strategies, two_strategies / f"r-{period}.html", period=period)
    data = page_data(result.path)
    assert data["period"] == period
    assert [s["id"] for s in data["strategies"]] == ["alpha", "beta.v2"]
    total = 0
    for s in data["strategies"]:
        records = file_records(two_strategies, period, s["id"])
        assert records, "the fixture wrote records"
        cols = s["columns"]
        assert cols["t"] == [unix(r["ts"]) for r in records]
        for name in COLUMNS:
            assert cols[name] == [r[name] for r in records], name
        total += len(records)
    assert result.records == total
    assert result.charted == ("alpha", "beta.v2")


def test_summary_rows_are_computed_from_all_records(two_strategies: Path) -> None:
    data = page_data(write_report(two_strategies).path)
    for s in data["strategies"]:
        records = file_records(two_strategies, "1h", s["id"])
        sm = s["summary"]
        assert sm["buckets"] == len(records)
        assert sm["bars"] == sum(r["bars"] for r in records)
        assert sm["final_equity"] == records[-1]["equity"]
        assert sm["total_pnl"] == pytest.approx(sum(r["pnl"] for r in records), rel=1e-12)
        # the per-bucket pnl adds up to the equity change over the selection
        assert sm["total_pnl"] == pytest.approx(
            records[-1]["equity"] - (records[0]["equity"] - records[0]["pnl"]), rel=1e-9)
        assert sm["max_drawdown"] == max(r["max_drawdown"] for r in records)
        assert sm["total_turnover"] == pytest.approx(math.fsum(r["turnover"] for r in records))
        assert sm["traded_notional"] == pytest.approx(
            math.fsum(r["traded_notional"] for r in records))
        assert sm["breaches"] == sum(r["risk_breaches"] for r in records)
        assert sm["warnings"] == sum(r["risk_warnings"] for r in records)
        assert sm["last_bar_ts"] == records[-1]["last_bar_ts"]


def test_summary_table_shows_the_same_numbers(two_strategies: Path) -> None:
    path = write_report(two_strategies).path
    html = path.read_text()
    for s in page_data(path)["strategies"]:
        row = re.search(rf'<tr data-strategy="{re.escape(s["id"])}">(.*?)</tr>', html, re.S)
        assert row is not None
        cells = dict(re.findall(r'data-field="(\w+)">([^<]*)<', row.group(1)))
        sm = s["summary"]
        assert cells["buckets"] == str(sm["buckets"])
        assert cells["bars"] == str(sm["bars"])
        assert cells["final_equity"] == f'{sm["final_equity"]:,.2f}'
        assert cells["total_pnl"] == f'{sm["total_pnl"]:+,.2f}'
        assert cells["max_drawdown"] == f'{sm["max_drawdown"] * 100:.2f} %'
        assert cells["breaches"] == str(sm["breaches"])
        assert cells["warnings"] == str(sm["warnings"])


def test_heartbeat_header_and_chart_slots(two_strategies: Path) -> None:
    path = write_report(two_strategies).path
    data = page_data(path)
    html = path.read_text()
    for s in data["strategies"]:
        hb_file = json.loads(
            (two_strategies / f"logs/heartbeat/{s['id']}.json").read_text())
        hb = s["heartbeat"]
        for key in ("state", "ts", "unix", "interval_s", "pid"):
            assert hb[key] == hb_file[key]
        assert hb["age_s"] == pytest.approx(data["generated_unix"] - hb_file["unix"])
        assert hb["stale"] is False
        n = len(s["columns"]["t"])
        for chart in CHARTS:
            assert (f'data-chart="{chart.id}" data-strategy="{s["id"]}" data-points="{n}"'
                    in html)
    assert data["charts"] == json.loads(json.dumps([c.to_json() for c in CHARTS]))


def test_stale_heartbeat_is_marked(tmp_path: Path) -> None:
    write_strategy(tmp_path, "old", start=START, hours=5, heartbeat_unix=1_000_000.0,
                   heartbeat_interval=10.0, heartbeat_state="running")
    data = page_data(write_report(tmp_path).path)
    hb = data["strategies"][0]["heartbeat"]
    assert hb["stale"] is True
    assert "running, stale" in write_report(tmp_path).path.read_text()


def test_heartbeat_from_the_future_is_shown_as_such(tmp_path: Path) -> None:
    write_strategy(tmp_path, "ahead", start=START, hours=5, heartbeat_unix=4102444800.0,
                   heartbeat_state="running")
    path = write_report(tmp_path).path
    hb = page_data(path)["strategies"][0]["heartbeat"]
    assert hb["future"] is True
    html = path.read_text()
    assert "running, from the future" in html and "not proof of life" in html


def test_time_range_selects_bucket_starts_inclusively(two_strategies: Path) -> None:
    lo = datetime(2024, 3, 3, 5, tzinfo=timezone.utc).timestamp()
    hi = datetime(2024, 3, 4, 5, tzinfo=timezone.utc).timestamp()
    data = page_data(write_report(two_strategies, two_strategies / "range.html",
                                  strategies=["alpha"], start=lo, end=hi).path)
    (s,) = data["strategies"]
    expected = [r for r in file_records(two_strategies, "1h", "alpha")
                if lo <= unix(r["ts"]) <= hi]
    assert len(expected) == 25
    assert s["columns"]["t"] == [unix(r["ts"]) for r in expected]
    assert s["summary"]["total_pnl"] == pytest.approx(sum(r["pnl"] for r in expected))
    assert data["from"] == "2024-03-03T05:00:00Z"
    assert data["to"] == "2024-03-04T05:00:00Z"


def test_strategy_selection_keeps_the_order_given(two_strategies: Path) -> None:
    data = page_data(write_report(two_strategies, two_strategies / "sel.html",
                                  strategies=["beta.v2", "alpha"]).path)
    assert [s["id"] for s in data["strategies"]] == ["beta.v2", "alpha"]


def test_events_are_counted_and_listed(tmp_path: Path) -> None:
    run = write_strategy(tmp_path, "ev", start=START, hours=24 * 3, seed=5)
    extra = {"ts": "2024-03-02T10:00:00Z", "event": "order_filled", "strategy_id": "ev",
             "schema_version": "1.0", "side": "buy", "qty": 3}
    path = tmp_path / EVENT.path.format(strategy_id="ev", **{"YYYY-MM-DD": "2024-03-02"})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(extra) + "\n")
    data = page_data(write_report(tmp_path).path)
    ev = data["strategies"][0]["events"]
    assert ev["count"] == len(run.events) + 1
    assert ev["names"]["order_filled"] == 1
    assert extra in ev["latest"]


def test_embedded_json_cannot_close_its_script_element(tmp_path: Path) -> None:
    write_strategy(tmp_path, "x", start=START, hours=3)
    nasty = "</script><script>alert(1)</script><!--"
    path = tmp_path / EVENT.path.format(strategy_id="x", **{"YYYY-MM-DD": "2024-03-01"})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps({"ts": "2024-03-01T01:00:00Z", "event": "note",
                             "strategy_id": "x", "schema_version": "1.0", "text": nasty}) + "\n")
    page = write_report(tmp_path).path
    html = page.read_text()
    assert "<script>alert(1)" not in html
    assert html.count("</script>") == 3  # the data, uPlot, the page script
    latest = page_data(page)["strategies"][0]["events"]["latest"]
    assert latest[-1]["text"] == nasty  # the value survives the escaping


def test_page_is_self_contained(two_strategies: Path) -> None:
    html = write_report(two_strategies).path.read_text()
    assert "default-src 'none'" in html  # the browser refuses any request
    assert not re.search(r'<(script|link|img)[^>]+(src|href)=', html)
    assert "uPlot 1.6.32" in html and "MIT License" in html


@pytest.mark.parametrize("depth", [300, 1000])
def test_an_event_nested_too_deep_to_embed_is_listed_without_its_fields(
        tmp_path: Path, depth: int) -> None:
    write_strategy(tmp_path, "x", start=START, hours=3)
    path = tmp_path / EVENT.path.format(strategy_id="x", **{"YYYY-MM-DD": "2024-03-01"})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"ts": "2024-03-01T01:00:00Z", "event": "deep", "strategy_id": "x", '
                    f'"schema_version": "1.0", "v": {"[" * depth}{"]" * depth}}}\n')
    result = write_report(tmp_path)
    assert result.ok
    (listed,) = page_data(result.path)["strategies"][0]["events"]["latest"]
    assert listed["event"] == "deep" and "v" not in listed
    assert "fields_not_shown" in listed


def test_a_schema_version_change_is_noted_and_still_drawn(tmp_path: Path) -> None:
    """Records after a schema_version bump are valid records: they stay in the charts."""
    write_strategy(tmp_path, "gamma", start=START, hours=30, seed=5, schema_version="1.0")
    later = datetime(2024, 3, 3, tzinfo=timezone.utc)
    write_strategy(tmp_path, "gamma", start=later, hours=30, seed=6, schema_version="1.1")
    result = write_report(tmp_path, tmp_path / "r.html")
    records = file_records(tmp_path, "1h", "gamma")
    assert {r["schema_version"] for r in records} == {"1.0", "1.1"}
    assert result.bad_lines == 0
    assert result.records == len(records)
    html = result.path.read_text(encoding="utf-8")
    assert "one schema_version per strategy" in html
