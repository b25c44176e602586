"""The one walker over the SDK's ``MetricsData`` (collections, exports, the test kit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.metrics.export import Metric, MetricsData


def points(data: MetricsData | None) -> Iterator[tuple[Any, Metric, Any]]:
    """Every data point: (resource, metric, point), in the SDK's order."""
    if data is None:
        return
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    yield rm.resource, metric, point


def point_value(data: MetricsData | None, name: str) -> float | None:
    """The value of the last point of metric ``name``, or None."""
    found: float | None = None
    for _, metric, point in points(data):
        if metric.name == name:
            found = float(point.value)
    return found


def values(data: MetricsData | None) -> dict[tuple[str, tuple[tuple[str, Any], ...]], Any]:
    """``{(metric name, sorted attributes): value}`` of every point."""
    return {(metric.name, tuple(sorted(point.attributes.items()))): point.value
            for _, metric, point in points(data)}
