"""Helpers for the integration tests: the real collector, a real Prometheus, a bot.

A plain module (not a conftest) so that test modules and other folders' helpers can
import it by name without clashing with other conftest modules; the fixtures built on
it live in tests/integration/conftest.py. Everything listens on 127.0.0.1 on free ports
and writes under the directory it is given.

- :func:`require_binary` finds a program or skips the test; with
  ``ENSEMBLE_REQUIRE_INTEGRATION=1`` (CI) a missing program fails it instead.
- :func:`free_port`, :func:`wait_until`, :func:`http_get`, :func:`read_jsonl`.
- :class:`Collector` (:func:`make_collector`): an ``otelcol-ensemble`` process with its
  own ports, archive and queue; start, stop, kill, restart, read its archive.
- :class:`Prometheus` (:func:`make_prometheus`): the Debian ``prometheus`` server with a
  temporary config and TSDB; :func:`promql` and :meth:`Prometheus.promql` query it.
- :class:`BotRun` (:func:`start_bot`): the instrumented paper bot ``BOT_PROGRAM``.
- :func:`make_tls_files`: a self-signed certificate for 127.0.0.1 made with openssl.
- :func:`archived_points`, :func:`archived_logs`: read OTLP/JSON archive lines.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from integration_gate import integration_required as integration_required
from integration_gate import missing as missing
from integration_gate import require_binary as require_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_DIR = REPO_ROOT / "collector"
COLLECTOR_BINARY = COLLECTOR_DIR / "_build" / "otelcol-ensemble"
AGENT_CONFIG = COLLECTOR_DIR / "config.yaml"
GATEWAY_CONFIG = COLLECTOR_DIR / "gateway.yaml"
BACKENDS_DIR = COLLECTOR_DIR / "backends"

HOW_TO_GET_COLLECTOR = "run `make collector` (collector/build.sh)"
HOW_TO_GET_PROMETHEUS = ("run `make backends` (Prometheus 3 into .tools/bin, first on PATH "
                         "under make) or scripts/install-system-deps.sh (Debian prometheus)")

T = TypeVar("T")


# --- small helpers ------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call ``probe`` until it returns a truthy value and return that value.

    Raises AssertionError with ``message`` (or its result, when callable) after ``timeout``
    seconds. Exceptions from ``probe`` count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # the thing probed is not up yet
            last_error = exc
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            if last_error is not None:
                text += f" (last error: {last_error!r})"
            raise AssertionError(f"after {timeout:.0f} s: {text}")
        time.sleep(interval)


def http_get(
    url: str, *, timeout: float = 5.0, headers: Mapping[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """GET ``url`` (loopback only); returns (status, body) for any HTTP status."""
    return http_request("GET", url, timeout=timeout, headers=headers, context=context)


def http_request(
    method: str, url: str, *, body: bytes | None = None, timeout: float = 5.0,
    headers: Mapping[str, str] | None = None, context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """One HTTP request to a loopback URL; returns (status, body) for any HTTP status."""
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"url: {url!r} must point at 127.0.0.1 (tests stay on loopback)")
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def read_jsonl(path: Path) -> list[Any]:
    """Every line of a JSONL file, parsed; a line that is not JSON raises ValueError."""
    out: list[Any] = []
    if not path.exists():
        return out
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a whole JSON line: {exc}") from None
    return out


# --- managed processes --------------------------------------------------------------------


class _Process:
    """A child process started by a fixture, logged to a file, stopped by its own pid."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        with self.log_path.open("ab") as log:
            log.write(f"\n--- start {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                list(argv), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL after ``timeout`` seconds."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or clean up (a crash)."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def log(self) -> str:
        """Everything the process printed so far (all its starts)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


# --- the collector ------------------------------------------------------------------------


def collector_env(
    *, grpc_port: int, http_port: int, health_port: int, prometheus_port: int,
    metrics_port: int, archive_dir: Path, storage_dir: Path,
) -> dict[str, str]:
    """The env vars of collector/config.yaml and gateway.yaml that tests always set."""
    return {
        "ENSEMBLE_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
        "ENSEMBLE_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
        "ENSEMBLE_GATEWAY_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
        "ENSEMBLE_GATEWAY_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
        "ENSEMBLE_HEALTH_ENDPOINT": f"127.0.0.1:{health_port}",
        "ENSEMBLE_PROMETHEUS_ENDPOINT": f"127.0.0.1:{prometheus_port}",
        "ENSEMBLE_COLLECTOR_METRICS_HOST": "127.0.0.1",
        "ENSEMBLE_COLLECTOR_METRICS_PORT": str(metrics_port),
        "ENSEMBLE_ARCHIVE_DIR": str(archive_dir),
        "ENSEMBLE_STORAGE_DIR": str(storage_dir),
        # Short backoff so a backend that comes back is noticed within a test's patience.
        "ENSEMBLE_RETRY_MAX_INTERVAL": "2s",
    }


def hermetic_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without ENSEMBLE_*, OTEL_* and PAPER_TRADING_ROOT, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("ENSEMBLE_", "OTEL_")) and k != "PAPER_TRADING_ROOT"
    }
    env.update(extra or {})
    return env


@dataclass
class Collector(_Process):
    """An otelcol-ensemble process with its own ports, archive and queue directories.

    ``start()`` waits until the health check answers; ``stop()`` is a clean shutdown,
    ``kill()`` a crash; a stopped collector can be started again with the same ports,
    directories and env, as a service manager would.
    """

    name: str
    configs: tuple[Path, ...]
    workdir: Path
    env: dict[str, str]
    grpc_port: int
    http_port: int
    health_port: int
    prometheus_port: int
    metrics_port: int
    binary: str
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        _Process.__init__(self, self.name, self.workdir / "collector.log")

    @property
    def archive_dir(self) -> Path:
        return self.workdir / "archive"

    @property
    def storage_dir(self) -> Path:
        return self.workdir / "queue"

    @property
    def otlp_grpc_endpoint(self) -> str:
        """host:port of the OTLP gRPC receiver."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def otlp_grpc_url(self) -> str:
        """The URL for OTEL_EXPORTER_OTLP_ENDPOINT (gRPC, plain text)."""
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def otlp_http_url(self) -> str:
        """Base URL of the OTLP/HTTP receiver (append /v1/metrics, /v1/logs, /v1/traces)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def prometheus_endpoint(self) -> str:
        """host:port of the prometheus exporter, as a Prometheus scrape target."""
        return f"127.0.0.1:{self.prometheus_port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/"

    @property
    def own_metrics_url(self) -> str:
        """The collector's own telemetry (otelcol_* series)."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def argv(self) -> list[str]:
        argv = [self.binary]
        for config in self.configs:
            argv += ["--config", str(config)]
        return argv

    def start(self, *, wait: bool = True, timeout: float = 30.0) -> Collector:
        """Start the process; with ``wait``, return once the health check says ready."""
        self._spawn(self.argv(), self.env, self.workdir)
        if wait:
            self.wait_healthy(timeout)
        return self

    def restart(self, *, kill: bool = False) -> Collector:
        """Stop (or kill) and start again with the same ports, directories and env."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def healthy(self) -> bool:
        try:
            status, _ = http_get(self.health_url, timeout=1.0)
        except OSError:
            return False
        return status == 200

    def wait_healthy(self, timeout: float = 30.0) -> None:
        def probe() -> bool:
            if not self.running:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode if self.proc else None}:\n"
                    + self.log_tail())
            return self.healthy()

        deadline = time.monotonic() + timeout
        while not probe():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not healthy after {timeout} s:\n"
                                     + self.log_tail())
            time.sleep(0.1)

    def archive_path(self, signal_name: str) -> Path:
        """The archive file of one signal: metrics, logs or traces."""
        return self.archive_dir / f"{signal_name}.jsonl"

    def archive(self, signal_name: str) -> list[dict[str, Any]]:
        """Every OTLP/JSON export request in the signal's archive (rotated files first)."""
        files = sorted(self.archive_dir.glob(f"{signal_name}-*.jsonl"))
        files.append(self.archive_path(signal_name))
        out: list[dict[str, Any]] = []
        for path in files:
            out.extend(read_jsonl(path))
        return out

    def scrape(self) -> str:
        """The prometheus exporter's current exposition text."""
        status, body = http_get(f"http://{self.prometheus_endpoint}/metrics")
        assert status == 200, f"scrape of {self.name} answered {status}"
        return body.decode()

    def samples(self) -> list[Sample]:
        """The prometheus exporter's current samples, parsed."""
        return exposition_samples(self.scrape())

    def own_metrics(self) -> str:
        status, body = http_get(self.own_metrics_url)
        assert status == 200, f"own metrics of {self.name} answered {status}"
        return body.decode()


@dataclass(frozen=True)
class Sample:
    """One sample of a Prometheus text exposition."""

    name: str
    labels: dict[str, str]
    value: float


def exposition_samples(text: str) -> list[Sample]:
    """Every sample in a Prometheus text exposition (parsed by prometheus_client)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [Sample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text) for s in family.samples]


def make_collector(
    tmp_path: Path, *configs: str | Path, name: str = "collector",
    env: Mapping[str, str] | None = None,
) -> Collector:
    """A Collector (not started) with free ports and directories under ``tmp_path``/name."""
    binary = require_binary(COLLECTOR_BINARY, HOW_TO_GET_COLLECTOR)
    workdir = tmp_path / name
    workdir.mkdir(parents=True, exist_ok=True)
    paths = tuple(Path(c) if Path(c).is_absolute() else COLLECTOR_DIR / c
                  for c in (configs or (AGENT_CONFIG,)))
    ports = {k: free_port() for k in ("grpc", "http", "health", "prometheus", "metrics")}
    full_env = hermetic_env(collector_env(
        grpc_port=ports["grpc"], http_port=ports["http"], health_port=ports["health"],
        prometheus_port=ports["prometheus"], metrics_port=ports["metrics"],
        archive_dir=workdir / "archive", storage_dir=workdir / "queue",
    ))
    full_env.update(env or {})
    return Collector(
        name=name, configs=paths, workdir=workdir, env=full_env, grpc_port=ports["grpc"],
        http_port=ports["http"], health_port=ports["health"],
        prometheus_port=ports["prometheus"], metrics_port=ports["metrics"], binary=binary,
    )


# --- Prometheus ---------------------------------------------------------------------------


def promql(base_url: str, query: str, *, at: float | None = None) -> list[dict[str, Any]]:
    """Run an instant PromQL query against ``base_url`` and return ``data.result``.

    For a vector each item is ``{"metric": {...labels}, "value": [ts, "value"]}``; for a
    range selector (``series[5m]``) it is ``{"metric": ..., "values": [[ts, "v"], ...]}``.
    """
    params = {"query": query}
    if at is not None:
        params["time"] = f"{at:.3f}"
    status, body = http_get(f"{base_url}/api/v1/query?{urllib.parse.urlencode(params)}")
    payload = json.loads(body)
    if status != 200 or payload.get("status") != "success":
        raise AssertionError(f"PromQL {query!r} failed ({status}): {payload}")
    return list(payload["data"]["result"])


@dataclass
class Prometheus(_Process):
    """A Prometheus server on 127.0.0.1 with a temporary config and TSDB.

    It scrapes ``targets`` (host:port, e.g. :attr:`Collector.prometheus_endpoint`) every
    ``scrape_interval`` with ``honor_labels: true`` (the collector's job/instance labels
    are kept), and with ``remote_write_receiver`` accepts remote write at
    :attr:`remote_write_url`. A stopped server can be started again on the same port
    and TSDB.
    """

    name: str
    workdir: Path
    port: int
    targets: tuple[str, ...]
    scrape_interval: str
    remote_write_receiver: bool
    binary: str
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        _Process.__init__(self, self.name, self.workdir / "prometheus.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def config(self) -> dict[str, Any]:
        scrape_configs: list[dict[str, Any]] = []
        if self.targets:
            scrape_configs.append({
                "job_name": "otelcol-ensemble",
                "honor_labels": True,
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "static_configs": [{"targets": list(self.targets)}],
            })
        return {
            "global": {"scrape_interval": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval},
            "scrape_configs": scrape_configs,
        }

    def argv(self) -> list[str]:
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        argv = [
            self.binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        if self.remote_write_receiver:
            argv.append("--web.enable-remote-write-receiver")
        return argv

    def start(self, *, timeout: float = 30.0) -> Prometheus:
        """Start and wait until /-/ready answers 200."""
        self._spawn(self.argv(), hermetic_env(), self.workdir)

        def ready() -> bool:
            if not self.running:
                raise AssertionError(f"prometheus exited:\n{self.log_tail()}")
            return http_get(f"{self.url}/-/ready", timeout=1.0)[0] == 200

        wait_until(ready, timeout=timeout, interval=0.1,
                   message=lambda: f"prometheus not ready:\n{self.log_tail()}")
        return self

    def promql(self, query: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """Instant PromQL query; see :func:`promql`."""
        return promql(self.url, query, at=at)

    def wait_for(
        self, query: str, predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        *, timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Repeat ``query`` until ``predicate(result)`` holds; return that result."""
        last: list[list[dict[str, Any]]] = [[]]

        def probe() -> list[dict[str, Any]] | None:
            last[0] = self.promql(query)
            return last[0] if predicate(last[0]) else None

        return wait_until(probe, timeout=timeout, interval=0.25,
                          message=lambda: f"PromQL {query!r} last answered {last[0]}")


def make_prometheus(
    workdir: Path, *targets: str | Collector, scrape_interval: str = "1s",
    remote_write_receiver: bool = False, name: str = "prometheus",
) -> Prometheus:
    """A Prometheus (not started) on a free port with its files under ``workdir``/name."""
    binary = require_binary("prometheus", HOW_TO_GET_PROMETHEUS)
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    return Prometheus(
        name=name, workdir=directory, port=free_port(),
        targets=tuple(t.prometheus_endpoint if isinstance(t, Collector) else t
                      for t in targets),
        scrape_interval=scrape_interval, remote_write_receiver=remote_write_receiver,
        binary=binary,
    )


# --- an instrumented bot ------------------------------------------------------------------

# A paper bot over a synthetic hourly bar series: configure() from env, one maybe_emit per
# bar, an event every `event_every` bars. It times every bar (maybe_emit + emit), can wait
# at a given bar for a file to appear (so a test acts at a known point), and writes what
# it produced to the result file.
BOT_PROGRAM = textwrap.dedent('''
    import json, math, os, sys, time
    from pathlib import Path

    import ensemble_otel

    cfg = json.loads(sys.argv[1])
    telemetry = ensemble_otel.configure()
    start = cfg["first_bar"]
    equity, peak, notional = cfg["equity0"], 0.0, 0.0
    latencies, events, produced, records = [], 0, [], {}
    progress = Path(cfg["progress"])
    for i in range(cfg["bars"]):
        gate = cfg.get("gates", {}).get(str(i))
        if gate:
            progress.write_text(str(i))
            while not Path(gate).exists():
                time.sleep(0.01)
        equity = round(equity * (1 + 0.004 * math.sin(i / 5.0)) - 1.0, 6)
        peak = max(peak, equity)
        traded = 1000.0 * (i % 4)
        notional += traded
        ts = start + i * cfg["bar_seconds"]
        t0 = time.perf_counter()
        written = telemetry.health.maybe_emit(
            ts, equity=equity, realized_pnl=round(equity - cfg["equity0"], 6),
            unrealized_pnl=float(i % 7), traded_notional=traded, open_positions=i % 3,
            risk_warnings=1 if i % 10 == 9 else 0)
        if i % cfg["event_every"] == 0:
            telemetry.events.emit("bar_done", seq=events, bar=i)
            events += 1
        latencies.append(time.perf_counter() - t0)
        for record in written:
            records[record["period"]] = records.get(record["period"], 0) + 1
        produced.append({"bar": i, "ts": ts, "equity": equity, "wall": time.time()})
        time.sleep(cfg["pause"])
    last = produced[-1]
    result = {
        "bars": cfg["bars"], "events": events, "latencies": latencies, "produced": produced,
        "records": records, "risk_warnings": sum(1 for i in range(cfg["bars"]) if i % 10 == 9),
        "equity": last["equity"], "peak": peak, "drawdown": 1 - last["equity"] / peak,
        "traded_notional": notional, "last_ts": last["ts"],
        "realized_pnl": round(last["equity"] - cfg["equity0"], 6),
        "unrealized_pnl": float((cfg["bars"] - 1) % 7),
        "open_positions": (cfg["bars"] - 1) % 3,
    }
    if cfg.get("linger"):
        time.sleep(cfg["linger"])  # let periodic exports carry the final state
    ensemble_otel.shutdown()
    Path(cfg["result"]).write_text(json.dumps(result))
''')


@dataclass
class BotRun:
    """A running bot subprocess; ``wait()`` returns what it produced.

    The result has ``bars``, ``events``, ``latencies`` (seconds per bar), ``produced``
    (per bar: bar, ts, equity, wall), and the final ``equity``, ``peak``, ``drawdown``,
    ``traded_notional``, ``realized_pnl``, ``unrealized_pnl``, ``open_positions``,
    ``risk_warnings``, ``last_ts``; ``records`` counts the health records written per period.
    """

    proc: subprocess.Popen[bytes]
    root: Path
    strategy_id: str
    result_path: Path
    progress_path: Path
    log_path: Path

    def wait(self, timeout: float = 120.0) -> dict[str, Any]:
        rc = self.proc.wait(timeout)
        log = self.log_path.read_text(errors="replace")
        assert rc == 0, f"bot exited {rc}:\n{log[-4000:]}"
        return dict(json.loads(self.result_path.read_text()))

    def wait_at_gate(self, bar: int, timeout: float = 60.0) -> None:
        """Wait until the bot stands at the gate before ``bar`` (see ``gates``)."""
        wait_until(lambda: self.progress_path.exists()
                   and self.progress_path.read_text() == str(bar),
                   timeout=timeout, interval=0.05, message=f"bot never reached bar {bar}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_bot(
    workdir: Path, otlp_endpoint: str | None, *, strategy_id: str = "it-bot", bars: int = 48,
    bar_seconds: int = 3600, pause: float = 0.02, event_every: int = 4,
    export_interval_ms: int = 500, gates: Mapping[int, Path] | None = None,
    linger: float = 1.5, env: Mapping[str, str] | None = None,
    first_bar: int = 1_704_067_200,
) -> BotRun:
    """Start ``BOT_PROGRAM`` with its files under ``workdir``/bot-<strategy_id>.

    ``otlp_endpoint`` (e.g. :attr:`Collector.otlp_grpc_url`) becomes
    OTEL_EXPORTER_OTLP_ENDPOINT; None exports nothing. Bars are ``bar_seconds`` apart in
    bar time (from ``first_bar``, default 2024-01-01T00:00:00Z; a restarted bot goes on
    from a later one) and ``pause`` seconds apart in wall time; an event
    every ``event_every`` bars; metric export every ``export_interval_ms``. ``gates`` maps
    a bar number to a file: the bot waits before that bar until the file exists
    (:meth:`BotRun.wait_at_gate` tells when it stands there). ``linger`` seconds before
    the final shutdown let a periodic export carry the last state.
    """
    directory = workdir / f"bot-{strategy_id}"
    directory.mkdir(parents=True, exist_ok=True)
    root = directory / "root"
    cfg = {
        "bars": bars, "bar_seconds": bar_seconds, "pause": pause,
        "event_every": event_every, "equity0": 10_000.0,
        "first_bar": first_bar,
        "gates": {str(k): str(v) for k, v in (gates or {}).items()},
        "progress": str(directory / "progress"), "result": str(directory / "result.json"),
        "linger": linger,
    }
    extra = {
        "ENSEMBLE_STRATEGY_ID": strategy_id,
        "PAPER_TRADING_ROOT": str(root),
        "OTEL_METRIC_EXPORT_INTERVAL": str(export_interval_ms),
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        "PYTHONUNBUFFERED": "1",
    }
    if otlp_endpoint:
        extra["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    extra.update(env or {})
    log_path = directory / "bot.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", BOT_PROGRAM, json.dumps(cfg)], env=hermetic_env(extra),
            cwd=directory, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    return BotRun(proc=proc, root=root, strategy_id=strategy_id,
                  result_path=directory / "result.json", progress_path=directory / "progress",
                  log_path=log_path)


# --- TLS ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for 127.0.0.1/localhost and its private key (PEM)."""

    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts exactly this certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_tls_files(directory: Path) -> TlsFiles:
    """A fresh self-signed certificate (SAN IP:127.0.0.1, DNS:localhost), made with openssl."""
    openssl = require_binary("openssl", "apt-get install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return TlsFiles(cert=cert, key=key)


# --- OTLP/JSON archive helpers ------------------------------------------------------------


def otlp_value(value: Mapping[str, Any]) -> Any:
    """A Python value from an OTLP/JSON AnyValue."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "kvlistValue" in value:
        return {kv["key"]: otlp_value(kv.get("value", {}))
                for kv in value["kvlistValue"].get("values", [])}
    if "arrayValue" in value:
        return [otlp_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def otlp_attributes(items: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """An OTLP/JSON attribute list as a dict."""
    return {kv["key"]: otlp_value(kv.get("value", {})) for kv in items or ()}


@dataclass(frozen=True)
class ArchivedPoint:
    """One metric data point from a metrics archive."""

    metric: str
    value: float
    time_unix_nano: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


def archived_points(requests: Sequence[Mapping[str, Any]]) -> list[ArchivedPoint]:
    """Every gauge/sum data point in OTLP/JSON metrics export requests."""
    out: list[ArchivedPoint] = []
    for request in requests:
        for rm in request.get("resourceMetrics", []):
            resource = otlp_attributes(rm.get("resource", {}).get("attributes"))
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    data = m.get("gauge") or m.get("sum") or {}
                    for p in data.get("dataPoints", []):
                        raw = p.get("asDouble", p.get("asInt"))
                        out.append(ArchivedPoint(
                            metric=m["name"], value=float(raw),
                            time_unix_nano=int(p.get("timeUnixNano", 0)),
                            attributes=otlp_attributes(p.get("attributes")),
                            resource=resource))
    return out


@dataclass(frozen=True)
class ArchivedLog:
    """One log record from a logs archive."""

    event: str | None
    body: Any
    attributes: dict[str, Any]
    resource: dict[str, Any]


def archived_logs(requests: Sequence[Mapping[str, Any]]) -> list[ArchivedLog]:
    """Every log record in OTLP/JSON logs export requests."""
    out: list[ArchivedLog] = []
    for request in requests:
        for rl in request.get("resourceLogs", []):
            resource = otlp_attributes(rl.get("resource", {}).get("attributes"))
            for sl in rl.get("scopeLogs", []):
                for r in sl.get("logRecords", []):
                    attributes = otlp_attributes(r.get("attributes"))
                    out.append(ArchivedLog(
                        event=r.get("eventName") or attributes.get("event.name"),
                        body=otlp_value(r.get("body", {})), attributes=attributes,
                        resource=resource))
    return out
