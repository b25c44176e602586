"""deploy/grafana: the dashboard's queries name contract metrics, filter on the strategy
variable and use a provisioned datasource; the provisioning files are well formed.

Whether every query returns data is tests/integration/test_dashboard_queries.py's job.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy_queries import (
    dashboard_files,
    dashboard_panels,
    dashboard_queries,
    load_dashboard,
    matcher_labels,
    selectors,
    substitute,
)
from deploy_support import DEPLOY, load_yaml
from integration_gate import require_binary

from ensemble_otel.contract.registry import (
    BARS,
    BUCKET_PNL,
    BUCKET_TURNOVER,
    DRAWDOWN,
    DRAWDOWN_MAX,
    EQUITY,
    HEARTBEAT_TIMESTAMP,
    METRICS,
    METRICS_BY_NAME,
    RISK_BREACHES,
    RISK_WARNINGS,
    STRATEGY_ID_ATTRIBUTE,
)

GRAFANA = DEPLOY / "grafana"
STRATEGY_LABEL = STRATEGY_ID_ATTRIBUTE.replace(".", "_")
DASHBOARDS = dashboard_files()


def datasource_uids() -> dict[str, str]:
    doc = load_yaml(GRAFANA / "provisioning" / "datasources" / "ensemble.yaml")
    return {ds["uid"]: ds["type"] for ds in doc["datasources"]}


def test_there_is_a_dashboard() -> None:
    assert [p.name for p in DASHBOARDS] == ["ensemble-strategy.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_strategy_variable(path: Path) -> None:
    dashboard = load_dashboard(path)
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "strategy"]
    assert variable["type"] == "query"
    assert f", {STRATEGY_LABEL})" in variable["definition"]
    assert variable["query"]["query"] == variable["definition"]
    metric = variable["definition"].split("(", 1)[1].split(",", 1)[0].strip()
    assert metric == METRICS_BY_NAME[HEARTBEAT_TIMESTAMP].prometheus
    assert variable["includeAll"] and variable["allValue"] == ".*"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_reads_contract_metrics_of_the_selected_strategy(path: Path) -> None:
    series = {m.prometheus for m in METRICS}
    queries = dashboard_queries(path)  # variables left in: they must parse as they are
    assert queries
    for query in queries:
        found = selectors(query.expr)
        assert found, f"{query.name}: no metric in {query.expr}"
        for sel in found:
            assert sel.name in series, f"{query.name}: {sel.name} is not in the registry"
            strategy = [m for m in sel.matchers.matchers if m.name == STRATEGY_LABEL]
            assert [(str(m.op), m.value) for m in strategy] == [("MatchOp.Re", "$strategy")], (
                f"{query.name}: {sel} does not filter on the strategy variable")
            assert set(matcher_labels(sel)) <= {STRATEGY_LABEL, "ensemble_period"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_issue_panels_are_there(path: Path) -> None:
    """Equity, drawdown and max drawdown, PnL per hour, turnover, risk tallies, heartbeat
    age and bars processed each have a query."""
    text = "\n".join(q.expr for q in dashboard_queries(path))
    for name in (EQUITY, DRAWDOWN, DRAWDOWN_MAX, BUCKET_PNL, BUCKET_TURNOVER, RISK_BREACHES,
                 RISK_WARNINGS, HEARTBEAT_TIMESTAMP, BARS):
        assert METRICS_BY_NAME[name].prometheus in text, name
    assert 'ensemble_period="1h"' in text


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_use_provisioned_datasources(path: Path) -> None:
    uids = datasource_uids()
    for panel in dashboard_panels(load_dashboard(path)):
        sources: list[dict[str, Any]] = [panel["datasource"]]
        sources += [t["datasource"] for t in panel.get("targets", [])]
        for source in sources:
            assert source["uid"] in uids, f"{panel['title']}: unknown datasource {source}"
            assert uids[source["uid"]] == source["type"], panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panel_layout(path: Path) -> None:
    """Unique ids and titles, every panel inside the 24-column grid, none overlapping."""
    panels = dashboard_panels(load_dashboard(path))
    assert len({p["id"] for p in panels}) == len(panels)
    assert len({p["title"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]


def test_substitute_replaces_variables_and_macros() -> None:
    expr = 'rate(x{a=~"$strategy", b="${strategy}", c="${strategy:regex}"}[$__rate_interval])'
    assert substitute(expr, {"strategy": "s1"}) == 'rate(x{a=~"s1", b="s1", c="s1"}[1m])'


def test_dashboard_provider_points_at_the_compose_mount() -> None:
    doc = load_yaml(GRAFANA / "provisioning" / "dashboards" / "ensemble.yaml")
    [provider] = doc["providers"]
    assert provider["type"] == "file"
    compose = load_yaml(DEPLOY / "compose" / "compose.yaml")
    mounts = compose["services"]["grafana"]["volumes"]
    target = provider["options"]["path"]
    assert any(m.split(":")[1] == target and m.split(":")[0].endswith("grafana/dashboards")
               for m in mounts), mounts


def test_datasources_point_at_compose_services() -> None:
    compose = load_yaml(DEPLOY / "compose" / "compose.yaml")
    doc = load_yaml(GRAFANA / "provisioning" / "datasources" / "ensemble.yaml")
    for ds in doc["datasources"]:
        host = ds["url"].split("://", 1)[1].split(":", 1)[0]
        assert host in compose["services"], ds["name"]
    assert sum(1 for ds in doc["datasources"] if ds.get("isDefault")) == 1


HEARTBEAT_PANELS = ("Heartbeat age now", "Heartbeat age")


def _panel_expr(title: str, strategy: str | None = None) -> str:
    [path] = DASHBOARDS
    [panel] = [p for p in dashboard_panels(load_dashboard(path)) if p["title"] == title]
    [target] = panel["targets"]
    expr: str = target["expr"]
    return expr if strategy is None else substitute(expr, {"strategy": strategy})


def _rule_expr(key: str, name: str) -> str:
    rules = [r for g in load_yaml(DEPLOY / "prometheus" / "rules.yml")["groups"]
             for r in g["rules"]]
    [rule] = [r for r in rules if r.get(key) == name]
    expr: str = rule["expr"]
    return expr


def _bare(expr: str) -> str:
    """``expr`` without the strategy variable's matcher and without spaces."""
    return "".join(expr.replace(f'{{{STRATEGY_LABEL}=~"$strategy"}}', "").split())


