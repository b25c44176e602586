"""A bot -> the built agent collector -> archive files, scrape endpoint, a real Prometheus.

One run of the instrumented bot against collector/config.yaml, scraped by a real
Prometheus every second; the tests below each check one destination against the values
the bot says it produced.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from collector_support import (
    BotRun,
    Collector,
    Prometheus,
    archived_logs,
    archived_points,
    make_collector,
    make_prometheus,
    read_jsonl,
    start_bot,
    wait_until,
)

from ensemble_otel.contract import registry

pytestmark = pytest.mark.integration

STRATEGY = "it-e2e"
BARS = 48


@dataclass
class Scenario:
    agent: Collector
    prom: Prometheus
    run: BotRun
    result: dict[str, Any]
    started: float
    finished: float


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("e2e")
    agent = make_collector(tmp, name="agent")
    prom = make_prometheus(tmp, agent)
    try:
        agent.start()
        prom.start()
        started = time.time()
        run = start_bot(tmp, agent.otlp_grpc_url, strategy_id=STRATEGY, bars=BARS)
        result = run.wait()
        finished = time.time()
        # The final export (at the bot's shutdown) has reached the archive.
        wait_until(lambda: any(p.metric == registry.BARS and p.value == BARS
                               for p in archived_points(agent.archive("metrics"))),
                   timeout=30, message="the final bar count never reached the archive")
        yield Scenario(agent, prom, run, result, started, finished)
    finally:
        prom.stop()
        agent.stop()


def last_points(points: list[Any]) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    """The latest point per (metric, attributes)."""
    latest: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
    for p in sorted(points, key=lambda p: p.time_unix_nano):
        latest[(p.metric, tuple(sorted(p.attributes.items())))] = p
    return latest


def expected_levels(result: dict[str, Any]) -> dict[str, float]:
    """Values at the last bar, from what the bot fed in (not from the package's state)."""
    return {
        registry.EQUITY: result["equity"],
        registry.EQUITY_PEAK: result["peak"],
        registry.DRAWDOWN: result["drawdown"],
        registry.PNL_REALIZED: result["realized_pnl"],
        registry.PNL_UNREALIZED: result["unrealized_pnl"],
        registry.POSITIONS_OPEN: result["open_positions"],
        registry.BAR_TIMESTAMP: result["last_ts"],
        registry.BARS: result["bars"],
        registry.TRADED_NOTIONAL: result["traded_notional"],
        registry.RISK_WARNINGS: result["risk_warnings"],
        registry.RISK_BREACHES: 0,
        registry.BARS_DROPPED: 0,
    }


def test_metrics_archive_holds_health_and_heartbeat(scenario: Scenario) -> None:
    points = archived_points(scenario.agent.archive("metrics"))
    assert points, "no metrics archived"
    ours = [p for p in points if p.metric.startswith("ensemble.")]
    assert {p.resource.get(registry.STRATEGY_ID_ATTRIBUTE) for p in ours} == {STRATEGY}
    assert {p.metric for p in ours} == {m.name for m in registry.METRICS}

    latest = last_points(ours)
    for name, value in expected_levels(scenario.result).items():
        got = latest[(name, ())].value
        assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9), (name, got, value)

    beats = [p.value for p in ours if p.metric == registry.HEARTBEAT_TIMESTAMP]
    assert beats == sorted(beats)
    assert scenario.started - 5 <= beats[0] <= beats[-1] <= scenario.finished + 1


def test_logs_archive_holds_every_event_with_the_strategy(scenario: Scenario) -> None:
    logs = [r for r in archived_logs(scenario.agent.archive("logs")) if r.event == "bar_done"]
    assert sorted(r.body["seq"] for r in logs) == list(range(scenario.result["events"]))
    assert {r.resource.get(registry.STRATEGY_ID_ATTRIBUTE) for r in logs} == {STRATEGY}
    # The durable copy on disk has the same events.
    files = list((scenario.run.root / "logs" / "events" / STRATEGY).glob("*.jsonl"))
    on_disk = [r for f in files for r in read_jsonl(f) if r["event"] == "bar_done"]
    assert len(on_disk) == scenario.result["events"]


