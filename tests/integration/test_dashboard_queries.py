"""No dead panel, no rule on a metric that does not exist, whichever way metrics travel.

An instrumented paper bot exports to the real collector (collector/config.yaml), and the
metrics reach a store by one of four paths (each test runs for each):

- ``scrape``: a Prometheus scrapes the collector's prometheus exporter;
- ``remote_write``: collector/backends/prometheus-remote-write.yaml to a Prometheus;
- ``prometheus_otlp``: collector/backends/prometheus-otlp.yaml to Prometheus 3's native OTLP
  receiver, with deploy/prometheus/prometheus.yml's promoted resource attributes;
- ``victoriametrics``: collector/backends/victoriametrics.yaml to VictoriaMetrics over OTLP
  with Prometheus naming (no rule engine there: its queries run, the rule evaluation
  test covers the three Prometheus paths).

The Prometheus loads deploy/prometheus/rules.yml. Then:

- every PromQL target of every dashboard in deploy/grafana/dashboards, with the strategy
  variable set to the bot's strategy id, returns data for that strategy;
- every recording rule's expression returns data for that strategy, and Prometheus itself
  evaluates every rule without error and records the series;
- every metric selector inside every alert returns data for that strategy (an alert is
  quiet on healthy data, so its whole expression is empty by design), and on this healthy
  bot every alert expression is indeed empty;
- every series the contract registry names (``Metric.prometheus``) exists.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from collector_support import BACKENDS_DIR

from ensemble_otel.contract.registry import (
    BARS,
    ENVIRONMENT_ATTRIBUTE,
    EQUITY,
    METRICS,
    METRICS_BY_NAME,
    SCHEMA_VERSION_ATTRIBUTE,
    STRATEGY_ID_ATTRIBUTE,
)


def _load_deploy_queries() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "deploy" / "deploy_queries.py"
    spec = importlib.util.spec_from_file_location("deploy_queries", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("deploy_queries", module)
    spec.loader.exec_module(module)
    return module


dq = _load_deploy_queries()

STRATEGY = "dash-bot"
STRATEGY_LABEL = "ensemble_strategy_id"


def _has_strategy(result: list[dict[str, Any]]) -> bool:
    return any(item["metric"].get(STRATEGY_LABEL) == STRATEGY for item in result)


def _dead(prom: Any, queries: dict[str, str]) -> dict[str, str]:
    """name -> query for every query that returns nothing for the strategy."""
    return {name: q for name, q in queries.items() if not _has_strategy(prom.promql(q))}


def _wait_all_alive(prom: Any, queries: dict[str, str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        dead = _dead(prom, queries)
        if not dead or time.monotonic() > deadline:
            return dead
        time.sleep(0.5)


PROMETHEUS_PATHS = ("scrape", "remote_write", "prometheus_otlp")
METRICS_PATHS = (*PROMETHEUS_PATHS, "victoriametrics")


def _with_rules(prom: Any) -> Any:
    """Start a Prometheus (not started yet) with deploy/prometheus/rules.yml loaded."""
    base_config = prom.config

    def config_with_rules() -> dict[str, Any]:
        config = base_config()
        config["rule_files"] = [str(dq.RULES)]
        return config

    prom.config = config_with_rules
    return prom.start()


def _metrics_path(path: str, collector: Any, prometheus: Any, backends: Any) -> tuple[Any, Any]:
    """(agent collector, store answering PromQL) with the bot's metrics going by ``path``."""
    if path == "scrape":
        col = collector()
        return col, _with_rules(prometheus(col, scrape_interval="1s", start=False))
    if path == "remote_write":
        prom = _with_rules(prometheus(remote_write_receiver=True, start=False))
        col = collector("config.yaml", BACKENDS_DIR / "prometheus-remote-write.yaml",
                        env={"ENSEMBLE_REMOTE_WRITE_URL": prom.remote_write_url})
        return col, prom
    if path == "prometheus_otlp":
        prom = _with_rules(backends.prometheus3())
        col = collector("config.yaml", BACKENDS_DIR / "prometheus-otlp.yaml",
                        env={"ENSEMBLE_PROMETHEUS_OTLP_ENDPOINT": prom.otlp_endpoint})
        return col, prom
    assert path == "victoriametrics", path
    vm = backends.victoriametrics().start()
    col = collector("config.yaml", BACKENDS_DIR / "victoriametrics.yaml",
                    env={"ENSEMBLE_VICTORIAMETRICS_ENDPOINT": vm.otlp_endpoint})
    return col, vm