def test_heartbeat_age_panels_compute_what_the_rules_compute() -> None:
    """One beat from the future hides nothing: the panels leave out beats more than 300 s
    ahead of their scrape time, with the expressions of the alert and the recording rule."""
    alert = _rule_expr("alert", "EnsembleHeartbeatStale")
    assert _bare(_panel_expr("Heartbeat age now")) == _bare(alert.rsplit(">", 1)[0])
    recorded = _rule_expr("record", "ensemble_strategy_id:ensemble_heartbeat_age_seconds:min")
    assert _bare(_panel_expr("Heartbeat age")) == _bare(recorded)


def test_heartbeat_age_panels_show_a_dead_bot_despite_a_beat_from_the_future(
        tmp_path: Path) -> None:
    """promtool evaluates the panels' queries: delta beats every 15 s until 5m and dies;
    another instance of it sent one beat from year 2100 at 2m. At 4m the age is 0, at 12m
    the stat shows the 7 minutes since its last real beat."""
    exe = require_binary("promtool", "run scripts/install-system-deps.sh (Debian package "
                                     "prometheus)")
    names = {title: f"dashboard_panel_{i}" for i, title in enumerate(HEARTBEAT_PANELS)}
    rules = {"groups": [{"name": "panels", "rules": [
        {"record": names[t], "expr": _panel_expr(t, ".*")} for t in HEARTBEAT_PANELS]}]}
    series = 'ensemble_heartbeat_timestamp_seconds{{instance="{}",ensemble_strategy_id="delta"}}'

    def sample(name: str, minutes: int, value: int) -> dict[str, Any]:
        return {"expr": name, "eval_time": f"{minutes}m", "exp_samples": [
            {"labels": f'{name}{{ensemble_strategy_id="delta"}}', "value": value}]}

    test = {"rule_files": ["panels.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "15s",
        "input_series": [{"series": series.format("d1"), "values": "0+15x20"},
                         {"series": series.format("d2"), "values": "_x8 4102444800"}],
        "promql_expr_test": [
            sample(names["Heartbeat age now"], 4, 0), sample(names["Heartbeat age"], 4, 0),
            sample(names["Heartbeat age now"], 12, 420)],
    }]}
    (tmp_path / "panels.yml").write_text(json.dumps(rules))
    (tmp_path / "panels_test.yml").write_text(json.dumps(test))
    done = subprocess.run([exe, "test", "rules", str(tmp_path / "panels_test.yml")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
