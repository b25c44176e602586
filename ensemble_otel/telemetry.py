"""The Telemetry object: assembly of providers, readers and files, and the shutdown order.

The plumbing lives beside it: :mod:`ensemble_otel._export` (warning limits, exporter
wrappers, the OTLP factory, shutdown-once providers) and :mod:`ensemble_otel._process`
(the process's one telemetry, the strategy lock, the fork and exit hooks).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import LastValueAggregation, SumAggregation, View
from opentelemetry.sdk.resources import Resource

from ensemble_otel import _process, notify
from ensemble_otel._export import (
    EXPORT_WARNINGS,
    GuardedExporter,
    OnceMeterProvider,
    limit_export_warnings,
    once_logger_provider,
    otlp_exporter,
)
from ensemble_otel._process import _StrategyLock, current, release
from ensemble_otel.contract.registry import METRICS
from ensemble_otel.events import EventLog, bridge_stdlib_logging
from ensemble_otel.health import HealthSnapshotEmitter
from ensemble_otel.heartbeat import Heartbeat, HeartbeatFileExporter
from ensemble_otel.jsonl import JsonlAppender
from ensemble_otel.resource import build_resource, instance_id
from ensemble_otel.settings import Settings

__all__ = [
    "EXPORT_WARNINGS",
    "NoopTelemetry",
    "Telemetry",
    "current",
    "install",
    "otlp_exporter",
    "release",
    "views",
]

_log = logging.getLogger("ensemble_otel")
SCOPE = "ensemble_otel"


def views() -> list[View]:
    """One view per contract metric: fixed aggregation, only the declared attributes kept."""
    out = []
    for m in METRICS:
        aggregation = SumAggregation() if m.instrument == "observable_counter" else (
            LastValueAggregation())
        out.append(View(instrument_name=m.name, aggregation=aggregation,
                        attribute_keys=set(m.attributes)))
    return out



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

            self.logger_provider = once_logger_provider(self.resource)
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


def install(
    settings: Settings,
    *,
    metric_readers: Sequence[MetricReader] = (),
    log_exporters: Sequence[Any] = (),
    explicit: set[str] | None = None,
    captured: bool = False,
) -> Telemetry | NoopTelemetry:
    """Return the current telemetry for ``settings``, building it on first use."""

    def build() -> Telemetry | NoopTelemetry:
        if settings.disabled:
            return NoopTelemetry(settings)
        return Telemetry(settings, metric_readers=metric_readers, log_exporters=log_exporters)

    return _process.install(settings, build, explicit=explicit, captured=captured)  # type: ignore[no-any-return]
