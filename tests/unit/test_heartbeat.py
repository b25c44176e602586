"""Heartbeat: gauges mirrored to an atomically replaced file; lifecycle states."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

import ensemble_otel
from ensemble_otel.contract.registry import HEARTBEAT, HEARTBEAT_TIMESTAMP, UPTIME
from ensemble_otel.heartbeat import Heartbeat, HeartbeatFileExporter, read_heartbeat
from ensemble_otel.heartbeat_cli import check
from ensemble_otel.resource import instance_id
from ensemble_otel.settings import load_settings
from ensemble_otel.testing import Capture, capture

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
}


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def _beat(path: Path) -> dict[str, Any]:
    return read_heartbeat(path)


def test_startup_beat_is_on_disk_when_configure_returns(root: Path) -> None:
    before = time.time()
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    path = root / "logs" / "heartbeat" / "s1.json"
    beat = _beat(path)  # no waiting: it must be there already
    assert beat["state"] == "starting"
    assert beat["seq"] == 0
    assert before <= beat["unix"] <= time.time()
    assert telemetry.heartbeat.path == path
    ensemble_otel.shutdown()


def test_file_content_every_field(root: Path) -> None:
    with capture(root=root, strategy_id="s1", schema_version="2.4", environment="live",
                 heartbeat_interval=3600) as cap:
        beat = _beat(root / "logs" / "heartbeat" / "s1.json")
        assert set(beat) == set(HEARTBEAT.field_names())
        for field in HEARTBEAT.fields:
            value = beat[field.name]
            assert isinstance(value, _JSON_TYPES[field.type]), (field.name, value)
            assert not isinstance(value, bool) or field.type == "boolean", field.name
        assert beat["strategy_id"] == "s1"
        assert beat["schema_version"] == "2.4"
        assert beat["environment"] == "live"
        assert beat["interval_s"] == 3600
        assert beat["pid"] == os.getpid()
        assert beat["host"] == socket.gethostname()
        assert beat["service_instance_id"] == instance_id() == cap.resource["service.instance.id"]
        assert 0 <= beat["uptime_s"] < 60
        assert beat["ts"].endswith("Z")
        parsed = datetime.fromisoformat(beat["ts"].replace("Z", "+00:00"))
        assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
        assert abs(parsed.timestamp() - beat["unix"]) < 1e-5


def test_later_beats_are_running_and_numbered(root: Path) -> None:
    with capture(root=root, strategy_id="s1", heartbeat_interval=0.05) as cap:
        cap.health.maybe_emit(1_700_000_000, equity=1.0)  # "starting" lasts until a bar
        path = root / "logs" / "heartbeat" / "s1.json"
        _wait_for(lambda: _beat(path)["seq"] >= 3)
        beat = _beat(path)
        assert beat["state"] == "running"
        assert beat["uptime_s"] > 0
        first_unix = beat["unix"]
        _wait_for(lambda: _beat(path)["unix"] > first_unix)


def test_gauges_report_the_beat(cap: Capture) -> None:
    before = time.time()
    beat = cap.metric(HEARTBEAT_TIMESTAMP)
    assert beat.unit == "s"
    assert before <= beat.value <= time.time()
    uptime = cap.metric(UPTIME)
    assert uptime.unit == "s" and uptime.value >= 0


def test_shutdown_writes_stopped(root: Path) -> None:
    ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    path = root / "logs" / "heartbeat" / "s1.json"
    ensemble_otel.shutdown()
    beat = _beat(path)
    assert beat["state"] == "stopped"
    assert beat["seq"] >= 1
    assert ensemble_otel.get_telemetry() is None
    assert check(path, max_age=60)[0] == 1


def test_beat_file_is_replaced_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader never sees a partial file while thousands of beats replace it."""
    fsynced: list[int] = []
    # every beat is fsynced before the rename; skipping the disk flush keeps this fast
    monkeypatch.setattr(os, "fsync", fsynced.append)
    settings = load_settings({}, root=tmp_path, strategy_id="atomic")
    heartbeat = Heartbeat(settings, "instance")
    path = settings.heartbeat_path
    heartbeat.write(time.time())
    stop = threading.Event()
    seen: list[int] = []
    bad: list[bytes] = []

    def reader() -> None:
        while not stop.is_set():
            data = path.read_bytes()
            try:
                seen.append(orjson.loads(data)["seq"])
            except orjson.JSONDecodeError:
                bad.append(data)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(3000):
            assert heartbeat.write(time.time())
    finally:
        stop.set()
        thread.join()
    assert bad == []
    assert len(seen) > 10  # the reader really raced the writer
    assert seen == sorted(seen)  # never an older beat after a newer one
    assert _beat(path)["seq"] == 3000
    assert len(fsynced) == 3001
    leftovers = [p.name for p in path.parent.iterdir() if p.name != path.name]
    assert leftovers == []


