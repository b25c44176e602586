"""The real backends for the integration tests, built by `make backends` into .tools/bin.

- :func:`backend_binary`: a binary from .tools/bin (skip locally, fail under
  ``ENSEMBLE_REQUIRE_INTEGRATION=1`` when it is missing).
- :class:`Server`: a backend process on 127.0.0.1 with its own data directory; start (and
  wait until ready), stop, kill, start again on the same port and data.
- :func:`make_prometheus3` (native OTLP, the deploy config's promoted attributes),
  :func:`make_victoriametrics`, :func:`make_victorialogs`, :func:`make_jaeger`.
- :func:`logsql`: a LogsQL query against VictoriaLogs, one dict per result row.

Everything listens on loopback on free ports; nothing is shared between tests.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from collector_support import (
    REPO_ROOT,
    Prometheus,
    _Process,
    free_port,
    hermetic_env,
    http_get,
    http_request,
    promql,
    require_binary,
    wait_until,
)

TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
HOW_TO_GET_BACKENDS = "run `make backends` (scripts/build-backends.sh)"
DEPLOY_PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"


def backend_binary(name: str) -> str:
    """The path of ``.tools/bin/<name>``; missing: skip, or fail in CI."""
    return require_binary(TOOLS_BIN / name, HOW_TO_GET_BACKENDS)


@dataclass
class Server(_Process):
    """A backend on 127.0.0.1:``port`` with its data under ``workdir``.

    ``make_argv(server)`` builds the command line at every start (so a restart keeps the
    port and the data); ``ready_path`` answers 200 once the server takes requests.
    """

    name: str
    workdir: Path
    port: int
    make_argv: Callable[[Server], list[str]]
    ready_path: str
    extra_ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        _Process.__init__(self, self.name, self.workdir / f"{self.name}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def start(self, *, timeout: float = 60.0) -> Server:
        self._spawn(self.make_argv(self), hermetic_env(), self.workdir)

        def ready() -> bool:
            if not self.running:
                raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
            return http_get(f"{self.url}{self.ready_path}", timeout=1.0)[0] == 200

        wait_until(ready, timeout=timeout, interval=0.1,
                   message=lambda: f"{self.name} not ready:\n{self.log_tail()}")
        return self


def _server(workdir: Path, name: str, argv: Callable[[Server], list[str]],
            ready_path: str, extra_ports: Sequence[str] = ()) -> Server:
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    return Server(name=name, workdir=directory, port=free_port(), make_argv=argv,
                  ready_path=ready_path, extra_ports={p: free_port() for p in extra_ports})


# --- Prometheus 3 -------------------------------------------------------------------------


@dataclass
class Prometheus3(Prometheus):
    """Prometheus 3 from .tools/bin with its native OTLP receiver on.

    The config carries deploy/prometheus/prometheus.yml's ``otlp`` and ``storage``
    sections (the promoted resource attributes, the out-of-order window), so a test of
    this server tests the shipped settings.
    """

    def config(self) -> dict[str, Any]:
        config = super().config()
        deploy = yaml.safe_load(DEPLOY_PROMETHEUS_CONFIG.read_text())
        for section in ("otlp", "storage"):
            config[section] = deploy[section]
        return config

    @property
    def otlp_endpoint(self) -> str:
        """The base URL for ENSEMBLE_PROMETHEUS_OTLP_ENDPOINT."""
        return f"{self.url}/api/v1/otlp"

    def argv(self) -> list[str]:
        return [*super().argv(), "--web.enable-otlp-receiver"]


def make_prometheus3(workdir: Path, *targets: str, name: str = "prometheus3",
                     remote_write_receiver: bool = False) -> Prometheus3:
    """A Prometheus 3 (not started) on a free port with its files under ``workdir``/name."""
    binary = backend_binary("prometheus")
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    return Prometheus3(name=name, workdir=directory, port=free_port(), targets=tuple(targets),
                       scrape_interval="1s", remote_write_receiver=remote_write_receiver,
                       binary=binary)


# --- VictoriaMetrics ----------------------------------------------------------------------


class VictoriaMetrics(Server):
    """VictoriaMetrics single node; PromQL (MetricsQL) through its Prometheus API."""

    @property
    def otlp_endpoint(self) -> str:
        """The base URL for ENSEMBLE_VICTORIAMETRICS_ENDPOINT."""
        return f"{self.url}/opentelemetry"

    def promql(self, query: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; see :func:`collector_support.promql`."""
        return promql(self.url, query, at=at)


