"""The PromQL in deploy/: rule and dashboard expressions, and the metric selectors in them.

Used by the offline checks in this folder and by tests/integration/test_dashboard_queries.py
(which runs every expression against a real Prometheus).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"

# Grafana's interval macros, replaced by fixed windows when a query runs outside Grafana.
GRAFANA_MACROS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it comes from."""

    source: str  # "record", "alert" or "panel"
    name: str  # record name, alert name, or "<dashboard>: <panel title> [<refId>]"
    expr: str


def rule_queries(path: Path = RULES) -> list[Query]:
    with path.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    out: list[Query] = []
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                out.append(Query("record", rule["record"], rule["expr"]))
            else:
                out.append(Query("alert", rule["alert"], rule["expr"]))
    return out


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_panels(dashboard.get("panels", [])))


def dashboard_queries(path: Path, variables: dict[str, str] | None = None) -> list[Query]:
    """Every Prometheus target of every panel, with ``$var`` / ``${var}`` substituted."""
    dashboard = load_dashboard(path)
    out: list[Query] = []
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr is None:
                continue
            out.append(
                Query(
                    "panel",
                    f"{path.name}: {panel.get('title')} [{target.get('refId')}]",
                    substitute(expr, variables or {}),
                )
            )
    return out


def substitute(expr: str, variables: dict[str, str]) -> str:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    for name, value in variables.items():
        expr = re.sub(r"\$\{" + re.escape(name) + r"(?::[a-z]+)?\}", value, expr)
        expr = re.sub(r"\$" + re.escape(name) + r"\b", value, expr)
    return expr


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    """Every vector selector in ``expr`` (inside range selectors and subqueries too)."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def matcher_labels(selector: promql_parser.VectorSelector) -> list[str]:
    """Label names a selector matches on (the metric name excluded)."""
    return [m.name for m in selector.matchers.matchers if m.name != "__name__"]


def instant_selector(
    selector: promql_parser.VectorSelector, extra: dict[str, str] | None = None
) -> str:
    """The selector as an instant query of its own, without offset or @, plus ``extra``
    equality matchers (e.g. the strategy id, so only one bot's series count)."""
    parts = [
        f"{m.name}{_OPS[str(m.op)]}{json.dumps(m.value)}"
        for m in selector.matchers.matchers
        if m.name != "__name__"
    ]
    parts += [f"{name}={json.dumps(value)}" for name, value in (extra or {}).items()]
    return f"{selector.name}{{{','.join(parts)}}}" if parts else str(selector.name)


_OPS = {
    "MatchOp.Equal": "=",
    "MatchOp.NotEqual": "!=",
    "MatchOp.Re": "=~",
    "MatchOp.NotRe": "!~",
}
