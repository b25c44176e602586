"""The Loki and Tempo overlays, run for real against a second collector standing in as the
OTLP/HTTP (Loki) and OTLP/gRPC (Tempo) endpoint.

Checks what the overlays do on the way: below-INFO logs stay in the local archive only,
secret-named fields are removed everywhere, spans travel to the traces backend.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from collector_support import (
    BACKENDS_DIR,
    Collector,
    archived_logs,
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


def test_loki_and_tempo_overlays(collector: Callable[..., Collector]) -> None:
    backend = collector(name="backend")  # plays Loki (OTLP/HTTP) and Tempo (OTLP/gRPC)
    agent = collector("config.yaml", BACKENDS_DIR / "loki.yaml", BACKENDS_DIR / "tempo.yaml",
                      name="agent", env={
                          # Loki's URL is <base>/otlp; the stand-in takes OTLP at its root.
                          "ENSEMBLE_LOKI_OTLP_ENDPOINT": backend.otlp_http_url,
                          "ENSEMBLE_TEMPO_ENDPOINT": backend.otlp_grpc_endpoint,
                          "ENSEMBLE_TEMPO_INSECURE": "true",
                      })
    run = secrets.token_hex(4)
    trace_id = secrets.token_hex(16)
    post(agent, "/v1/logs", logs_request(run))
    post(agent, "/v1/traces", traces_request(trace_id))

    def texts(c: Collector) -> set[str]:
        return {body_text(r.body) for r in archived_logs(c.archive("logs"))}

    everything = {f"{run} debug", f"{run} info", f"{run} unspecified", f"{run} warn"}
    wait_until(lambda: texts(agent) == everything, timeout=20,
               message=lambda: f"agent archive: {texts(agent)}")
    shipped = everything - {f"{run} debug"}
    wait_until(lambda: texts(backend) == shipped, timeout=20,
               message=lambda: f"backend got: {texts(backend)}")

    for c in (agent, backend):
        for r in archived_logs(c.archive("logs")):
            assert "process.command_args" not in r.resource
            assert not {"api_key", "broker.password"} & set(r.attributes), r.attributes
            if isinstance(r.body, dict):
                assert "Secret" not in r.body and r.body["qty"] == "3"
            if body_text(r.body) == f"{run} info":
                assert r.attributes["symbol"] == "EURUSD"
                assert len(r.attributes["note"]) == 4096

    def spans(c: Collector) -> list[str]:
        return [s["traceId"] for req in c.archive("traces") for rs in req["resourceSpans"]
                for ss in rs["scopeSpans"] for s in ss["spans"]]

    wait_until(lambda: spans(backend) == [trace_id], timeout=20,
               message=lambda: f"backend spans: {spans(backend)}")
    assert spans(agent) == [trace_id]
