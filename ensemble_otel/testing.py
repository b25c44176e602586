"""Test kit: telemetry in memory, files in a temp dir, nothing on the network.

In a test::

    from ensemble_otel.testing import capture

    with capture(strategy_id="s1") as cap:
        bot.run()                     # the bot may call ensemble_otel.configure() itself
        assert cap.metric("ensemble.equity").value == 1000.0
        assert cap.resource["ensemble.strategy.id"] == "s1"

With pytest the fixture ``ensemble_capture`` gives the same object (this module is a
pytest plugin through the ``pytest11`` entry point); settings come from a marker::

    @pytest.mark.ensemble(strategy_id="s1", schema_version="2.0")
    def test_bot(ensemble_capture):
        ...
        assert ensemble_capture.records("event")[-1]["event"] == "done"

Inside both, ``strict`` is on (a bad bar or event raises, so a test sees the mistake), OTLP
is off, and the caller's ``ENSEMBLE_*`` / strategy environment variables are ignored unless
``use_env=True`` (``@pytest.mark.ensemble(use_env=True)``): a test passes whatever the shell
exports.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ensemble_otel import telemetry as _telemetry
from ensemble_otel._metricsdata import points as walk_points
from ensemble_otel.contract.registry import HEARTBEAT, METRICS_BY_NAME, RECORD_KINDS_BY_NAME
from ensemble_otel.paths import record_files, record_path
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
        points = [Point(metric.name, p.value, dict(p.attributes), metric.unit or "",
                        dict(resource.attributes))
                  for resource, metric, p in walk_points(data)]
        self._points = points
        return points

    def metrics(self, name: str | None = None) -> list[Point]:
        """Points of metric ``name`` (all points when None) from a fresh collection."""
        return [p for p in self.collect() if name is None or p.name == name]

    def metric(self, name: str, **attributes: Any) -> Point:
        """The one point of ``name`` whose attributes include ``attributes``."""
        points = self.metrics(name)
        found = [p for p in points
                 if all(p.attributes.get(k) == v for k, v in attributes.items())]
        if len(found) != 1:
            known = sorted(set(METRICS_BY_NAME) | {p.name for p in self._points})
            why = "" if name in known else (
                f": {name!r} is not a metric; known metrics: {', '.join(known)}")
            raise AssertionError(
                f"expected one point of {name} {attributes}, found {found}{why}")
        return found[0]

    def metric_names(self) -> set[str]:
        return {p.name for p in self.collect()}

    def logs(self) -> list[Any]:
        """Log records emitted so far (``ReadableLogRecord``; ``.log_record.body`` etc.)."""
        return list(self.log_exporter.get_finished_logs())

    def records(self, kind: str) -> list[dict[str, Any]]:
        """The records of ``kind`` written so far for this strategy, oldest first.

        ``kind``: ``heartbeat`` (the one beat file), ``health_snapshot_1h``,
        ``health_snapshot_24h``, ``event`` (also ``1h``, ``24h``, ``events``).
        """
        name = _KIND_ALIASES.get(kind, kind)
        spec = RECORD_KINDS_BY_NAME.get(name)
        if spec is None:
            known = sorted(set(RECORD_KINDS_BY_NAME) | set(_KIND_ALIASES))
            raise ValueError(f"unknown record kind {kind!r}; known kinds: {', '.join(known)}")
        sid = self.telemetry.settings.strategy_id
        if spec is HEARTBEAT:  # one JSON document, replaced at every beat
            path = record_path(self.root, spec, sid)
            return [orjson.loads(path.read_bytes())] if path.is_file() else []
        out: list[dict[str, Any]] = []
        for found in record_files(self.root, spec, sid):
            out.extend(_read_records(found.path))
        return out

    def files(self, pattern: str = "**/*") -> list[Path]:
        """Files written under the root, sorted."""
        return sorted(p for p in self.root.glob(pattern) if p.is_file())


def _read_records(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file; a line that is not a whole JSON object fails the test."""
    data = path.read_bytes()
    out = []
    for number, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise AssertionError(f"{path}:{number}: not a JSON line ({exc})") from None
        out.append(record)
    if not data.endswith(b"\n") and data:
        raise AssertionError(f"{path}: the last line has no newline (half-written)")
    return out


_KIND_ALIASES = {"1h": "health_snapshot_1h", "24h": "health_snapshot_24h", "events": "event"}
# variables a test ignores unless use_env=True: the ones a developer's shell may export
_OWN_VARIABLES = ("STRATEGY_ID", "SCHEMA_VERSION", "PAPER_TRADING_ROOT")


def _test_environment(use_env: bool) -> Mapping[str, str]:
    if use_env:
        return os.environ
    return {k: v for k, v in os.environ.items()
            if not k.startswith("ENSEMBLE_") and k not in _OWN_VARIABLES}


@contextmanager
def capture(
    root: str | Path | None = None, *, use_env: bool = False, **settings: Any
) -> Iterator[Capture]:
    """Configure ensemble-otel in memory for the duration of the block.

    Settings are the same keywords as ``ensemble_otel.configure``; ``strict`` is on unless
    given. The caller's ``ENSEMBLE_*``, ``STRATEGY_ID``, ``SCHEMA_VERSION`` and
    ``PAPER_TRADING_ROOT`` variables are ignored unless ``use_env=True``; OTLP is off
    whatever the environment says. Files go under ``root`` (a new temp dir by default).
    Inside the block ``ensemble_otel.configure()`` returns this telemetry; on exit it is
    shut down and the process is left unconfigured.
    """
    settings.setdefault("otlp_metrics", False)
    settings.setdefault("otlp_logs", False)
    settings.setdefault("disabled", False)
    settings.setdefault("strict", True)
    with tempfile.TemporaryDirectory(prefix="ensemble-otel-") as tmp:
        base = Path(root) if root is not None else Path(tmp)
        resolved = load_settings(_test_environment(use_env), root=base, **settings)
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

    def pytest_configure(config: Any) -> None:
        config.addinivalue_line(
            "markers", "ensemble(**settings): settings of the ensemble_capture fixture (the "
            "keywords of ensemble_otel.configure, and use_env=True to read ENSEMBLE_* "
            "variables)")

    @pytest.fixture
    def ensemble_capture(tmp_path: Path, request: Any) -> Iterator[Capture]:
        """ensemble-otel configured in memory, files under ``tmp_path / "ensemble"``.

        Settings from ``@pytest.mark.ensemble(...)``; strict on; ``ENSEMBLE_*`` variables
        ignored unless ``use_env=True``.
        """
        marker = request.node.get_closest_marker("ensemble")
        settings = dict(marker.kwargs) if marker is not None else {}
        if marker is not None and marker.args:
            raise TypeError("@pytest.mark.ensemble takes keyword arguments only, e.g. "
                            "@pytest.mark.ensemble(strategy_id='s1')")
        with capture(root=settings.pop("root", tmp_path / "ensemble"), **settings) as cap:
            yield cap
