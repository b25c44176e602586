"""The Telemetry object and its assembly: providers, readers, exporters, files."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import LastValueAggregation, SumAggregation, View
from opentelemetry.sdk.resources import Resource

from ensemble_otel import notify, safe_fs
from ensemble_otel.contract.registry import METRICS
from ensemble_otel.errors import ConfigError
from ensemble_otel.events import EventLog, bridge_stdlib_logging
from ensemble_otel.health import HealthSnapshotEmitter
from ensemble_otel.heartbeat import Heartbeat, HeartbeatFileExporter
from ensemble_otel.jsonl import JsonlAppender
from ensemble_otel.resource import build_resource, instance_id
from ensemble_otel.settings import Settings

_log = logging.getLogger("ensemble_otel")
SCOPE = "ensemble_otel"

# The SDK's exporters and processors log every failed attempt (a retry, a dropped batch, a
# full queue). Filters on these module loggers (a filter on a parent logger does not see a
# child's records) let one export warning per interval through, ours included.
EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.common._internal",
    "opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.sdk._logs._internal.export",
)


class ExportWarnings(logging.Filter):
    """At most one export warning per ``interval`` seconds reaches the bot's log.

    Shared by the SDK's exporter loggers (records at WARNING and above; the one let through
    says what it is and how many were held back) and :class:`GuardedExporter`.
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self.suppressed = 0
        self._at = -float("inf")
        self._lock = threading.Lock()

    def allow(self) -> int | None:
        """None when a warning was let through this interval; else the count held back."""
        with self._lock:
            now = time.monotonic()
            if now - self._at < self.interval:
                self.suppressed += 1
                return None
            self._at = now
            held, self.suppressed = self.suppressed, 0
            return held

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        held = self.allow()
        if held is None:
            return False
        record.msg = (
            f"ensemble-otel: OTLP export is failing; the bot and the files are unaffected "
            f"(one such message per {self.interval:g} s, {held} held back): "
            f"{record.getMessage()}")
        record.args = None
        return True


EXPORT_WARNINGS = ExportWarnings()


def limit_export_warnings() -> None:
    """Attach :data:`EXPORT_WARNINGS` to the SDK's exporter loggers (idempotent)."""
    for name in EXPORT_LOGGERS:
        logger = logging.getLogger(name)
        if EXPORT_WARNINGS not in logger.filters:
            logger.addFilter(EXPORT_WARNINGS)


def views() -> list[View]:
    """One view per contract metric: fixed aggregation, only the declared attributes kept."""
    out = []
    for m in METRICS:
        aggregation = SumAggregation() if m.instrument == "observable_counter" else (
            LastValueAggregation())
        out.append(View(instrument_name=m.name, aggregation=aggregation,
                        attribute_keys=set(m.attributes)))
    return out


class OnceMeterProvider(MeterProvider):
    """A ``MeterProvider`` whose shutdown runs once; later calls do nothing.

    ``configure()`` makes it the global meter provider, and a bot or a framework may shut
    the global provider down itself (an ``atexit`` handler of its own, say) before
    :meth:`Telemetry.shutdown` does: the SDK would then log "shutdown can only be called
    once" at exit. Its own ``atexit`` handler is off (``shutdown_on_exit=False``).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(shutdown_on_exit=False, **kwargs)
        self._shut = threading.Lock()
        self.is_shut_down = False

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        with self._shut:
            if self.is_shut_down:
                return
            self.is_shut_down = True
        super().shutdown(timeout_millis=timeout_millis)


def _once_logger_provider(resource: Resource) -> Any:
    """A ``LoggerProvider`` whose shutdown runs once (see :class:`OnceMeterProvider`)."""
    from opentelemetry.sdk._logs import LoggerProvider

    class OnceLoggerProvider(LoggerProvider):
        def __init__(self) -> None:
            super().__init__(resource=resource, shutdown_on_exit=False)
            self._shut = threading.Lock()
            self.is_shut_down = False

        def shutdown(self) -> None:
            with self._shut:
                if self.is_shut_down:
                    return
                self.is_shut_down = True
            super().shutdown()

    return OnceLoggerProvider()


class GuardedExporter(MetricExporter):
    """Wraps a network exporter: inert in a forked child, failures logged once per interval."""

    def __init__(self, inner: MetricExporter, *, warn_interval: float = 60.0) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.active = True
        self.failures = 0
        self._warn_interval = warn_interval
        self._warned_at = -float("inf")

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if not self.active:
            return MetricExportResult.SUCCESS
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis)
        except Exception as exc:  # an exporter never takes the bot down
            result = MetricExportResult.FAILURE
            reason = str(exc)
        else:
            reason = "the endpoint did not accept the export"
        if result is MetricExportResult.FAILURE:
            self.failures += 1
            now = time.monotonic()
            if now - self._warned_at >= self._warn_interval and EXPORT_WARNINGS.allow() is not None:
                self._warned_at = now
                _log.warning(
                    "ensemble-otel: OTLP metric export failed (%s; %d failure(s) so far); the "
                    "bot and the files are unaffected, export retries every interval", reason,
                    self.failures,
                )
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis=timeout_millis) if self.active else True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self.active:
            self.inner.shutdown(timeout_millis=timeout_millis)


def _protocol(signal: str) -> str:
    env = os.environ
    return (env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or
            env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").strip().lower()


def _quiet_grpc() -> None:
    """gRPC's C core writes INFO lines to stderr past the logging filters (one per collector
    restart: "Got goaway"); errors only, unless the bot chose a verbosity. Read when gRPC
    starts, so before the exporter's import."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


