"""The report opened in headless Chromium (Debian `chromium`), driven over the DevTools protocol.

Checks what a person would see: the page renders with no console error or exception,
requests nothing but its own file, draws every chart with the expected point counts,
zooms all charts of a strategy together with full detail, and the empty-input page
says what is missing. A screenshot is kept in the test's tmp dir; with
ENSEMBLE_UPDATE_SCREENSHOTS=1 it is also copied to docs/img/report.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from integration_gate import missing, require_binary
from report_synthetic import write_strategy

from ensemble_otel.report import write_report
from ensemble_otel.report.charts import CHARTS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO / "docs" / "img" / "report.png"
START = datetime(2024, 1, 1, tzinfo=timezone.utc)

PLOTS_JS = """(() => window.ensembleReport.plots.map(u => ({
  min: u.scales.x.min, max: u.scales.x.max, drawn: u.data[0].length,
  strategy: u.root.closest('figure').dataset.strategy,
  chart: u.root.closest('figure').dataset.chart})))()"""


EXTREMES_JS = """(() => {
  const rep = window.ensembleReport, out = [];
  rep.plots.forEach(u => {
    const fig = u.root.closest('figure');
    const s = rep.data.strategies.find(x => x.id === fig.dataset.strategy);
    const chart = rep.data.charts.find(c => c.id === fig.dataset.chart);
    chart.series.forEach((sr, i) => {
      const full = s.columns[sr.field], drawn = u.data[i + 1];
      out.push({field: sr.field, strategy: s.id,
                min: Math.min(...full), max: Math.max(...full),
                drawnMin: Math.min(...drawn), drawnMax: Math.max(...drawn)});
    });
  });
  return out;
})()"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    binary = require_binary("chromium", "apt-get install chromium "
                                        "(scripts/install-system-deps.sh does it)")
    try:
        import websocket  # noqa: F401  (websocket-client, dev extra)
        from report_headless import Chromium
    except ImportError as exc:
        missing(f"websocket-client missing ({exc}): pip install -e '.[dev]'")
    with Chromium(binary, timeout=120.0) as browser:
        yield browser


def page_data(path: Path) -> dict[str, Any]:
    html = path.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="ensemble-data">(.*?)</script>', html,
                  re.S)
    assert m is not None
    return json.loads(m.group(1))


def assert_clean(visit: Any) -> None:
    assert visit.state == "rendered", visit.status
    assert visit.console_errors == []
    assert visit.exceptions == []
    assert visit.log_errors == []
    assert visit.requests == [visit.url]  # offline: nothing but the page itself