def test_archives_keep_one_signal_per_file(scenario: Scenario) -> None:
    for signal_name, key in (("metrics", "resourceMetrics"), ("logs", "resourceLogs")):
        requests = scenario.agent.archive(signal_name)
        assert requests and all(set(r) == {key} for r in requests), signal_name
    assert not scenario.agent.archive_path("traces").exists() or all(
        set(r) == {"resourceSpans"} for r in scenario.agent.archive("traces"))


def test_collector_logs_no_deprecation_or_error(scenario: Scenario) -> None:
    log = scenario.agent.log()
    assert "deprecated" not in log.lower()
    assert "\terror\t" not in log


def test_scrape_endpoint_serves_registry_series_with_strategy_label(scenario: Scenario) -> None:
    samples = [s for s in scenario.agent.samples() if s.name.startswith("ensemble_")]
    names = {s.name for s in samples}
    expected = {m.prometheus for m in registry.METRICS}
    # Both ways: every registry series is served, and nothing else under ensemble_.
    assert names == expected, (sorted(names - expected), sorted(expected - names))
    for s in samples:
        assert s.labels.get("ensemble_strategy_id") == STRATEGY, s
        assert s.labels.get("job") == "ensemble-bot", s
    by_name = {m.name: m.prometheus for m in registry.METRICS}
    for name, value in expected_levels(scenario.result).items():
        (sample,) = [s for s in samples if s.name == by_name[name]]
        assert math.isclose(sample.value, value, rel_tol=1e-9, abs_tol=1e-9), (name, sample)
    periods = {s.labels.get("ensemble_period") for s in samples
               if s.name == by_name[registry.BUCKET_PNL]}
    assert periods == {"1h", "24h"}


def test_prometheus_answers_promql_with_the_bot_values(scenario: Scenario) -> None:
    prom = scenario.prom
    sel = f'{{ensemble_strategy_id="{STRATEGY}"}}'
    by_name = {m.name: m.prometheus for m in registry.METRICS}
    bars = by_name[registry.BARS]
    prom.wait_for(f"{bars}{sel} == {BARS}", timeout=30)
    for name, value in expected_levels(scenario.result).items():
        (item,) = prom.promql(f"{by_name[name]}{sel}")
        got = float(item["value"][1])
        assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9), (name, got, value)
    # The heartbeat is wall-clock unix time of the bot's last beat: its age is small.
    heartbeat = by_name[registry.HEARTBEAT_TIMESTAMP]
    (age,) = prom.promql(f"time() - {heartbeat}{sel}")
    assert 0 <= float(age["value"][1]) < time.time() - scenario.started + 5
    # Labels a dashboard groups by.
    (eq,) = prom.promql(f"{by_name[registry.EQUITY]}{sel}")
    assert eq["metric"]["job"] == "ensemble-bot"
    assert eq["metric"]["deployment_environment_name"] == "paper"


def test_prometheus_saw_the_equity_path(scenario: Scenario) -> None:
    """Scraped over the run, equity took values the bot produced, in bar order."""
    equity = {m.name: m.prometheus for m in registry.METRICS}[registry.EQUITY]
    (series,) = scenario.prom.promql(
        f'{equity}{{ensemble_strategy_id="{STRATEGY}"}}[10m]')
    values = [float(v) for _, v in series["values"]]
    produced = [p["equity"] for p in scenario.result["produced"]]
    positions = [produced.index(v) for v in values]  # ValueError: a value never produced
    assert positions == sorted(positions)
    assert values[-1] == produced[-1]


def test_bot_files_are_on_disk(scenario: Scenario) -> None:
    root: Path = scenario.run.root
    hourly = [r for f in sorted((root / "logs/1h/health_snapshot" / STRATEGY).glob("*.jsonl"))
              for r in read_jsonl(f)]
    assert len(hourly) == scenario.result["records"]["1h"] == BARS - 1