def _get_json(prom: Any, path: str, params: dict[str, str] | None = None) -> Any:
    """GET one Prometheus API path (on 127.0.0.1) and return its ``data``."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    url = f"{prom.url}{path}{query}"
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=10) as response:
        payload = json.loads(response.read())
    assert payload["status"] == "success", payload
    return payload["data"]


@pytest.mark.parametrize("path", METRICS_PATHS)
def test_every_dashboard_and_rule_query_returns_data(
    path: str, collector: Any, prometheus: Any, bot: Any, backends: Any,
) -> None:
    col, prom = _metrics_path(path, collector, prometheus, backends)
    # 48 hourly bars: both the 1h and the 24h buckets close, so every series exists.
    result = bot(col.otlp_grpc_url, strategy_id=STRATEGY, bars=48, pause=0.05,
                 export_interval_ms=500, linger=3.0).wait()

    # The dashboards' own queries, with the strategy variable set to the bot's id.
    dashboards = dq.dashboard_files()
    assert dashboards, "no dashboard in deploy/grafana/dashboards"
    panel_queries = {
        q.name: q.expr
        for path in dashboards
        for q in dq.dashboard_queries(path, {"strategy": STRATEGY})
    }
    assert panel_queries
    rules = dq.rule_queries()
    record_queries = {q.name: q.expr for q in rules if q.source == "record"}
    only_bot = {STRATEGY_LABEL: STRATEGY}
    alert_selectors = {
        f"{q.name}: {dq.instant_selector(sel)}": dq.instant_selector(sel, only_bot)
        for q in rules if q.source == "alert"
        for sel in dq.selectors(q.expr)
    }
    assert alert_selectors

    # Every series the registry names exists too (the contract's `prometheus` names are
    # what the collector produces).
    registry_series = {
        f"registry: {m.name}": f'{m.prometheus}{{{STRATEGY_LABEL}="{STRATEGY}"}}'
        for m in METRICS
    }

    everything = {**panel_queries, **record_queries, **alert_selectors, **registry_series}
    dead = _wait_all_alive(prom, everything, timeout=60)
    assert not dead, "queries without data for the bot's strategy:\n" + "\n".join(
        f"  {name}: {query}" for name, query in dead.items())

    # Numbers, not just presence: the equity panel and the bar counter tell what the bot did.
    equity = METRICS_BY_NAME[EQUITY].prometheus
    bars = METRICS_BY_NAME[BARS].prometheus
    [eq] = prom.promql(f'max by ({STRATEGY_LABEL}) ({equity}{{{STRATEGY_LABEL}="{STRATEGY}"}})')
    assert float(eq["value"][1]) == result["equity"]
    [n] = prom.promql(f'max by ({STRATEGY_LABEL}) ({bars}{{{STRATEGY_LABEL}="{STRATEGY}"}})')
    assert float(n["value"][1]) == result["bars"]

    # The same labels on every path (docs/backends.md lists what differs: job/instance,
    # and the other resource attributes, which VictoriaMetrics keeps as labels).
    labels = {key for m in METRICS
              for item in prom.promql(f'{m.prometheus}{{{STRATEGY_LABEL}="{STRATEGY}"}}')
              for key in item["metric"]}
    assert {"__name__", STRATEGY_LABEL, "ensemble_schema_version",
            "deployment_environment_name", "ensemble_period"} <= labels, labels
    if path != "victoriametrics":
        assert {"job", "instance"} <= labels, labels
        assert "service_instance_id" not in labels, labels

    # The dashboard's strategy variable lists the bot.
    for path in dashboards:
        dashboard = dq.load_dashboard(path)
        for variable in dashboard["templating"]["list"]:
            if variable["name"] != "strategy":
                continue
            metric = variable["definition"].split("(", 1)[1].split(",", 1)[0].strip()
            values = _get_json(prom, f"/api/v1/label/{STRATEGY_LABEL}/values",
                               {"match[]": metric})
            assert STRATEGY in values, f"{path.name}: variable strategy lacks {STRATEGY}"


@pytest.mark.parametrize("path", PROMETHEUS_PATHS)
def test_prometheus_evaluates_every_rule_and_alerts_stay_quiet_on_a_healthy_bot(
    path: str, collector: Any, prometheus: Any, bot: Any, backends: Any,
) -> None:
    col, prom = _metrics_path(path, collector, prometheus, backends)
    bot(col.otlp_grpc_url, strategy_id=STRATEGY, bars=48, pause=0.05,
        export_interval_ms=500, linger=3.0).wait()

    rules = dq.rule_queries()
    records = [q.name for q in rules if q.source == "record"]

    # The server's rule manager records every series for the strategy.
    dead = _wait_all_alive(prom, {r: r for r in records}, timeout=60)
    assert not dead, f"recorded series missing: {sorted(dead)}"

    # ... and reports every rule healthy (no evaluation error, e.g. a bad label match).
    groups = _get_json(prom, "/api/v1/rules")["groups"]
    seen = {}
    for group in groups:
        for rule in group["rules"]:
            seen[rule["name"]] = rule
    assert set(seen) == {q.name for q in rules}
    unhealthy = {name: r.get("lastError") for name, r in seen.items() if r["health"] != "ok"}
    assert not unhealthy, unhealthy

    # A healthy bot (fresh heartbeat, bars flowing, small drawdown, no breach) fires nothing.
    for query in rules:
        if query.source == "alert":
            assert prom.promql(query.expr) == [], f"{query.name} matches on a healthy bot"
    # An alert the rule manager evaluated before the first sample arrived (an absence) is
    # pending until its next evaluation: wait a few evaluations for the state to settle.
    deadline = time.monotonic() + 30
    while True:
        firing = [r["name"] for g in _get_json(prom, "/api/v1/rules")["groups"]
                  for r in g["rules"]
                  if r.get("type") == "alerting" and r.get("state") != "inactive"]
        if not firing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not firing, f"alerts active on a healthy bot: {firing}"


def test_deploy_config_promotes_what_the_scrape_path_labels() -> None:
    """deploy/prometheus/prometheus.yml promotes, for OTLP, the resource attributes that the
    collector's prometheus exporter and remote write turn into labels."""
    deploy = yaml.safe_load((dq.RULES.parent / "prometheus.yml").read_text())
    promoted = set(deploy["otlp"]["promote_resource_attributes"])
    assert {STRATEGY_ID_ATTRIBUTE, SCHEMA_VERSION_ATTRIBUTE, ENVIRONMENT_ATTRIBUTE} <= promoted
    agent = yaml.safe_load((BACKENDS_DIR.parent / "config.yaml").read_text())
    included = agent["exporters"]["prometheus"]["resource_constant_labels"]["included"]
    assert {p for p in included if "*" not in p} <= promoted
