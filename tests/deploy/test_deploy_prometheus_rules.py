"""deploy/prometheus: promtool's own checks and rule tests, and the rules' names against
the telemetry contract."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from deploy_queries import RULES, matcher_labels, rule_queries, selectors
from deploy_support import DEPLOY, load_yaml
from integration_gate import require_binary

from ensemble_otel.contract.registry import (
    HEARTBEAT_TIMESTAMP,
    METRICS,
    METRICS_BY_NAME,
    PERIOD_ATTRIBUTE,
    RESOURCE_ATTRIBUTES,
)
from ensemble_otel.settings import DEFAULT_HEARTBEAT_INTERVAL, Settings

PROMETHEUS = DEPLOY / "prometheus"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
HOW_TO_GET_PROMTOOL = "run scripts/install-system-deps.sh (Debian package prometheus)"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = require_binary("promtool", HOW_TO_GET_PROMTOOL)
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=120, check=False
    )


def prometheus_label(attribute: str) -> str:
    """The collector's Prometheus label for an OpenTelemetry attribute name."""
    return attribute.replace(".", "_")


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    alerts_and_records = len(rule_queries())
    assert f"SUCCESS: {alerts_and_records} rules found" in result.stdout


def test_promtool_check_config() -> None:
    """The compose stack's Prometheus config, with the rule file it loads."""
    result = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules.yml" in result.stdout


def test_promtool_test_rules() -> None:
    assert RULE_TESTS, "no rule tests in deploy/prometheus/tests"
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


def test_promtool_test_rules_fails_on_a_broken_rule(tmp_path: Path) -> None:
    """The rule tests bite: a stale threshold ten times too high fails them."""
    rules = RULES.read_text(encoding="utf-8")
    assert rules.count("> 180\n") == 1
    (tmp_path / "rules.yml").write_text(rules.replace("> 180\n", "> 1800\n"), encoding="utf-8")
    (tmp_path / "tests").mkdir()
    heartbeat_test = PROMETHEUS / "tests" / "heartbeat_test.yml"
    copy = tmp_path / "tests" / heartbeat_test.name
    copy.write_text(heartbeat_test.read_text(encoding="utf-8"), encoding="utf-8")
    result = promtool("test", "rules", str(copy))
    assert result.returncode != 0
    assert "EnsembleHeartbeatStale" in result.stdout + result.stderr


def _alert_cases() -> list[tuple[str, str, bool]]:
    """(test name, alert name, fires?) for every alert_rule_test case."""
    cases = []
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.append((test.get("name", path.name), case["alertname"],
                              bool(case.get("exp_alerts"))))
    return cases


ALERTS = [q.name for q in rule_queries() if q.source == "alert"]


@pytest.mark.parametrize("alert", ALERTS)
def test_each_alert_has_a_firing_test_and_a_healthy_quiet_test(alert: str) -> None:
    cases = [c for c in _alert_cases() if c[1] == alert]
    assert any(fires for _, _, fires in cases), f"{alert}: no rule test makes it fire"
    assert any(
        not fires and "healthy" in name for name, _, fires in cases
    ), f"{alert}: no rule test named '... healthy' shows it quiet"


def test_rule_tests_only_name_existing_alerts() -> None:
    unknown = {name for _, name, _ in _alert_cases()} - set(ALERTS)
    assert not unknown, f"rule tests name alerts that rules.yml lacks: {sorted(unknown)}"


def test_rules_select_only_contract_metrics() -> None:
    """Every series a rule reads is a registry `prometheus` name or a recorded series."""
    known = {m.prometheus for m in METRICS} | {
        q.name for q in rule_queries() if q.source == "record"
    }
    for query in rule_queries():
        for sel in selectors(query.expr):
            assert sel.name in known, f"{query.name}: {sel.name} is not in the registry"


def test_rules_use_contract_label_names() -> None:
    allowed = {prometheus_label(a) for a in RESOURCE_ATTRIBUTES} | {
        prometheus_label(PERIOD_ATTRIBUTE)
    }
    for query in rule_queries():
        for sel in selectors(query.expr):
            for label in matcher_labels(sel):
                assert label in allowed, f"{query.name}: unknown label {label}"
        if "by (" in query.expr:
            assert "by (ensemble_strategy_id)" in query.expr, query.name
    assert prometheus_label("ensemble.strategy.id") in allowed


def test_bucket_rules_select_an_existing_period() -> None:
    """ensemble_period values used in rules are periods the health records know."""
    from ensemble_otel.contract.registry import HEALTH_1H

    periods = next(f for f in HEALTH_1H.fields if f.name == "period").enum
    text = RULES.read_text(encoding="utf-8")
    for query in rule_queries():
        for sel in selectors(query.expr):
            for matcher in sel.matchers.matchers:
                if matcher.name == prometheus_label(PERIOD_ATTRIBUTE):
                    assert matcher.value in periods, f"{query.name}: {matcher.value}"
    assert 'ensemble_period="1h"' in text


def test_stale_threshold_covers_three_missed_exports() -> None:
    """The heartbeat gauge is read at each metric export: the stale threshold must allow
    three default export intervals (and three heartbeat intervals)."""
    alert = next(q for q in rule_queries() if q.name == "EnsembleHeartbeatStale")
    assert METRICS_BY_NAME[HEARTBEAT_TIMESTAMP].prometheus in alert.expr
    threshold = float(alert.expr.rsplit(">", 1)[1])
    floor = 3 * max(DEFAULT_HEARTBEAT_INTERVAL, Settings().metric_export_interval)
    assert threshold >= floor
    assert threshold <= 2 * floor  # and stays a small multiple: it is a liveness alert


def test_every_alert_has_severity_and_summary() -> None:
    doc = load_yaml(RULES)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
                assert rule["annotations"]["summary"], rule["alert"]
                assert rule["annotations"]["description"], rule["alert"]
