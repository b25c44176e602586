"""The one rate-limited logger (ensemble_otel._ratelog) and the limits built on it."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from ensemble_otel import _export, _ratelog
from ensemble_otel._ratelog import RateLimitedLog

_log = logging.getLogger("ensemble_otel.test_ratelog")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(_ratelog.time, "monotonic", c)
    return c


def test_once_an_interval_with_the_count_held_back(clock: Clock) -> None:
    limit = RateLimitedLog(_log, 60.0)
    assert limit.take() == 0
    assert [limit.take() for _ in range(3)] == [None, None, None]
    assert limit.suppressed == 3
    clock.now += 59.999
    assert limit.take() is None
    clock.now += 0.001  # exactly an interval after the last one logged
    assert limit.take() == 4
    assert limit.suppressed == 0
    assert not limit.allow()
    clock.now += 60
    assert limit.allow()


def test_log_logs_once_an_interval(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    limit = RateLimitedLog(_log, 10.0)
    with caplog.at_level(logging.INFO, logger=_log.name):
        results = [limit.log(logging.ERROR, "broken %s", i) for i in range(5)]
        clock.now += 10
        results.append(limit.log(logging.ERROR, "broken %s", 5))
    assert results == [True, False, False, False, False, True]
    assert [r.getMessage() for r in caplog.records] == ["broken 0", "broken 5"]


class Failing(MetricExporter):
    def __init__(self) -> None:
        super().__init__()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        raise ConnectionError("refused")

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def test_export_warnings_share_one_interval(
    clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    shared = _export.ExportWarnings(60.0)
    monkeypatch.setattr(_export, "EXPORT_WARNINGS", shared)
    sdk = logging.getLogger("ensemble_otel.test_ratelog.sdk")
    sdk.addFilter(shared)
    guarded = _export.GuardedExporter(Failing())
    empty = MetricsData(resource_metrics=[])
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                assert guarded.export(empty) is MetricExportResult.FAILURE
            sdk.warning("retrying")  # the SDK's own warning: held back too
            clock.now += 60
            sdk.warning("retrying again")
            guarded.export(empty)
    finally:
        sdk.removeFilter(shared)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "OTLP metric export failed (refused; 1 failure(s) so far)" in messages[0]
    assert messages[1].startswith("ensemble-otel: OTLP export is failing; the bot and the "
                                  "files are unaffected (one such message per 60 s, 3 held "
                                  "back): retrying again")
    assert guarded.failures == 4
    assert shared.interval == 60.0
