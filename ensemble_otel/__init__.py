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

from typing import TYPE_CHECKING, Any

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


def configure(**overrides: Any) -> Telemetry | NoopTelemetry:
    """Configure telemetry for this process and return it (idempotent).

    Keyword arguments beat environment variables, which beat defaults: ``strategy_id``
    (``ENSEMBLE_STRATEGY_ID``), ``schema_version`` (``ENSEMBLE_SCHEMA_VERSION``), ``root``
    (``PAPER_TRADING_ROOT``), ``heartbeat_interval`` (``ENSEMBLE_HEARTBEAT_INTERVAL``),
    ``environment`` (``ENSEMBLE_ENVIRONMENT``), ``service_name`` (``OTEL_SERVICE_NAME``),
    ``otlp_endpoint``, ``metric_export_interval``, ``logging_bridge``, ``disabled``
    (``OTEL_SDK_DISABLED``).

    A second call with the same settings returns the same object; with different settings it
    raises :class:`ConfigError`. The start-up heartbeat is on disk when this returns.
    """
    from ensemble_otel import telemetry as _telemetry
    from ensemble_otel._requirements import check_installed

    check_installed()
    settings = load_settings(**overrides)
    before = _telemetry.current()
    result = _telemetry.install(settings)
    if result is not before and isinstance(result, _telemetry.Telemetry):
        _set_global_providers(result)
    return result


def get_telemetry() -> Telemetry | NoopTelemetry | None:
    """The telemetry configured in this process, or None."""
    from ensemble_otel import telemetry as _telemetry

    return _telemetry.current()


def shutdown() -> None:
    """Flush and stop the current telemetry (also runs at interpreter exit)."""
    from ensemble_otel import telemetry as _telemetry

    current = _telemetry.current()
    if current is not None:
        _telemetry.release(current)


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