def test_report_renders_offline_with_every_chart(chromium: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = Path("paper_trading_outputs")  # relative, as a user would type it
    write_strategy(root, "trend-eurusd", start=START, hours=24 * 45, seed=21, bars_per_hour=2)
    write_strategy(root, "meanrev-goog", start=START, hours=24 * 38, seed=5,
                   skip_hours=frozenset(range(200, 260)))
    bad = sorted((root / "logs/1h/health_snapshot/meanrev-goog").glob("*.jsonl"))[3]
    with open(bad, "a") as fh:
        fh.write("not json\n")
    page = write_report(root).path
    data = page_data(page)
    shot = tmp_path / "report.png"
    visit = chromium.visit(page, screenshot=shot)
    assert_clean(visit)

    points = {s["id"]: len(s["columns"]["t"]) for s in data["strategies"]}
    assert points == {"meanrev-goog": 24 * 38 - 60, "trend-eurusd": 24 * 45}
    labels = {c.id: "|".join(["Time", *(s.label for s in c.series)]) for c in CHARTS}
    assert len(visit.charts) == 2 * len(CHARTS)
    for chart in visit.charts:
        assert chart["canvases"] == "1"
        assert int(chart["points"]) == points[chart["strategy"]]
        drawn = int(chart["drawn"])
        assert 0 < drawn <= int(chart["points"])
        assert chart["legend"] == labels[chart["chart"]]
        assert float(chart["width"]) > 300
    assert visit.status["charts"] == str(len(visit.charts))
    assert int(visit.status["drawn"]) == sum(int(c["drawn"]) for c in visit.charts)

    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width == 1280 and height > 1500  # the whole page, both strategies
    if os.environ.get("ENSEMBLE_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)


def test_zoom_moves_all_charts_of_a_strategy_and_shows_every_record(
        chromium: Any, tmp_path: Path) -> None:
    write_strategy(tmp_path, "a", start=START, hours=24 * 120, seed=1)
    write_strategy(tmp_path, "b", start=START, hours=24 * 120, seed=2)
    page = write_report(tmp_path).path
    times = page_data(page)["strategies"][0]["columns"]["t"]

    def interact(browser: Any, session: str) -> dict[str, Any]:
        before = browser.evaluate(PLOTS_JS, session)
        box = browser.evaluate(
            """(() => { const el = document.querySelector(
                 '#strategy-0 figure[data-chart="pnl"] .u-over');
               el.scrollIntoView({block: 'center'});
               const r = el.getBoundingClientRect();
               return [r.left, r.top, r.width, r.height]; })()""", session)
        left, top, w, h = box
        browser.drag(session, left + 0.30 * w, top + h / 2, left + 0.34 * w)
        zoomed = browser.wait_for(
            session, PLOTS_JS, lambda ps: ps[0]["min"] != before[0]["min"]
            and all(p["drawn"] == ps[2]["drawn"] for p in ps[:5]))
        browser.double_click(session, left + 0.5 * w, top + h / 2)
        reset = browser.wait_for(session, PLOTS_JS,
                                 lambda ps: ps[0]["min"] == before[0]["min"])
        return {"before": before, "zoomed": zoomed, "reset": reset}

    visit = chromium.visit(page, interact=interact)
    assert_clean(visit)
    before, zoomed, reset = (visit.interaction[k] for k in ("before", "zoomed", "reset"))
    a_before, a_zoomed = before[:5], zoomed[:5]
    assert {p["strategy"] for p in a_zoomed} == {"a"}
    lo, hi = a_zoomed[0]["min"], a_zoomed[0]["max"]
    assert times[0] < lo < hi < times[-1]
    assert all((p["min"], p["max"]) == (lo, hi) for p in a_zoomed)  # zoomed together
    # full detail: every record in view plus one neighbour on each side
    in_view = sum(1 for t in times if lo <= t <= hi)
    assert 10 < in_view < len(times) / 5
    assert all(p["drawn"] == in_view + 2 for p in a_zoomed)
    assert all(p["drawn"] < len(times) for p in a_before)  # a year-ish is downsampled...
    assert zoomed[5:] == before[5:]  # ...and the other strategy did not move
    assert [(p["min"], p["max"]) for p in reset] == [(p["min"], p["max"]) for p in before]


@pytest.mark.parametrize("case", ["empty", "only-bad-lines"])
def test_pages_without_data_say_what_is_missing(chromium: Any, tmp_path: Path,
                                                case: str) -> None:
    if case == "only-bad-lines":
        d = tmp_path / "logs/1h/health_snapshot/s1"
        d.mkdir(parents=True)
        (d / "2024-01-01.jsonl").write_text('{"ts": 1}\n')
    result = write_report(tmp_path)
    assert not result.ok
    visit = chromium.visit(result.path, screenshot=tmp_path / f"{case}.png")
    assert_clean(visit)
    assert visit.charts == []
    assert visit.status["charts"] == "0"
    assert "nothing to draw" in visit.status["text"]
    html = result.path.read_text()
    assert 'id="problems"' in html
    if case == "only-bad-lines":
        assert "2024-01-01.jsonl:1" in html


def test_a_year_of_hourly_records_for_three_strategies_renders(chromium: Any,
                                                               tmp_path: Path) -> None:
    for i, sid in enumerate(("s1", "s2", "s3")):
        write_strategy(tmp_path, sid, start=START, hours=8760, seed=i)
    result = write_report(tmp_path)
    assert result.records == 3 * 8760
    visit = chromium.visit(result.path, interact=lambda b, s: b.evaluate(EXTREMES_JS, s))
    assert_clean(visit)
    # downsampled for drawing, but every series keeps its lowest and highest record
    extremes = visit.interaction
    assert len(extremes) == 3 * sum(len(c.series) for c in CHARTS)
    for e in extremes:
        assert (e["drawnMin"], e["drawnMax"]) == (e["min"], e["max"]), e
    assert len(visit.charts) == 3 * len(CHARTS)
    for chart in visit.charts:
        assert chart["points"] == "8760"
        # drawn: per pixel column at most first, last, min and max of each series
        assert 0 < int(chart["drawn"]) < 8760
    # the time is measured by bench/report_bench.py; here it only has to render
