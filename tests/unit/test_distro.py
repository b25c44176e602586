"""The ``ensemble`` distro and configurator (what opentelemetry-instrument loads)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import ensemble_otel
from ensemble_otel import ConfigError, Telemetry
from ensemble_otel.distro import EnsembleConfigurator, EnsembleDistro, multiprocessing_helper
from ensemble_otel.resource import EnsembleResourceDetector

DETECTORS = "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    """The distro writes os.environ directly: put back exactly what was there."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_entry_points_are_declared() -> None:
    found = {
        group: {ep.name: ep.load() for ep in entry_points(group=group)}
        for group in ("opentelemetry_distro", "opentelemetry_configurator",
                      "opentelemetry_resource_detector")
    }
    assert found["opentelemetry_distro"]["ensemble"] is EnsembleDistro
    assert found["opentelemetry_configurator"]["ensemble"] is EnsembleConfigurator
    assert found["opentelemetry_resource_detector"]["ensemble"] is EnsembleResourceDetector


# -- distro: environment defaults only ------------------------------------------------------

@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, "ensemble"),
        ("", "ensemble"),
        ("otel", "otel,ensemble"),
        (" host , process ", "host,process,ensemble"),
        ("ensemble,host", "ensemble,host"),  # already listed: kept as the user wrote it
        ("*", "*"),  # every registered detector runs, ensemble included
    ],
)
def test_distro_names_the_detector_and_keeps_the_users(
    monkeypatch: pytest.MonkeyPatch, before: str | None, after: str
) -> None:
    if before is None:
        monkeypatch.delenv(DETECTORS, raising=False)
    else:
        monkeypatch.setenv(DETECTORS, before)
    EnsembleDistro().configure()
    assert os.environ[DETECTORS] == after
    EnsembleDistro().configure()  # sitecustomize may run twice: no duplicate
    assert os.environ[DETECTORS] == after


def test_distro_picks_the_ensemble_configurator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_PYTHON_CONFIGURATOR", raising=False)
    EnsembleDistro().configure()
    assert os.environ["OTEL_PYTHON_CONFIGURATOR"] == "ensemble"


def test_distro_keeps_a_chosen_configurator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_CONFIGURATOR", "configurator")
    EnsembleDistro().configure()
    assert os.environ["OTEL_PYTHON_CONFIGURATOR"] == "configurator"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "none"),  # no endpoint: nothing tries to connect anywhere
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),  # the user's choice stays
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
          "OTEL_TRACES_EXPORTER": "none"}, "none"),
    ],
)
def test_distro_exports_traces_only_with_an_endpoint(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    EnsembleDistro().configure()
    assert os.environ["OTEL_TRACES_EXPORTER"] == expected


def test_distro_maps_the_logging_auto_instrumentation_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "true")
    EnsembleDistro().configure()
    assert os.environ["ENSEMBLE_LOGGING_BRIDGE"] == "true"


def test_distro_leaves_the_logging_bridge_alone_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    EnsembleDistro().configure()
    assert "ENSEMBLE_LOGGING_BRIDGE" not in os.environ


# -- configurator --------------------------------------------------------------------------

def test_configurator_configures_the_process_wide_telemetry(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPER_TRADING_ROOT", str(root))
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "zc")
    EnsembleConfigurator().configure(auto_instrumentation_version="test")
    telemetry = ensemble_otel.get_telemetry()
    assert isinstance(telemetry, Telemetry)
    assert telemetry.settings.strategy_id == "zc"
    assert (root / "logs" / "heartbeat" / "zc.json").is_file()
    assert ensemble_otel.configure() is telemetry  # the bot's own call: no second set-up
    EnsembleConfigurator().configure()  # a second sitecustomize run changes nothing
    assert ensemble_otel.get_telemetry() is telemetry


BAD_SETTINGS = [
    ("ENSEMBLE_STRATEGY_ID", "bad/id", "safe file-name token"),
    ("ENSEMBLE_SCHEMA_VERSION", "v1", "MAJOR.MINOR"),
    ("ENSEMBLE_HEARTBEAT_INTERVAL", "0", "seconds > 0"),
    ("ENSEMBLE_ENVIRONMENT", "prod", "'paper' or 'live'"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "milliseconds > 0"),
    ("OTEL_SDK_DISABLED", "maybe", "true or false"),
]


