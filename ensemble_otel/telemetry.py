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
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import LastValueAggregation, SumAggregation, View
from opentelemetry.sdk.resources import Resource

from ensemble_otel import _process, notify, safe_fs
from ensemble_otel._export import (
    EXPORT_WARNINGS,
    GuardedExporter,
    OnceMeterProvider,
    limit_export_warnings,
    once_logger_provider,
    otlp_exporter,
    run_bounded,
)
from ensemble_otel._process import _StrategyLock, current, release
from ensemble_otel.contract.registry import METRICS
from ensemble_otel.events import EventLog, bridge_stdlib_logging
from ensemble_otel.health import HealthSnapshotEmitter
from ensemble_otel.heartbeat import Heartbeat, HeartbeatFileExporter
from ensemble_otel.jsonl import JsonlAppender
from ensemble_otel.reset import ResetError, remove_strategy_files
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



def _clear_leftover_temps(settings: Settings) -> None:
    """Temp files of replacements a crash cut short (heartbeat, state): the previous
    writer's, as this one holds the lock. A failure here never stops the start."""
    try:
        remove_strategy_files(settings.root, settings.strategy_id, temps_only=True)
    except (OSError, ResetError) as exc:
        _log.warning("ensemble-otel: leftover temp files of %s not cleared: %s",
                     settings.strategy_id, exc)


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
        self._forked = False
        self._ready = False  # READY=1 sent: watchdog pings may follow
        self._shutdown_lock = threading.Lock()
        safe_fs.guard_root(settings.root)  # files below it: no symlink followed; warn if shared
        self._lock = _StrategyLock(settings)
        try:
            # under the lock: no live writer of this strategy meanwhile
            if settings.fresh:
                remove_strategy_files(settings.root, settings.strategy_id, keep_lock=True)
            else:
                _clear_leftover_temps(settings)
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
        waker = getattr(self, "_waker", None)
        if waker is not None:
            waker.stop()
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
        self._heartbeat_reader = _HeartbeatReader(
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
            appender=self._appender, on_first_bar=self._first_bar)
        logger = (self.logger_provider.get_logger(SCOPE)
                  if self.logger_provider is not None else None)
        self.events = EventLog(settings, appender=self._appender, logger=logger, meter=meter)
        self.heartbeat.on_beat.extend(self._beat_duties())

        self._waker = _BeatWaker(self._heartbeat_reader)
        # the start-up beat ("starting": configured, no bar yet), synchronously, before
        # configure() returns; no network I/O
        self._heartbeat_reader.collect()
        notify.notify("READY=1")
        self._ready = True

    # -- every beat ------------------------------------------------------------------------

    def _beat_duties(self) -> list[Callable[[str], None]]:
        """What runs after every beat, on the heartbeat's thread, in this order (each one
        fails alone: the others and the beat go on)."""
        return [self._save_health_state, self._retry_held_lines, self._ping_watchdog]

    def _save_health_state(self, state: str) -> None:
        # a beat woken by a state change only tells the state: the periodic ones save
        if self.health.dirty and not self._waker.is_current():
            self.health.save_state(fsync=True)

    def _retry_held_lines(self, state: str) -> None:
        if self._appender.pending:  # lines held back by a full disk: retry every beat
            self._appender.flush_pending()

    def _ping_watchdog(self, state: str) -> None:
        # only between READY=1 and STOPPING=1: a bot waiting for its first bar is alive too
        if (self._ready and state == self.heartbeat.state and state in ("starting", "running")
                and notify.watchdog_enabled()):
            notify.notify("WATCHDOG=1")

    def _first_bar(self) -> None:
        """Called on the bar thread by the first bar: no I/O, no lock; the beat is written
        at once on the waker's thread."""
        if self.heartbeat.state == "starting":
            self.heartbeat.state = "running"
        self._waker.wake()

    def wake_heartbeat(self) -> None:
        """Write a beat now (on the heartbeat's own thread; returns at once)."""
        self._waker.wake()

    # -- process events ----------------------------------------------------------------------

    def forked(self) -> None:
        """In a forked child: stop touching the parent's files and exporters."""
        self._forked = True
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
        """Stop within ``timeout_millis``: the files first, then the network. Idempotent.

        On disk first, whatever the network does: the health state, every event line and
        the ``stopped`` beat; the strategy lock is released then. The OTLP flush of
        metrics and logs gets what is left of the timeout; what it cannot send in that time
        is dropped with one warning (the files hold it).
        """
        deadline = time.monotonic() + max(0.0, timeout_millis) / 1000.0
        with self._shutdown_lock:
            if self.closed:
                return
            self.closed = True
        self.heartbeat.state = "stopping"  # first: no watchdog ping follows STOPPING=1
        if not self._forked:
            notify.notify("STOPPING=1")
        self._waker.stop(wait=min(1.0, max(0.0, deadline - time.monotonic())))
        self.health.close()
        self.health.active = False  # a bar after shutdown records nothing: the lock goes
        if self._bridge is not None:
            logging.getLogger().removeHandler(self._bridge)
        self.events.active = False
        self._appender.close()
        self.heartbeat.state = "stopped"
        self.heartbeat.write(time.time(), "stopped")
        self.heartbeat.active = False  # the readers' last collection writes no later beat
        if not self._forked:
            self._lock.release()
        self._shutdown_network(deadline)

    def _shutdown_network(self, deadline: float) -> None:
        """Shut the providers down (their last OTLP export) within ``deadline``.

        Neither provider's shutdown is bounded by the SDK against an endpoint that never
        answers (the log batch processor waits up to 30 s per export), so it runs on a
        thread that is given up at the deadline.
        """
        def providers() -> None:
            left = max(0.0, deadline - time.monotonic())
            self.meter_provider.shutdown(timeout_millis=left * 1000)
            if self.logger_provider is not None:
                self.logger_provider.shutdown()

        finished = run_bounded(providers, deadline - time.monotonic(), "ensemble-otel-shutdown")
        if not finished and EXPORT_WARNINGS.allow() is not None:
            _log.warning("ensemble-otel: OTLP export did not finish within the shutdown "
                         "timeout; unsent metrics and log records are dropped (the files "
                         "are complete)")


