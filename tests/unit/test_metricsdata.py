"""The one MetricsData walker (ensemble_otel._metricsdata) over a real SDK collection."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

from ensemble_otel._metricsdata import point_value, points, values


def test_points_values_and_the_last_value_of_a_metric() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource({"r": "1"}))
    try:
        meter = provider.get_meter("t")
        gauge = meter.create_gauge("g")
        gauge.set(1.5, {"a": "x"})
        gauge.set(2.5, {"a": "y"})
        meter.create_counter("c").add(3)
        data = reader.get_metrics_data()
    finally:
        provider.shutdown()
    found = [(dict(r.attributes), m.name, p.value) for r, m, p in points(data)]
    assert sorted(found, key=str) == sorted([({"r": "1"}, "g", 1.5), ({"r": "1"}, "g", 2.5),
                                             ({"r": "1"}, "c", 3)], key=str)
    assert values(data) == {("g", (("a", "x"),)): 1.5, ("g", (("a", "y"),)): 2.5,
                            ("c", ()): 3}
    assert point_value(data, "c") == 3.0
    assert point_value(data, "g") in (1.5, 2.5)  # the last point the SDK gave
    assert point_value(data, "missing") is None
    assert point_value(None, "c") is None
    assert list(points(None)) == []