@pytest.mark.parametrize(("var", "value", "rule"), BAD_SETTINGS)
def test_configurator_reports_bad_settings_and_stays_off(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    var: str, value: str, rule: str,
) -> None:
    monkeypatch.setenv("PAPER_TRADING_ROOT", str(root))
    monkeypatch.setenv(var, value)
    EnsembleConfigurator().configure()  # must not raise: the bot has to start
    err = capsys.readouterr().err
    assert f"{var}={value!r}" in err and rule in err
    assert "the bot runs on" in err
    assert ensemble_otel.get_telemetry() is None
    assert not root.exists()  # nothing written
    with pytest.raises(ConfigError) as info:  # the bot's own configure(): the same error
        ensemble_otel.configure()
    assert str(info.value) in err


def test_configurator_reports_a_strategy_held_by_another_process(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PAPER_TRADING_ROOT", str(root))
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "busy")
    (root / "state").mkdir(parents=True)
    fd = os.open(root / "state" / "busy.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: another writer
        EnsembleConfigurator().configure()
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert "strategy_id='busy'" in err and "another live process" in err
    assert ensemble_otel.get_telemetry() is None
    assert not (root / "logs").exists()


def test_configurator_reports_an_unusable_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    monkeypatch.setenv("PAPER_TRADING_ROOT", str(blocker / "root"))
    EnsembleConfigurator().configure()
    err = capsys.readouterr().err
    assert "PAPER_TRADING_ROOT" in err and str(blocker) in err
    assert ensemble_otel.get_telemetry() is None


@pytest.mark.parametrize(
    ("argv", "helper"),
    [
        (["python", "bot.py"], False),
        (["python", "-c", "print(1)"], False),
        (["python", "-m", "bot"], False),
        (["python", "-B", "-c", "from multiprocessing.spawn import spawn_main; "
          "spawn_main(tracker_fd=4, pipe_handle=6)", "--multiprocessing-fork"], True),
        (["python", "-B", "-c", "from multiprocessing.forkserver import main; main(3, 5)"], True),
        (["python", "-B", "-c", "from multiprocessing.resource_tracker import main;main(3)"],
         True),
    ],
)
def test_multiprocessing_helpers_are_recognised(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], helper: bool
) -> None:
    monkeypatch.setattr(sys, "orig_argv", argv)
    assert multiprocessing_helper() is helper


def test_configurator_leaves_multiprocessing_children_alone(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PAPER_TRADING_ROOT", str(root))
    monkeypatch.setattr(sys, "orig_argv", [
        "python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()",
        "--multiprocessing-fork"])
    EnsembleConfigurator().configure()
    assert ensemble_otel.get_telemetry() is None
    assert not root.exists()
    assert capsys.readouterr().err == ""


def test_span_exporter_drops_spans_in_a_forked_child(tmp_path: Path) -> None:
    """A forked child's copy of the span exporter never sends the parent's way."""
    program = textwrap.dedent("""
        import os, sys
        from opentelemetry.sdk.trace.export import SpanExportResult
        from ensemble_otel.distro import _ParentOnlySpanExporter

        class Inner:
            def __init__(self): self.calls = []
            def export(self, spans): self.calls.append(len(spans)); return SpanExportResult.FAILURE
            def shutdown(self): self.calls.append("shutdown")
            def force_flush(self, timeout_millis=0): self.calls.append("flush"); return False

        inner = Inner()
        guarded = _ParentOnlySpanExporter(inner)
        pid = os.fork()
        if pid == 0:
            ok = (guarded.export([1, 2]) is SpanExportResult.SUCCESS
                  and guarded.force_flush() is True)
            guarded.shutdown()
            os._exit(0 if ok and inner.calls == [] else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "child touched the exporter"
        assert guarded.export([1]) is SpanExportResult.FAILURE  # the parent's goes through
        guarded.shutdown()
        assert inner.calls == [1, "shutdown"], inner.calls
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("argv", "tool"),
    [
        (["/venv/bin/python", "/venv/bin/ensemble-otel", "heartbeat", "check"], True),
        (["/venv/bin/python", "/venv/bin/ensemble-otel", "validate", "logs"], True),
        (["/venv/bin/python", "/venv/bin/ensemble-otel", "demo", "--bars", "10"], False),
        (["python", "-m", "ensemble_otel.validate", "x"], True),
        (["python", "-m", "ensemble_otel.demo"], False),
        (["python", "bot.py"], False),
    ],
)
def test_ensemble_tools_are_not_auto_configured(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], tool: bool
) -> None:
    """A liveness probe inside the bot's environment must not write the bot's heartbeat."""
    from ensemble_otel.distro import ensemble_tool

    monkeypatch.setattr(sys, "orig_argv", argv, raising=False)
    assert ensemble_tool() is tool
