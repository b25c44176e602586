"""One huge event field must not cost the small events exported with it.

Today an 8 MB field goes into the same OTLP log batch as the small events around it; the
receiver refuses the batch (gRPC RESOURCE_EXHAUSTED, 4 MiB by default) and every event in
it is lost. Now the event is bounded at the source: a record over 1 MiB is refused whole
(counted), a string over 64 KiB is cut in the log record (the JSONL keeps it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from otlp_endpoints import free_port

import ensemble_otel
from ensemble_otel.events import MAX_FIELD_BYTES, Refused


class LogsReceiver(logs_service_pb2_grpc.LogsServiceServicer):  # type: ignore[misc]
    """An OTLP/gRPC logs endpoint with gRPC's default 4 MiB message limit."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        with self.lock:
            for rl in request.resource_logs:
                for sl in rl.scope_logs:
                    self.bodies.extend(r.body for r in sl.log_records)
        return logs_service_pb2.ExportLogsServiceResponse()


@pytest.fixture
def receiver() -> Iterator[tuple[str, LogsReceiver]]:
    port = free_port()
    servicer = LogsReceiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", servicer
    finally:
        server.stop(grace=None).wait(5)


def test_a_huge_field_does_not_lose_the_small_events(
    tmp_path: Path, receiver: tuple[str, LogsReceiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, servicer = receiver
    for name in list(os.environ):
        if name.startswith(("OTEL_", "ENSEMBLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    telemetry = ensemble_otel.configure(root=tmp_path, strategy_id="big", otlp_endpoint=url,
                                        otlp_metrics=False)
    for i in range(20):
        telemetry.events.emit("small", i=i)
    refused = telemetry.events.emit("huge", blob="x" * (8 << 20))
    long = telemetry.events.emit("long", blob="y" * (500 << 10))
    for i in range(20, 40):
        telemetry.events.emit("small", i=i)
    ensemble_otel.shutdown(timeout=10.0)
    assert isinstance(refused, Refused)
    assert long["blob"] == "y" * (500 << 10)
    small = [b for b in servicer.bodies if b.WhichOneof("value") == "kvlist_value"
             and b.kvlist_value.values[0].key == "i"]
    assert sorted(b.kvlist_value.values[0].value.int_value for b in small) == list(range(40))
    [cut] = [b for b in servicer.bodies if b.WhichOneof("value") == "kvlist_value"
             and b.kvlist_value.values[0].key == "blob"]
    text = cut.kvlist_value.values[0].value.string_value
    assert len(text) < MAX_FIELD_BYTES + 100 and "truncated" in text
    lines = [orjson.loads(x) for p in (tmp_path / "logs" / "events" / "big").glob("*.jsonl")
             for x in p.read_bytes().splitlines()]
    assert [r["event"] for r in lines].count("small") == 40
    assert next(r for r in lines if r["event"] == "long")["blob"] == "y" * (500 << 10)
    assert not [r for r in lines if r["event"] == "huge"]
