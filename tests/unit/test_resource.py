"""The strategy resource on every metric point and log record."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from unit_support import at

import ensemble_otel
from ensemble_otel.contract.registry import (
    ENVIRONMENT_ATTRIBUTE,
    SCHEMA_VERSION_ATTRIBUTE,
    STRATEGY_ID_ATTRIBUTE,
)
from ensemble_otel.resource import EnsembleResourceDetector, build_resource, instance_id
from ensemble_otel.settings import load_settings
from ensemble_otel.testing import capture


def _expected(strategy: str, schema: str, env: str, service: str) -> dict[str, str]:
    return {
        STRATEGY_ID_ATTRIBUTE: strategy,
        SCHEMA_VERSION_ATTRIBUTE: schema,
        ENVIRONMENT_ATTRIBUTE: env,
        "service.name": service,
        "service.instance.id": instance_id(),
        "telemetry.distro.name": "ensemble-otel",
        "telemetry.distro.version": ensemble_otel.__version__,
    }


def _subset(expected: dict[str, str], actual: dict[str, object]) -> None:
    for key, value in expected.items():
        assert actual.get(key) == value, (key, actual.get(key), value)


def test_resource_on_metrics_and_logs(root: Path) -> None:
    with capture(root=root, strategy_id="trend.v2", schema_version="2.0",
                 environment="live") as cap:
        cap.health.maybe_emit(at(0, 5), equity=1000.0)
        cap.events.emit("order_filled", qty=1)
        expected = _expected("trend.v2", "2.0", "live", "ensemble-bot")
        _subset(expected, cap.resource)
        points = cap.collect()
        names = {p.name for p in points}
        assert {"ensemble.heartbeat.timestamp", "ensemble.equity"} <= names
        for point in points:
            _subset(expected, point.resource)
        logs = cap.logs()
        assert len(logs) == 1
        _subset(expected, dict(logs[0].resource.attributes))


def test_service_name_from_otel_service_name(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "eurusd-bot")
    with capture(root=root, strategy_id="s1") as cap:
        assert cap.resource["service.name"] == "eurusd-bot"


def test_otel_resource_attributes_are_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES",
                       "team=fx,service.namespace=bots,service.name=from-attrs")
    resource = build_resource(load_settings({}, strategy_id="s1"))
    attrs = dict(resource.attributes)
    assert attrs["team"] == "fx"
    assert attrs["service.namespace"] == "bots"
    # no OTEL_SERVICE_NAME: the name given in OTEL_RESOURCE_ATTRIBUTES is kept
    assert attrs["service.name"] == "from-attrs"
    assert attrs[STRATEGY_ID_ATTRIBUTE] == "s1"
    assert attrs["telemetry.sdk.language"] == "python"  # the SDK's own detector still runs


def test_otel_service_name_beats_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-var")
    assert build_resource(load_settings()).attributes["service.name"] == "from-var"


def test_conflicting_strategy_identity_is_overridden_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, root: Path
) -> None:
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES",
        f"{STRATEGY_ID_ATTRIBUTE}=impostor,{SCHEMA_VERSION_ATTRIBUTE}=9.9,"
        f"{ENVIRONMENT_ATTRIBUTE}=live",
    )
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    with capture(root=root, strategy_id="real", schema_version="1.2") as cap:
        cap.health.maybe_emit(at(0, 1), equity=10.0)
        assert cap.resource[STRATEGY_ID_ATTRIBUTE] == "real"
        assert cap.resource[SCHEMA_VERSION_ATTRIBUTE] == "1.2"
        # the environment attribute follows the settings too (paper by default)
        assert cap.resource[ENVIRONMENT_ATTRIBUTE] == "paper"
        point = cap.metric("ensemble.equity")
        assert point.resource[STRATEGY_ID_ATTRIBUTE] == "real"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    strategy_warnings = [w for w in warnings if STRATEGY_ID_ATTRIBUTE in w]
    assert len(strategy_warnings) == 1
    assert "'impostor'" in strategy_warnings[0] and "'real'" in strategy_warnings[0]
    assert any(SCHEMA_VERSION_ATTRIBUTE in w and "'9.9'" in w for w in warnings)


def test_agreeing_resource_attributes_do_not_warn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"{STRATEGY_ID_ATTRIBUTE}=s1")
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    build_resource(load_settings({}, strategy_id="s1"))
    assert not caplog.records


def test_instance_id_is_one_per_process(root: Path) -> None:
    with capture(root=root / "a", strategy_id="a") as first:
        one = first.resource["service.instance.id"]
    with capture(root=root / "b", strategy_id="b") as second:
        two = second.resource["service.instance.id"]
    assert one == two == instance_id()
    other = subprocess.run(
        [sys.executable, "-c", "from ensemble_otel.resource import instance_id; "
         "print(instance_id())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert len(other) == 36 and other != one


def test_forked_child_gets_its_own_instance_id() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(write_end, instance_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 100).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child_id) == 36 and child_id != instance_id()


def test_detector_entry_point_is_registered() -> None:
    found = [ep for ep in entry_points(group="opentelemetry_resource_detector")
             if ep.name == "ensemble"]
    assert len(found) == 1
    assert found[0].load() is EnsembleResourceDetector


def test_detector_reads_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "det")
    monkeypatch.setenv("ENSEMBLE_SCHEMA_VERSION", "3.1")
    attrs = dict(EnsembleResourceDetector().detect().attributes)
    _subset({STRATEGY_ID_ATTRIBUTE: "det", SCHEMA_VERSION_ATTRIBUTE: "3.1",
             ENVIRONMENT_ATTRIBUTE: "paper", "telemetry.distro.name": "ensemble-otel"}, attrs)


def test_detector_runs_when_named_in_the_sdk_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "via-sdk")
    monkeypatch.setenv("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "ensemble")
    assert Resource.create().attributes[STRATEGY_ID_ATTRIBUTE] == "via-sdk"


def test_detector_with_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "../etc")
    assert dict(EnsembleResourceDetector().detect().attributes) == {}
    with pytest.raises(ensemble_otel.ConfigError, match="ENSEMBLE_STRATEGY_ID"):
        EnsembleResourceDetector(raise_on_error=True).detect()
