"""The telemetry contract: the registry of names and the JSON Schemas derived from it."""

from ensemble_otel.contract.registry import (
    METRICS,
    METRICS_BY_NAME,
    RECORD_KINDS,
    RECORD_KINDS_BY_NAME,
    RESOURCE_ATTRIBUTES,
    Field,
    Metric,
    RecordKind,
)

__all__ = [
    "METRICS",
    "METRICS_BY_NAME",
    "RECORD_KINDS",
    "RECORD_KINDS_BY_NAME",
    "RESOURCE_ATTRIBUTES",
    "Field",
    "Metric",
    "RecordKind",
]