# Every heartbeat collection (periodic, woken, start-up) runs under this lock, and a fork
# waits for the one under way: a child never inherits the SDK's collection locks held by a
# thread it does not have.
_COLLECTING = threading.Lock()
_process.hold_across_fork(_COLLECTING)


class _HeartbeatReader(PeriodicExportingMetricReader):
    """The periodic reader of the heartbeat file; each collection is whole across a fork."""

    def collect(self, timeout_millis: float = 10_000) -> None:
        with _COLLECTING:
            super().collect(timeout_millis=timeout_millis)


class _BeatWaker:
    """A thread that makes the heartbeat reader collect (write a beat) when woken.

    ``wake()`` is cheap and does no I/O (it sets an event): the bar thread may call it.
    """

    def __init__(self, reader: MetricReader) -> None:
        self._reader = reader
        self._event = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="ensemble-otel-beat-waker",
                                        daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._event.set()

    def is_current(self) -> bool:
        """Whether the caller runs on the waker's thread (a woken beat)."""
        return threading.current_thread() is self._thread

    def _run(self) -> None:
        while True:
            self._event.wait()
            if self._stopped:
                return
            self._event.clear()
            try:
                self._reader.collect()
            except Exception:  # a failed beat shows as a stale file; the next one may work
                _log.debug("ensemble-otel: woken beat failed", exc_info=True)

    def stop(self, wait: float = 5.0) -> None:
        """End the thread; wait up to ``wait`` seconds for a beat under way."""
        self._stopped = True
        self._event.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=wait)


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