# (signal, grpc?) -> (module, class) of the SDK's OTLP exporters, imported only when used
_OTLP_EXPORTERS: dict[tuple[str, bool], tuple[str, str]] = {
    ("METRICS", True): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
                        "OTLPMetricExporter"),
    ("METRICS", False): ("opentelemetry.exporter.otlp.proto.http.metric_exporter",
                         "OTLPMetricExporter"),
    ("LOGS", True): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("LOGS", False): ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
    ("TRACES", True): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
                       "OTLPSpanExporter"),
    ("TRACES", False): ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                        "OTLPSpanExporter"),
}


def otlp_exporter(signal: str, endpoint: str | None = None) -> Any:
    """The SDK's OTLP exporter for ``signal`` (METRICS, LOGS, TRACES) and the configured
    protocol; it reads OTEL_EXPORTER_OTLP_* (headers, TLS, timeouts) itself. An explicit
    ``endpoint`` is the collector's base URL (the HTTP signal path is added here)."""
    grpc = _protocol(signal) == "grpc"
    if grpc:
        _quiet_grpc()
    module, name = _OTLP_EXPORTERS[(signal, grpc)]
    kwargs: dict[str, Any] = {}
    if endpoint:
        kwargs["endpoint"] = (endpoint if grpc else
                              f"{endpoint.rstrip('/')}/v1/{signal.lower()}")
    return getattr(importlib.import_module(module), name)(**kwargs)


