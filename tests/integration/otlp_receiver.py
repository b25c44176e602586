"""A tiny OTLP/HTTP receiver on 127.0.0.1 for tests: what a bot exported, decoded.

It accepts ``/v1/metrics``, ``/v1/logs`` and ``/v1/traces`` (protobuf, optionally gzip),
decodes them with ``opentelemetry-proto`` and keeps every request. Use as a context
manager; ``endpoint`` goes into ``OTEL_EXPORTER_OTLP_ENDPOINT`` with
``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_KINDS: dict[str, tuple[type[Message], type[Message]]] = {
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest,
                    metrics_service_pb2.ExportMetricsServiceResponse),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest,
                 logs_service_pb2.ExportLogsServiceResponse),
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest,
                   trace_service_pb2.ExportTraceServiceResponse),
}


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(items: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in items}


@dataclass(frozen=True)
class Point:
    """One exported metric data point with its resource."""

    request: int  # index of the export request it came in
    resource: dict[str, Any]
    scope: str
    name: str
    unit: str
    value: float
    attributes: dict[str, Any]


@dataclass(frozen=True)
class LogRecord:
    resource: dict[str, Any]
    event_name: str
    body: Any
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Span:
    resource: dict[str, Any]
    name: str


class OtlpReceiver:
    """Start with ``with OtlpReceiver() as rx:``; read ``rx.points()`` etc. at any time."""

    def __init__(self) -> None:
        self.requests: dict[str, list[Message]] = {path: [] for path in _KINDS}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                kinds = _KINDS.get(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if kinds is None:
                    self.send_error(404)
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = kinds[0]()
                request.ParseFromString(body)
                with receiver._lock:
                    receiver.requests[self.path].append(request)
                reply = kinds[1]().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _snapshot(self, path: str) -> list[Any]:
        with self._lock:
            return list(self.requests[path])

    def metric_requests(self) -> list[Any]:
        return self._snapshot("/v1/metrics")

    def points(self) -> list[Point]:
        out = []
        for i, req in enumerate(self.metric_requests()):
            for rm in req.resource_metrics:
                resource = attributes(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        data = getattr(m, m.WhichOneof("data"))
                        for p in data.data_points:
                            value = (p.as_double if p.WhichOneof("value") == "as_double"
                                     else p.as_int)
                            out.append(Point(i, resource, sm.scope.name, m.name, m.unit,
                                             float(value), attributes(p.attributes)))
        return out

    def logs(self) -> list[LogRecord]:
        out = []
        for req in self._snapshot("/v1/logs"):
            for rl in req.resource_logs:
                resource = attributes(rl.resource.attributes)
                for sl in rl.scope_logs:
                    for r in sl.log_records:
                        out.append(LogRecord(resource, r.event_name, any_value(r.body),
                                             attributes(r.attributes)))
        return out

    def spans(self) -> list[Span]:
        out = []
        for req in self._snapshot("/v1/traces"):
            for rs in req.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    out.extend(Span(resource, s.name) for s in ss.spans)
        return out