def test_exporter_writes_only_what_a_collection_produced(tmp_path: Path) -> None:
    settings = load_settings({}, root=tmp_path, strategy_id="s1")
    heartbeat = Heartbeat(settings, "instance")
    exporter = HeartbeatFileExporter(heartbeat)
    from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData

    assert exporter.export(MetricsData(resource_metrics=[])) is MetricExportResult.FAILURE
    assert not settings.heartbeat_path.exists()


def test_write_failure_is_soft_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = load_settings({}, root=blocker, strategy_id="s1")
    heartbeat = Heartbeat(settings, "instance")
    assert heartbeat.write(time.time()) is False
    assert heartbeat.write(time.time()) is False
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "heartbeat" in errors[0].getMessage()
    assert heartbeat.seq == 0


def test_stale_file_is_detected(root: Path) -> None:
    with capture(root=root, strategy_id="s1", heartbeat_interval=3600):
        path = root / "logs" / "heartbeat" / "s1.json"
        beat = _beat(path)
        code, reason = check(path, max_age=10, now=beat["unix"] + 5)
        assert code == 0 and reason.startswith("ok")
        code, reason = check(path, max_age=10, now=beat["unix"] + 11)
        assert code == 1 and reason.startswith("stale")


def test_disabled_writes_nothing_and_starts_no_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    before = set(threading.enumerate())
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=0.01)
    assert isinstance(telemetry, ensemble_otel.NoopTelemetry)
    assert telemetry.health.maybe_emit(1_700_000_000, equity=1.0) == []
    assert telemetry.health.maybe_emit(1_700_090_000, equity=1.0) == []
    assert telemetry.events.emit("anything", x=1) == {}
    assert ensemble_otel.emit_event("other") == {}
    time.sleep(0.05)
    assert set(threading.enumerate()) <= before  # no thread started
    assert ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=0.01) \
        is telemetry
    ensemble_otel.shutdown()
    assert set(threading.enumerate()) <= before
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_stuck_metrics_pipeline_shows_as_a_stale_file(root: Path) -> None:
    """A user's observable callback that hangs stalls every collection on the provider:
    the beat file must then go stale, since only a collection writes it."""
    release = threading.Event()
    stuck = threading.Event()

    def hanging(options: object) -> list[object]:
        stuck.set()
        release.wait(30)
        return []

    with capture(root=root, strategy_id="s1", heartbeat_interval=0.05) as cap:
        path = root / "logs" / "heartbeat" / "s1.json"
        _wait_for(lambda: _beat(path)["seq"] >= 2)
        meter = cap.telemetry.meter_provider.get_meter("user-code")
        meter.create_observable_gauge("user.stuck", callbacks=[hanging])
        try:
            assert stuck.wait(10)
            time.sleep(0.1)  # let an in-flight write finish
            frozen = _beat(path)
            time.sleep(0.4)
            assert _beat(path) == frozen
            code, reason = check(path, max_age=0.3)
            assert code == 1 and reason.startswith("stale")
        finally:
            release.set()
        _wait_for(lambda: _beat(path)["seq"] > frozen["seq"])
        assert check(path, max_age=5)[0] == 0
