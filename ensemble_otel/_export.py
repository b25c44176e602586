"""Export plumbing: warning limits, exporter wrappers, the OTLP factory, shutdown-once providers.

Nothing here knows about strategies or files; :mod:`ensemble_otel.telemetry` assembles it.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.resources import Resource

from ensemble_otel._ratelog import RateLimitedLog

_log = logging.getLogger("ensemble_otel")

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
        self.limit = RateLimitedLog(_log, interval)

    @property
    def interval(self) -> float:
        return self.limit.interval

    def allow(self) -> int | None:
        """None when a warning was let through this interval; else the count held back."""
        return self.limit.take()

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


def once_logger_provider(resource: Resource) -> Any:
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
    """Wraps a network exporter: inert in a forked child, failures logged once per interval
    (the interval of :data:`EXPORT_WARNINGS`, shared with the SDK's export warnings)."""

    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.active = True
        self.failures = 0

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
            if EXPORT_WARNINGS.allow() is not None:  # one export warning an interval, all told
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


def run_bounded(work: Callable[[], None], seconds: float, name: str) -> bool:
    """Run ``work`` on a daemon thread and wait at most ``seconds``; False when it is still
    running then (it is given up: a daemon thread never holds the interpreter's exit)."""
    failed: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except Exception as exc:  # reported below, on the caller's thread
            failed.append(exc)

    worker = threading.Thread(target=target, name=name, daemon=True)
    try:
        worker.start()
    except RuntimeError:
        # Python 3.12.0-3.12.2 refuse new threads inside atexit handlers (CPython gh-113964):
        # run the work here, bounded only by the exporters' own timeouts.
        target()
        if failed:
            _log.warning("ensemble-otel: %s failed: %s", name, failed[0])
        return True
    worker.join(max(0.0, seconds))
    if failed:
        _log.warning("ensemble-otel: %s failed: %s", name, failed[0])
    return not worker.is_alive()
