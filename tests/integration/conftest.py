"""Fixtures for the integration tests: the real collector, a real Prometheus, a bot.

The machinery is in :mod:`collector_support` (a plain module, importable by name from
tests: ``from collector_support import require_binary, wait_until, ...``); the names
most tests need are re-exported here. Every fixture cleans up what it started.

- ``collector``: starts ``collector/_build/otelcol-ensemble`` with given configs and env
  on free loopback ports, waits for its health check; stop/kill/start it mid-test.
- ``prometheus``: starts the Debian ``prometheus`` server on loopback with a temporary
  config and TSDB, scraping collectors and/or receiving remote write; query with
  ``.promql(query)``.
- ``bot``: runs the small instrumented paper bot over a synthetic bar series.
- ``tls_files``: a self-signed certificate for 127.0.0.1 and its key.
- ``backends``: Prometheus 3, VictoriaMetrics, VictoriaLogs and Jaeger v2 from .tools/bin
  (``make backends``; helpers in :mod:`backend_support`).

With ENSEMBLE_REQUIRE_INTEGRATION=1 (CI) a missing collector binary, prometheus or
openssl fails the test instead of skipping it (:func:`require_binary`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from backend_support import BackendFactory
from collector_support import (
    AGENT_CONFIG,
    BACKENDS_DIR,
    COLLECTOR_BINARY,
    GATEWAY_CONFIG,
    BotRun,
    Collector,
    Prometheus,
    TlsFiles,
    free_port,
    http_get,
    integration_required,
    make_collector,
    make_prometheus,
    make_tls_files,
    promql,
    require_binary,
    start_bot,
    wait_until,
)

__all__ = [
    "AGENT_CONFIG",
    "BACKENDS_DIR",
    "COLLECTOR_BINARY",
    "GATEWAY_CONFIG",
    "free_port",
    "http_get",
    "integration_required",
    "promql",
    "require_binary",
    "wait_until",
]


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Callable[..., Collector]]:
    """Factory: ``collector(*configs, name="collector", env=None, start=True) -> Collector``.

    ``configs`` are paths (relative ones are taken under collector/), default
    collector/config.yaml; give several to merge overlays, e.g.
    ``collector("config.yaml", "backends/gateway-forward.yaml", env={...})``. Ports,
    archive and queue directories are the test's own; ``env`` adds or overrides
    variables. With ``start=True`` it returns once the health check answers. Every
    collector made is stopped at teardown.
    """
    made: list[Collector] = []

    def factory(*configs: str | Path, name: str = "collector",
                env: Mapping[str, str] | None = None, start: bool = True) -> Collector:
        c = make_collector(tmp_path, *configs, name=name, env=env)
        made.append(c)
        if start:
            c.start()
        return c

    yield factory
    for c in made:
        c.stop()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Factory: ``prometheus(*targets, scrape_interval="1s", remote_write_receiver=False,
    start=True, name="prometheus") -> Prometheus``.

    ``targets`` are host:port strings or :class:`Collector` objects (their prometheus
    exporter is scraped, ``honor_labels: true``). With ``start=False`` the port is chosen
    now (a collector can point at ``.remote_write_url``) and the server starts on
    ``.start()``. Every server made is stopped at teardown.
    """
    made: list[Prometheus] = []

    def factory(*targets: str | Collector, scrape_interval: str = "1s",
                remote_write_receiver: bool = False, start: bool = True,
                name: str = "prometheus") -> Prometheus:
        p = make_prometheus(tmp_path, *targets, scrape_interval=scrape_interval,
                            remote_write_receiver=remote_write_receiver, name=name)
        made.append(p)
        if start:
            p.start()
        return p

    yield factory
    for p in made:
        p.stop()


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Callable[..., BotRun]]:
    """Factory: ``bot(otlp_endpoint, **options) -> BotRun``; see
    :func:`collector_support.start_bot` for the options. ``BotRun.wait()`` returns what the
    bot produced (per-bar latencies, values); bots still running at teardown are stopped.
    """
    runs: list[BotRun] = []

    def factory(otlp_endpoint: str | None, **options: object) -> BotRun:
        run = start_bot(tmp_path, otlp_endpoint, **options)  # type: ignore[arg-type]
        runs.append(run)
        return run

    yield factory
    for run in runs:
        run.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    """A fresh self-signed certificate (SAN IP:127.0.0.1, DNS:localhost) and its key."""
    return make_tls_files(tmp_path / "tls")


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[BackendFactory]:
    """Factories for the real backends from .tools/bin (``make backends``), each on free
    loopback ports with its data under the test's directory, stopped at teardown:
    ``backends.prometheus3()``, ``.victoriametrics()``, ``.victorialogs()``, ``.jaeger()``
    (not started: call ``.start()``)."""
    factory = BackendFactory(tmp_path)
    yield factory
    factory.stop_all()