def make_victoriametrics(workdir: Path, name: str = "victoria-metrics") -> VictoriaMetrics:
    """VictoriaMetrics with Prometheus naming for OTLP and a 1 s query lag (30 s by default)."""
    binary = backend_binary("victoria-metrics")
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    return VictoriaMetrics(name=name, workdir=directory, port=free_port(), ready_path="/health",
                           make_argv=lambda s: [
        binary, f"-storageDataPath={s.data_dir}", f"-httpListenAddr=127.0.0.1:{s.port}",
        "-search.latencyOffset=1s", "-opentelemetry.usePrometheusNaming",
        "-retentionPeriod=100y", "-loggerLevel=WARN",
    ])


# --- VictoriaLogs -------------------------------------------------------------------------


def make_victorialogs(workdir: Path, name: str = "victoria-logs") -> Server:
    """VictoriaLogs single node keeping everything (records replay years-old bars)."""
    binary = backend_binary("victoria-logs")
    return _server(workdir, name, lambda s: [
        binary, f"-storageDataPath={s.data_dir}", f"-httpListenAddr=127.0.0.1:{s.port}",
        "-retentionPeriod=100y", "-loggerLevel=WARN",
    ], "/health")


def vl_otlp_endpoint(server: Server) -> str:
    """The base URL for ENSEMBLE_VICTORIALOGS_ENDPOINT."""
    return f"{server.url}/insert/opentelemetry"


def logsql(server: Server, query: str, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Run a LogsQL query; one dict per row (VictoriaLogs answers JSON lines)."""
    url = f"{server.url}/select/logsql/query?{urllib.parse.urlencode({'query': query})}"
    status, body = http_request("POST", url, timeout=timeout)
    if status != 200:
        raise AssertionError(f"LogsQL {query!r} failed ({status}): {body[:500]!r}")
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def logsql_count(server: Server, query: str) -> int:
    """``query | stats count() n`` as an int (0 when nothing matches)."""
    rows = logsql(server, f"{query} | stats count() n")
    return int(rows[0]["n"]) if rows else 0


# --- Jaeger v2 ----------------------------------------------------------------------------


def make_jaeger(workdir: Path, name: str = "jaeger") -> Server:
    """Jaeger v2 with in-memory storage, its OTLP gRPC receiver on ``extra_ports['otlp']``
    and its query API on ``port`` (Jaeger's built-in config binds fixed ports: this one
    is written per test)."""
    binary = backend_binary("jaeger")

    def argv(s: Server) -> list[str]:
        config = {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query"],
                "pipelines": {"traces": {"receivers": ["otlp"],
                                         "exporters": ["jaeger_storage_exporter"]}},
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
            },
            "extensions": {
                "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 10000}}}},
                "jaeger_query": {
                    "storage": {"traces": "memstore"},
                    "http": {"endpoint": f"127.0.0.1:{s.port}"},
                    "grpc": {"endpoint": f"127.0.0.1:{s.extra_ports['query_grpc']}"},
                },
            },
            "receivers": {"otlp": {"protocols": {
                "grpc": {"endpoint": f"127.0.0.1:{s.extra_ports['otlp']}"}}}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
        }
        path = s.workdir / "jaeger.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return [binary, "--config", str(path)]

    return _server(workdir, name, argv, "/api/services", extra_ports=("otlp", "query_grpc"))


def jaeger_traces(server: Server, service: str) -> list[dict[str, Any]]:
    """Traces of ``service`` from Jaeger's query API (``data`` of /api/traces)."""
    query = urllib.parse.urlencode({"service": service, "limit": "100"})
    status, body = http_get(f"{server.url}/api/traces?{query}")
    assert status == 200, body[:500]
    return list(json.loads(body).get("data") or [])


class BackendFactory:
    """Makes backends under one directory and stops every one of them at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.made: list[_Process] = []

    def _keep(self, server: Any) -> Any:
        self.made.append(server)
        return server

    def prometheus3(self, *targets: str, name: str = "prometheus3") -> Prometheus3:
        return self._keep(make_prometheus3(self.workdir, *targets, name=name))

    def victoriametrics(self, name: str = "victoria-metrics") -> VictoriaMetrics:
        return self._keep(make_victoriametrics(self.workdir, name))

    def victorialogs(self, name: str = "victoria-logs") -> Server:
        return self._keep(make_victorialogs(self.workdir, name))

    def jaeger(self, name: str = "jaeger") -> Server:
        return self._keep(make_jaeger(self.workdir, name))

    def stop_all(self) -> None:
        for server in self.made:
            server.stop()
