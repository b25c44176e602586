"""OTLP endpoints that misbehave, on 127.0.0.1: refusing, black-holing, slow.

Each is a context manager with ``url`` (for ``OTEL_EXPORTER_OTLP_ENDPOINT``), ``port`` and
``requests`` (export requests received, by path; only the slow servers receive any). A
``port`` argument binds that port (a flapping endpoint keeps its address while its
behaviour changes); the default is a free one.

- :class:`Refusing`: nothing listens on the port, connections are refused at once.
- :class:`BlackHole`: a TCP listener that accepts every connection, reads nothing and
  never answers (an exporter waits for its whole timeout).
- :class:`SlowHttp`: an OTLP/HTTP server answering 200 with an empty export response after
  ``delay`` seconds (``delay=0``: a healthy endpoint).
- :class:`SlowGrpc`: an OTLP/gRPC server (metrics and logs services) answering after
  ``delay`` seconds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)

HOST = "127.0.0.1"
_REPLIES = {
    "/v1/metrics": metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString(),
    "/v1/logs": logs_service_pb2.ExportLogsServiceResponse().SerializeToString(),
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Endpoint:
    """What every endpoint has: an address and a count of the requests it received."""

    kind = "endpoint"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, path: str) -> None:
        with self._lock:
            self.requests[path] += 1

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class Refusing(Endpoint):
    """A loopback port where nothing listens."""

    kind = "refusing"


class BlackHole(Endpoint):
    """Accepts connections and never answers (the connections stay open until exit)."""

    kind = "black-hole"

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, self.port))
        self._sock.listen(64)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(conn)  # never read, never answered, never closed until exit
            self._count("connections")

    def __enter__(self) -> BlackHole:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._sock.close()


class _QuietServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that hung up mid-request is what these tests provoke


class SlowHttp(Endpoint):
    """OTLP/HTTP: reads the request, waits ``delay`` seconds, answers 200."""

    kind = "slow-http"

    def __init__(self, delay: float, port: int | None = None) -> None:
        super().__init__(port)
        self.delay = delay
        self._release = threading.Event()  # set at exit: handlers still waiting answer now
        self._connections: list[socket.socket] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the exporter reuses its connection

            def setup(self) -> None:
                super().setup()
                with endpoint._lock:
                    endpoint._connections.append(self.connection)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                endpoint._count(self.path)
                endpoint._release.wait(endpoint.delay)
                reply = _REPLIES.get(self.path)
                if reply is None:
                    self.send_error(404)
                    return
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the exporter gave up waiting (its timeout is shorter than delay)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = _QuietServer((HOST, self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="slow-http",
                                        daemon=True)

    def __enter__(self) -> SlowHttp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        with self._lock:  # kept-alive connections end with the server, as a process's would
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class SlowGrpc(Endpoint):
    """OTLP/gRPC: the metrics and logs services answer after ``delay`` seconds."""

    kind = "slow-grpc"

    def __init__(self, delay: float, port: int | None = None) -> None:
        import grpc

        super().__init__(port)
        self.delay = delay
        self._release = threading.Event()
        endpoint = self

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                endpoint._count("/v1/metrics")
                endpoint._release.wait(endpoint.delay)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                endpoint._count("/v1/logs")
                endpoint._release.wait(endpoint.delay)
                return logs_service_pb2.ExportLogsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), self._server)
        bound = self._server.add_insecure_port(f"{HOST}:{self.port}")
        if bound != self.port:
            raise OSError(f"gRPC server could not bind {HOST}:{self.port}")

    def __enter__(self) -> SlowGrpc:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        stopped = self._server.stop(grace=None)  # calls under way are aborted, as in a crash
        self._release.set()
        stopped.wait(5)


def slow(protocol: str, delay: float, port: int | None = None) -> Endpoint:
    """The slow server of ``protocol`` (``grpc`` or ``http/protobuf``)."""
    return SlowGrpc(delay, port) if protocol == "grpc" else SlowHttp(delay, port)
