"""The Loki and Tempo overlays, run for real against Apache-2.0 servers that speak the same
protocols (Loki, Tempo and Grafana are AGPL: never built or run here): VictoriaLogs takes
the Loki overlay's OTLP/HTTP logs, Jaeger v2 the Tempo overlay's OTLP/gRPC spans.

Checks what the overlays do on the way: below-INFO logs stay in the local archive only,
secret-named fields are removed everywhere, spans travel to the traces backend.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from backend_support import BackendFactory, logsql
from collector_support import (
    BACKENDS_DIR,
    Collector,
    archived_logs,
    http_get,
    http_request,
    wait_until,
)

from ensemble_otel.contract import registry

pytestmark = pytest.mark.integration

DEBUG, INFO, UNSPECIFIED, WARN = 5, 9, 0, 13


def kv(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def logs_request(run: str) -> bytes:
    records = [
        {"severityNumber": DEBUG, "body": {"stringValue": f"{run} debug"}},
        {"severityNumber": INFO, "body": {"stringValue": f"{run} info"},
         "attributes": [kv("symbol", "EURUSD"), kv("api_key", "k-1"),
                        kv("broker.password", "p-1"), kv("note", "x" * 5000)]},
        {"severityNumber": UNSPECIFIED, "body": {"kvlistValue": {"values": [
            kv("event", f"{run} unspecified"), kv("Secret", "s-1"), kv("qty", "3")]}}},
        {"severityNumber": WARN, "body": {"stringValue": f"{run} warn"}},
    ]
    return json.dumps({"resourceLogs": [{
        "resource": {"attributes": [kv(registry.STRATEGY_ID_ATTRIBUTE, "it-backends"),
                                    kv("process.command_args", "--api-key=k-2")]},
        "scopeLogs": [{"scope": {"name": "test"}, "logRecords": records}],
    }]}).encode()


def traces_request(trace_id: str) -> bytes:
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [kv(registry.STRATEGY_ID_ATTRIBUTE, "it-backends")]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": [{
            "traceId": trace_id, "spanId": secrets.token_hex(8), "name": "rebalance",
            "kind": 1, "startTimeUnixNano": "1704067200000000000",
            "endTimeUnixNano": "1704067201000000000"}]}],
    }]}).encode()


def post(agent: Collector, path: str, body: bytes) -> None:
    status, answer = http_request("POST", f"{agent.otlp_http_url}{path}", body=body,
                                  headers={"Content-Type": "application/json"})
    assert status == 200, answer


def body_text(body: Any) -> str:
    return body if isinstance(body, str) else str(body.get("event"))


MISSING_MSG = "missing _msg field"


def stored_text(row: dict[str, Any]) -> str:
    """A VictoriaLogs row's message: the string body, else the map body's event field."""
    return str(row["event"]) if row["_msg"].startswith(MISSING_MSG) else str(row["_msg"])


def test_loki_and_tempo_overlays(collector: Callable[..., Collector],
                                 backends: BackendFactory) -> None:
    logs_store = backends.victorialogs().start()  # Loki's protocol: OTLP/HTTP
    traces_store = backends.jaeger().start()  # Tempo's protocol: OTLP/gRPC
    agent = collector("config.yaml", BACKENDS_DIR / "loki.yaml", BACKENDS_DIR / "tempo.yaml",
                      name="agent", env={
                          # Loki's URL is <base>/otlp; VictoriaLogs' is <base>/insert/opentelemetry.
                          "ENSEMBLE_LOKI_OTLP_ENDPOINT": f"{logs_store.url}/insert/opentelemetry",
                          "ENSEMBLE_TEMPO_ENDPOINT":
                              f"127.0.0.1:{traces_store.extra_ports['otlp']}",
                          "ENSEMBLE_TEMPO_INSECURE": "true",
                      })
    run = secrets.token_hex(4)
    trace_id = secrets.token_hex(16)
    post(agent, "/v1/logs", logs_request(run))
    post(agent, "/v1/traces", traces_request(trace_id))

    def texts(c: Collector) -> set[str]:
        return {body_text(r.body) for r in archived_logs(c.archive("logs"))}

    def stored() -> dict[str, dict[str, Any]]:
        return {stored_text(row): row for row in logsql(logs_store, "*")}

    everything = {f"{run} debug", f"{run} info", f"{run} unspecified", f"{run} warn"}
    wait_until(lambda: texts(agent) == everything, timeout=20,
               message=lambda: f"agent archive: {texts(agent)}")
    shipped = everything - {f"{run} debug"}
    wait_until(lambda: set(stored()) == shipped, timeout=30,
               message=lambda: f"VictoriaLogs got: {set(stored())}")

    for r in archived_logs(agent.archive("logs")):
        assert "process.command_args" not in r.resource
        assert not {"api_key", "broker.password"} & set(r.attributes), r.attributes
        if isinstance(r.body, dict):
            assert "Secret" not in r.body and r.body["qty"] == "3"
        if body_text(r.body) == f"{run} info":
            assert r.attributes["symbol"] == "EURUSD"
            assert len(r.attributes["note"]) == 4096
    for text, row in stored().items():
        assert not {"process.command_args", "api_key", "broker.password", "Secret"} & set(row)
        if text == f"{run} unspecified":
            assert row["qty"] == "3"
        if text == f"{run} info":
            assert row["symbol"] == "EURUSD"
            assert len(row["note"]) == 4096

    def spans() -> list[str]:
        status, body = http_get(f"{traces_store.url}/api/traces/{trace_id}")
        if status != 200:
            return []
        return [s["traceID"] for t in json.loads(body).get("data") or [] for s in t["spans"]]

    wait_until(lambda: spans() == [trace_id], timeout=30,
               message=lambda: f"Jaeger spans: {spans()}")
    assert [s["traceId"] for req in agent.archive("traces") for rs in req["resourceSpans"]
            for ss in rs["scopeSpans"] for s in ss["spans"]] == [trace_id]