class _StrategyLock:
    """One live writer per (root, strategy): an advisory lock on a file under the root."""

    def __init__(self, settings: Settings) -> None:
        directory = settings.state_dir
        self.path = directory / f"{settings.strategy_id}.lock"
        try:  # the first write under the root: a root that cannot be written is a setting error
            self._fd = safe_fs.open_file(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            env = os.environ.get("PAPER_TRADING_ROOT", "").strip()
            raise ConfigError(
                "PAPER_TRADING_ROOT" if env and Path(env) == settings.root else "root",
                str(settings.root),
                f"must be a directory this process can write: cannot create "
                f"{exc.filename or self.path} ({exc.strerror or exc})",
            ) from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise ConfigError(
                "strategy_id", settings.strategy_id,
                f"another live process (pid {holder}) already writes {settings.root} for this "
                "strategy; use another strategy id or root, or stop that process",
            ) from None
        with contextlib.suppress(OSError):  # the pid is a hint; a full disk must not stop the bot
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class Telemetry:
    """One process's telemetry: heartbeat, health snapshots, events, OTel providers.

    Attributes users touch: ``settings``, ``resource``, ``health``
    (:class:`~ensemble_otel.health.HealthSnapshotEmitter`), ``events``
    (:class:`~ensemble_otel.events.EventLog`), ``meter_provider``, ``logger_provider``,
    and the methods ``force_flush()`` and ``shutdown()``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metric_readers: Sequence[MetricReader] = (),
        log_exporters: Sequence[Any] = (),
    ) -> None:
        self.settings = settings
        self.closed = False
        self._shutdown_lock = threading.Lock()
        safe_fs.guard_root(settings.root)  # files below it: no symlink followed; warn if shared
        self._lock = _StrategyLock(settings)
        try:
            self._start(settings, metric_readers, log_exporters)
        except BaseException:
            self._abandon()
            self._lock.release()
            raise

    def _abandon(self) -> None:
        """A start that failed half-way: stop the threads it started, write no beat."""
        heartbeat = getattr(self, "heartbeat", None)
        if heartbeat is not None:
            heartbeat.active = False
        bridge = getattr(self, "_bridge", None)
        if bridge is not None:
            logging.getLogger().removeHandler(bridge)
        started = [getattr(self, name, None) for name in ("logger_provider", "meter_provider")]
        if started[1] is None:  # the heartbeat reader's thread runs from its construction
            started.append(getattr(self, "_heartbeat_reader", None))
        for part in started:
            if part is not None:
                with contextlib.suppress(Exception):
                    part.shutdown()

    def _start(
        self,
        settings: Settings,
        metric_readers: Sequence[MetricReader],
        log_exporters: Sequence[Any],
    ) -> None:
        self.resource: Resource = build_resource(settings)
        self.heartbeat = Heartbeat(settings, instance_id())
        self._heartbeat_reader = PeriodicExportingMetricReader(
            HeartbeatFileExporter(self.heartbeat),
            export_interval_millis=settings.heartbeat_interval * 1000,
        )
        self._snapshot_reader = InMemoryMetricReader()
        readers: list[MetricReader] = [self._heartbeat_reader, self._snapshot_reader]
        self._guarded: list[GuardedExporter] = []
        if settings.otlp_metrics or settings.otlp_logs:
            limit_export_warnings()
        if settings.otlp_metrics:
            guarded = GuardedExporter(otlp_exporter("METRICS", settings.otlp_endpoint))
            self._guarded.append(guarded)
            readers.append(PeriodicExportingMetricReader(
                guarded, export_interval_millis=settings.metric_export_interval * 1000))
        readers.extend(metric_readers)
        # Telemetry.shutdown runs at exit, once, in order (not the SDK's atexit handlers)
        self.meter_provider = OnceMeterProvider(
            metric_readers=readers, resource=self.resource, views=views())
        meter = self.meter_provider.get_meter(SCOPE)
        self.heartbeat.observe(meter)

        self.logger_provider: Any = None
        exporters = list(log_exporters)
        if settings.otlp_logs or exporters:
            from opentelemetry.sdk._logs.export import (
                BatchLogRecordProcessor,
                SimpleLogRecordProcessor,
            )

            self.logger_provider = _once_logger_provider(self.resource)
            if settings.otlp_logs:
                self.logger_provider.add_log_record_processor(
                    BatchLogRecordProcessor(otlp_exporter("LOGS", settings.otlp_endpoint)))
            for exporter in exporters:
                self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        self._bridge = None
        if settings.logging_bridge and self.logger_provider is not None:
            self._bridge = bridge_stdlib_logging(self.logger_provider)

        self._appender = JsonlAppender(name="files")
        self.health = HealthSnapshotEmitter(
            settings, meter=meter, snapshot_reader=self._snapshot_reader,
            appender=self._appender)
        logger = (self.logger_provider.get_logger(SCOPE)
                  if self.logger_provider is not None else None)
        self.events = EventLog(settings, appender=self._appender, logger=logger)
        self.heartbeat.on_beat.append(self._on_beat)

        # the start-up beat, synchronously, before configure() returns; no network I/O
        self._heartbeat_reader.collect()
        self.heartbeat.state = "running"
        notify.notify("READY=1")

    def _on_beat(self, state: str) -> None:
        if self.health.dirty:
            self.health.save_state(fsync=True)
        if self._appender.pending:  # lines held back by a full disk: retry every beat
            self._appender.flush_pending()
        if state == self.heartbeat.state == "running" and notify.watchdog_enabled():
            # only between READY=1 and STOPPING=1
            notify.notify("WATCHDOG=1")

    def forked(self) -> None:
        """In a forked child: stop touching the parent's files and exporters."""
        self.heartbeat.active = False
        self.health.active = False
        self.events.active = False
        for guarded in self._guarded:
            guarded.active = False

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        ok = self.meter_provider.force_flush(timeout_millis)
        if self.logger_provider is not None:
            ok = self.logger_provider.force_flush(timeout_millis) and ok
        self._appender.flush_pending()
        return ok

    def shutdown(self, timeout_millis: float = 10_000) -> None:
        """Flush everything, write the ``stopped`` beat, release the lock. Idempotent."""
        with self._shutdown_lock:
            if self.closed:
                return
            self.closed = True
        self.heartbeat.state = "stopping"  # first: no watchdog ping follows STOPPING=1
        if self.heartbeat.active:
            notify.notify("STOPPING=1")
        self.health.close()
        self.health.active = False  # a bar after shutdown records nothing: the lock goes
        deadline = time.monotonic() + timeout_millis / 1000.0
        self.meter_provider.shutdown(timeout_millis=timeout_millis)
        if self.logger_provider is not None:
            self._shutdown_logs(max(0.0, deadline - time.monotonic()))
        if self._bridge is not None:
            logging.getLogger().removeHandler(self._bridge)
        self.events.active = False
        self._appender.close()
        self.heartbeat.state = "stopped"
        self.heartbeat.write(time.time(), "stopped")
        if self.heartbeat.active:
            self._lock.release()


    def _shutdown_logs(self, seconds: float) -> None:
        """Flush the log pipeline within what is left of the shutdown timeout.

        The SDK's log provider takes no timeout (its batch processor waits up to 30 s per
        export): against a collector that never answers, a bot would hang at exit. The
        files are already complete; unsent log records are dropped with one warning (within
        the one-export-warning-per-interval budget).
        """
        worker = threading.Thread(target=self.logger_provider.shutdown,
                                  name="ensemble-otel-log-shutdown", daemon=True)
        worker.start()
        worker.join(seconds)
        if worker.is_alive() and EXPORT_WARNINGS.allow() is not None:
            _log.warning("ensemble-otel: OTLP log export did not finish within the shutdown "
                         "timeout; unsent log records are dropped (the JSONL files are complete)")


class _NoopHealth:
    def maybe_emit(self, ts: Any, **fields: Any) -> list[dict[str, Any]]:
        return []

    def close(self) -> None:
        return None


class _NoopEvents:
    def emit(self, event: str, /, **fields: Any) -> dict[str, Any]:
        return {}


class NoopTelemetry:
    """What ``configure()`` returns under ``OTEL_SDK_DISABLED=true``: no files, no threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.closed = False
        self.health = _NoopHealth()
        self.events = _NoopEvents()
        self.resource = Resource.get_empty()
        self.meter_provider = None
        self.logger_provider = None
        # a Type=notify unit still starts; with no beats there are no watchdog pings
        notify.notify("READY=1\nSTATUS=ensemble-otel is disabled (OTEL_SDK_DISABLED=true)")

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 10_000) -> None:
        self.closed = True


# -- the process-wide current telemetry ---------------------------------------------------

_current: Telemetry | NoopTelemetry | None = None
_captured = False
_state_lock = threading.RLock()


def current() -> Telemetry | NoopTelemetry | None:
    return _current


def _comparable(settings: Settings) -> Settings:
    return replace(settings, root=settings.root.resolve())


def install(
    settings: Settings,
    *,
    metric_readers: Sequence[MetricReader] = (),
    log_exporters: Sequence[Any] = (),
    captured: bool = False,
) -> Telemetry | NoopTelemetry:
    """Return the current telemetry for ``settings``, building it on first use."""
    global _current, _captured
    with _state_lock:
        if _current is not None and not _current.closed:
            if _captured or _comparable(_current.settings) == _comparable(settings):
                return _current
            raise ConfigError(
                "configure", _describe(settings),
                f"already configured with {_describe(_current.settings)}; call "
                "ensemble_otel.shutdown() first",
            )
        built: Telemetry | NoopTelemetry = (
            NoopTelemetry(settings) if settings.disabled else
            Telemetry(settings, metric_readers=metric_readers, log_exporters=log_exporters))
        _current = built
        _captured = captured
        return built


def release(telemetry: Telemetry | NoopTelemetry) -> None:
    """Shut ``telemetry`` down and forget it if it is the current one."""
    global _current, _captured
    with _state_lock:
        telemetry.shutdown()
        if _current is telemetry:
            _current = None
            _captured = False


def _describe(s: Settings) -> str:
    return f"strategy_id={s.strategy_id} schema_version={s.schema_version} root={s.root}"


def _after_fork_in_child() -> None:
    global _current, _captured
    telemetry = _current
    if isinstance(telemetry, Telemetry):
        telemetry.forked()
    _current = None
    _captured = False


def _at_exit() -> None:
    telemetry = _current
    if telemetry is not None:
        try:
            telemetry.shutdown(timeout_millis=5_000)
        except Exception:
            _log.exception("ensemble-otel: shutdown at exit failed")


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
