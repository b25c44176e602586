"""Settings: explicit arguments beat the environment, the environment beats defaults.

Every bad value raises :class:`ConfigError` naming the variable (or argument), the value
and the rule, so an operator can fix it from the message alone.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensemble_otel.errors import ConfigError

STRATEGY_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SCHEMA_VERSION_RE = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})")
ENVIRONMENTS = ("paper", "live")

DEFAULT_STRATEGY_ID = "default"
DEFAULT_SCHEMA_VERSION = "1.1"
DEFAULT_ROOT = "./paper_trading_outputs"
DEFAULT_HEARTBEAT_INTERVAL = 30.0
DEFAULT_ENVIRONMENT = "paper"
DEFAULT_SERVICE_NAME = "ensemble-bot"

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated settings of one process's telemetry."""

    strategy_id: str = DEFAULT_STRATEGY_ID
    schema_version: str = DEFAULT_SCHEMA_VERSION
    root: Path = field(default_factory=lambda: Path(DEFAULT_ROOT))
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    environment: str = DEFAULT_ENVIRONMENT
    service_name: str = DEFAULT_SERVICE_NAME
    otlp_endpoint: str | None = None
    otlp_metrics: bool = False
    otlp_logs: bool = False
    metric_export_interval: float = 60.0
    logging_bridge: bool = False
    disabled: bool = False
    strict: bool = False

    @property
    def heartbeat_path(self) -> Path:
        return self.root / "logs" / "heartbeat" / f"{self.strategy_id}.json"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"


# (argument, primary env var, fallback env var)
_SOURCES: dict[str, tuple[str, ...]] = {
    "strategy_id": ("ENSEMBLE_STRATEGY_ID", "STRATEGY_ID"),
    "schema_version": ("ENSEMBLE_SCHEMA_VERSION", "SCHEMA_VERSION"),
    "root": ("PAPER_TRADING_ROOT",),
    "heartbeat_interval": ("ENSEMBLE_HEARTBEAT_INTERVAL",),
    "environment": ("ENSEMBLE_ENVIRONMENT",),
    "service_name": ("OTEL_SERVICE_NAME",),
    "logging_bridge": ("ENSEMBLE_LOGGING_BRIDGE",),
    "strict": ("ENSEMBLE_STRICT",),
}


def _pick(
    name: str, overrides: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[str, Any] | None:
    """Return (source label, raw value) for a setting, or None for the default."""
    if overrides.get(name) is not None:
        return name, overrides[name]
    for var in _SOURCES.get(name, ()):
        raw = env.get(var)
        if raw is not None and raw.strip() != "":
            return var, raw.strip()
    return None


def validate_strategy_id(value: object, source: str = "strategy_id") -> str:
    if not isinstance(value, str) or not STRATEGY_ID_RE.fullmatch(value) or ".." in value:
        raise ConfigError(
            source,
            value,
            "must be a safe file-name token: [A-Za-z0-9][A-Za-z0-9._-]{0,63}, "
            "with no '..' and no path separator",
        )
    return value


def validate_schema_version(value: object, source: str = "schema_version") -> str:
    if not isinstance(value, str) or not SCHEMA_VERSION_RE.fullmatch(value):
        raise ConfigError(source, value, "must be MAJOR.MINOR, e.g. 1.1")
    return value


def _interval(value: object, source: str, rule: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(source, value, rule) from None
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(source, value, rule)
    return seconds


def _flag(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(source, value, "must be true or false")


def _otlp_wanted(signal: str, env: Mapping[str, str], endpoint: str | None) -> bool:
    """OTLP export happens only when an endpoint is configured or the exporter says otlp."""
    exporter = env.get(f"OTEL_{signal}_EXPORTER")
    if exporter is not None and exporter.strip():
        names = {n.strip().lower() for n in exporter.split(",")}
        if "none" in names:
            return False
        if "otlp" in names:
            return True
    return bool(
        endpoint
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "").strip()
    )


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from explicit arguments, then ``env``, then defaults."""
    env = os.environ if env is None else env
    unknown = set(overrides) - set(Settings.__dataclass_fields__)
    if unknown:
        raise ConfigError(sorted(unknown)[0], overrides[sorted(unknown)[0]], "unknown setting")
    values: dict[str, Any] = {}

    if (picked := _pick("strategy_id", overrides, env)) is not None:
        values["strategy_id"] = validate_strategy_id(picked[1], picked[0])
    if (picked := _pick("schema_version", overrides, env)) is not None:
        values["schema_version"] = validate_schema_version(picked[1], picked[0])
    if (picked := _pick("root", overrides, env)) is not None:
        source, raw = picked
        if not isinstance(raw, (str, os.PathLike)) or "\x00" in str(raw):
            raise ConfigError(source, raw, "must be a directory path")
        values["root"] = Path(raw)
    if (picked := _pick("heartbeat_interval", overrides, env)) is not None:
        values["heartbeat_interval"] = _interval(
            picked[1], picked[0], "must be a number of seconds > 0"
        )
    if (picked := _pick("environment", overrides, env)) is not None:
        source, raw = picked
        if raw not in ENVIRONMENTS:
            raise ConfigError(source, raw, "must be 'paper' or 'live'")
        values["environment"] = raw
    if (picked := _pick("service_name", overrides, env)) is not None:
        values["service_name"] = str(picked[1])
    if (picked := _pick("logging_bridge", overrides, env)) is not None:
        values["logging_bridge"] = _flag(picked[1], picked[0])
    if (picked := _pick("strict", overrides, env)) is not None:
        values["strict"] = _flag(picked[1], picked[0])

    disabled = overrides.get("disabled")
    values["disabled"] = (
        _flag(disabled, "disabled")
        if disabled is not None
        else _flag(env.get("OTEL_SDK_DISABLED", "false"), "OTEL_SDK_DISABLED")
    )

    endpoint = overrides.get("otlp_endpoint")
    if endpoint is not None and not (
        isinstance(endpoint, str) and endpoint.startswith(("http://", "https://"))
    ):
        raise ConfigError("otlp_endpoint", endpoint, "must be an http:// or https:// URL")
    values["otlp_endpoint"] = endpoint
    for signal, key in (("METRICS", "otlp_metrics"), ("LOGS", "otlp_logs")):
        values[key] = (
            _flag(overrides[key], key)
            if overrides.get(key) is not None
            else _otlp_wanted(signal, env, endpoint)
        )

    if overrides.get("metric_export_interval") is not None:
        values["metric_export_interval"] = _interval(
            overrides["metric_export_interval"], "metric_export_interval",
            "must be a number of seconds > 0",
        )
    elif env.get("OTEL_METRIC_EXPORT_INTERVAL", "").strip():
        values["metric_export_interval"] = (
            _interval(
                env["OTEL_METRIC_EXPORT_INTERVAL"], "OTEL_METRIC_EXPORT_INTERVAL",
                "must be a number of milliseconds > 0",
            )
            / 1000.0
        )
    return Settings(**values)
