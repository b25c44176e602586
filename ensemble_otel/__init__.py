"""ensemble-otel: OpenTelemetry for Ensemble trading bots.

One call at start-up::

    import ensemble_otel

    telemetry = ensemble_otel.configure()          # settings from env, files under the root
    for bar in bars:
        telemetry.health.maybe_emit(bar.time, equity=book.equity, traded_notional=fills)
    telemetry.events.emit("order_filled", symbol="EURUSD", qty=1000)

Everything a user may touch is listed in ``__all__``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ensemble_otel._process import DEFAULT_SHUTDOWN_TIMEOUT
from ensemble_otel._version import __version__
from ensemble_otel.errors import BarError, ConfigError, EventError, FieldError
from ensemble_otel.settings import Settings, load_settings

if TYPE_CHECKING:
    from ensemble_otel.telemetry import NoopTelemetry, Telemetry

__all__ = [
    "BarError",
    "ConfigError",
    "EventError",
    "FieldError",
    "NoopTelemetry",
    "Settings",
    "Telemetry",
    "__version__",
    "configure",
    "emit_event",
    "get_telemetry",
    "load_settings",
    "shutdown",
]


def configure(
    *,
    strategy_id: str | None = None,
    schema_version: str | None = None,
    root: str | os.PathLike[str] | None = None,
    heartbeat_interval: float | None = None,
    environment: str | None = None,
    service_name: str | None = None,
    otlp_endpoint: str | None = None,
    otlp_metrics: bool | None = None,
    otlp_logs: bool | None = None,
    metric_export_interval: float | None = None,
    logging_bridge: bool | None = None,
    disabled: bool | None = None,
    strict: bool | None = None,
    fresh: bool | None = None,
) -> Telemetry | NoopTelemetry:
    """Configure telemetry for this process and return it (idempotent).

    Keyword arguments beat environment variables, which beat defaults (None: not given):

    - ``strategy_id`` (``ENSEMBLE_STRATEGY_ID``), ``schema_version`` (``ENSEMBLE_SCHEMA_VERSION``),
      ``root`` (``PAPER_TRADING_ROOT``), ``environment`` (``ENSEMBLE_ENVIRONMENT``),
      ``service_name`` (``OTEL_SERVICE_NAME``);
    - ``heartbeat_interval`` (``ENSEMBLE_HEARTBEAT_INTERVAL``, 0.5 to 86400 s);
    - ``otlp_endpoint``, ``otlp_metrics``, ``otlp_logs``, ``metric_export_interval``
      (the ``OTEL_EXPORTER_OTLP_*`` / ``OTEL_METRIC_EXPORT_INTERVAL`` variables);
    - ``logging_bridge`` (``ENSEMBLE_LOGGING_BRIDGE``), ``disabled`` (``OTEL_SDK_DISABLED``);
    - ``strict`` (``ENSEMBLE_STRICT``): a bad bar or event raises instead of being refused,
      counted and logged;
    - ``fresh`` (``ENSEMBLE_FRESH``): remove this strategy's state, records and heartbeat
      under the root first (see ``ensemble-otel reset``).

    ``configure()`` with no arguments returns the telemetry already configured, whatever
    the earlier call's arguments. A call whose arguments differ from it raises
    :class:`ConfigError` naming both. The start-up heartbeat is on disk when this returns.
    """
    given = {name: value for name, value in locals().items() if value is not None}
    from ensemble_otel import telemetry as _telemetry
    from ensemble_otel._requirements import check_installed

    check_installed()
    before = _telemetry.current()
    if not given and before is not None and not before.closed:
        return before
    settings = load_settings(**given)
    result = _telemetry.install(settings, explicit=set(given))
    if result is not before and isinstance(result, _telemetry.Telemetry):
        _set_global_providers(result)
    return result


def get_telemetry() -> Telemetry | NoopTelemetry | None:
    """The telemetry configured in this process, or None."""
    from ensemble_otel import telemetry as _telemetry

    return _telemetry.current()


def shutdown(timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
    """Stop the current telemetry within ``timeout`` seconds (also runs at interpreter exit,
    with the same default).

    The health state, the event lines and the ``stopped`` beat are on disk first; the OTLP
    flush of metrics and logs gets what is left of the timeout, and what it cannot send
    then is dropped with one warning (the files hold everything).
    """
    from ensemble_otel import telemetry as _telemetry

    current = _telemetry.current()
    if current is not None:
        _telemetry.release(current, timeout_millis=timeout * 1000)


def emit_event(event: str, /, **fields: Any) -> dict[str, Any]:
    """``configure().events.emit(event, **fields)``: one JSONL record and one OTel log record."""
    from ensemble_otel import telemetry as _telemetry

    current = _telemetry.current() or configure()
    return current.events.emit(event, **fields)


def _set_global_providers(telemetry: Telemetry) -> None:
    """Make this process's other OTel instrumentation share the strategy resource.

    The global providers can be set once per process; an earlier global is left alone.
    """
    from opentelemetry import _logs, metrics

    if type(metrics.get_meter_provider()).__name__ in ("_ProxyMeterProvider", "NoOpMeterProvider"):
        metrics.set_meter_provider(telemetry.meter_provider)
    if telemetry.logger_provider is not None and type(_logs.get_logger_provider()).__name__ in (
        "ProxyLoggerProvider", "NoOpLoggerProvider",
    ):
        _logs.set_logger_provider(telemetry.logger_provider)


def __getattr__(name: str) -> Any:
    # The SDK is imported when telemetry is used, not by `import ensemble_otel`: the
    # command-line tools (validate, report, heartbeat check) start without it.
    if name in ("Telemetry", "NoopTelemetry"):
        from ensemble_otel import telemetry as _telemetry

        return getattr(_telemetry, name)
    raise AttributeError(f"module 'ensemble_otel' has no attribute {name!r}")
