"""Test kit: telemetry in memory, files in a temp dir, nothing on the network.

In a test::

    from ensemble_otel.testing import capture

    with capture(strategy_id="s1") as cap:
        bot.run()                     # the bot may call ensemble_otel.configure() itself
        assert cap.metric("ensemble.equity").value == 1000.0
        assert cap.resource["ensemble.strategy.id"] == "s1"

With pytest the fixture ``ensemble_capture`` gives the same object (this module is a
pytest plugin through the ``pytest11`` entry point).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ensemble_otel import telemetry as _telemetry
from ensemble_otel.settings import load_settings

try:  # renamed in recent SDKs; the old name is a deprecated alias
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as _InMemoryLogs
except ImportError:  # pragma: no cover - older SDKs
    from opentelemetry.sdk._logs.export import InMemoryLogExporter as _InMemoryLogs


@dataclass(frozen=True)
class Point:
    """One metric data point as the SDK collected it."""

    name: str
    value: float
    attributes: dict[str, Any]
    unit: str
    resource: dict[str, Any]


@dataclass
class Capture:
    """What ``capture()`` yields: the telemetry, its root, and readers for what it produced."""

    telemetry: _telemetry.Telemetry
    root: Path
    metric_reader: InMemoryMetricReader
    log_exporter: Any
    _points: list[Point] = field(default_factory=list)

    @property
    def resource(self) -> dict[str, Any]:
        """The resource attributes attached to every signal."""
        return dict(self.telemetry.resource.attributes)

    @property
    def health(self) -> Any:
        return self.telemetry.health

    @property
    def events(self) -> Any:
        return self.telemetry.events

    def collect(self) -> list[Point]:
        """Collect every metric now and return its points (the observable callbacks run)."""
        data = self.metric_reader.get_metrics_data()
        points: list[Point] = []
        if data is not None:
            for rm in data.resource_metrics:
                resource = dict(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        for p in metric.data.data_points:
                            points.append(Point(metric.name, p.value, dict(p.attributes),
                                                metric.unit or "", resource))
        self._points = points
        return points

    def metrics(self, name: str | None = None) -> list[Point]:
        """Points of metric ``name`` (all points when None) from a fresh collection."""
        return [p for p in self.collect() if name is None or p.name == name]

    def metric(self, name: str, **attributes: Any) -> Point:
        """The one point of ``name`` whose attributes include ``attributes``."""
        found = [p for p in self.metrics(name)
                 if all(p.attributes.get(k) == v for k, v in attributes.items())]
        if len(found) != 1:
            raise AssertionError(f"expected one point of {name} {attributes}, found {found}")
        return found[0]

    def metric_names(self) -> set[str]:
        return {p.name for p in self.collect()}

    def logs(self) -> list[Any]:
        """Log records emitted so far (``ReadableLogRecord``; ``.log_record.body`` etc.)."""
        return list(self.log_exporter.get_finished_logs())

    def files(self, pattern: str = "**/*") -> list[Path]:
        """Files written under the root, sorted."""
        return sorted(p for p in self.root.glob(pattern) if p.is_file())


@contextmanager
def capture(root: str | Path | None = None, **settings: Any) -> Iterator[Capture]:
    """Configure ensemble-otel in memory for the duration of the block.

    Settings are the same keywords as ``ensemble_otel.configure`` (env vars still apply
    where a keyword is not given). OTLP is off whatever the environment says. Files go under
    ``root`` (a new temp dir by default). Inside the block ``ensemble_otel.configure()``
    returns this telemetry; on exit it is shut down and the process is left unconfigured.
    """
    settings.setdefault("otlp_metrics", False)
    settings.setdefault("otlp_logs", False)
    settings.setdefault("disabled", False)
    with tempfile.TemporaryDirectory(prefix="ensemble-otel-") as tmp:
        base = Path(root) if root is not None else Path(tmp)
        resolved = load_settings(root=base, **settings)
        if _telemetry.current() is not None:
            raise RuntimeError("ensemble_otel is already configured in this process; "
                               "capture() needs a process (or test) without it")
        reader = InMemoryMetricReader()
        logs = _InMemoryLogs()
        telemetry = _telemetry.install(
            resolved, metric_readers=[reader], log_exporters=[logs], captured=True)
        assert isinstance(telemetry, _telemetry.Telemetry)
        try:
            yield Capture(telemetry=telemetry, root=base, metric_reader=reader, log_exporter=logs)
        finally:
            _telemetry.release(telemetry)


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def ensemble_capture(tmp_path: Path) -> Iterator[Capture]:
        """ensemble-otel configured in memory, files under ``tmp_path / "ensemble"``."""
        with capture(root=tmp_path / "ensemble") as cap:
            yield cap
