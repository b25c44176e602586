"""The test kit users put in their CI: ``capture()`` and the ``ensemble_capture`` fixture."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import pytest

import ensemble_otel
from ensemble_otel.testing import capture

USER_TESTS = textwrap.dedent(
    """
    import ensemble_otel


    def bot(bars):
        telemetry = ensemble_otel.configure()  # the bot configures itself, as in production
        for ts, equity in bars:
            telemetry.health.maybe_emit(ts, equity=equity)
        ensemble_otel.emit_event("done", bars=len(bars))


    def test_bot_reports(ensemble_capture):
        bot([(1_700_000_000, 100.0), (1_700_000_060, 90.0)])
        assert ensemble_capture.metric("ensemble.equity").value == 90.0
        assert ensemble_capture.metric("ensemble.drawdown").value == 1 - 90.0 / 100.0
        assert ensemble_capture.resource["ensemble.strategy.id"] == "default"
        [log] = ensemble_capture.logs()
        assert log.log_record.body == {"bars": 2}
        names = [p.name for p in ensemble_capture.files()]
        assert "default.json" in names
        assert ensemble_capture.root.name == "ensemble"


    def test_isolated_from_the_previous_test(ensemble_capture):
        assert ensemble_capture.logs() == []
        assert ensemble_capture.metrics("ensemble.equity") == []


    def test_nothing_configured_outside_the_fixture():
        assert ensemble_otel.get_telemetry() is None
    """
)


def test_fixture_in_a_fresh_pytest_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_bot=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)


def test_fixture_is_listed_by_the_plugin(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-q")
    result.stdout.fnmatch_lines(["*ensemble_capture*"])


def test_capture_reads_points_logs_and_resource(tmp_path: Path) -> None:
    with capture(root=tmp_path, strategy_id="kit") as cap:
        cap.health.maybe_emit(1_700_000_000, equity=50.0, open_positions=2)
        cap.events.emit("hello", who="kit")
        point = cap.metric("ensemble.positions.open")
        assert (point.value, point.unit, point.attributes) == (2, "{position}", {})
        assert "ensemble.heartbeat.timestamp" in cap.metric_names()
        assert [r.log_record.body for r in cap.logs()] == [{"who": "kit"}]
        assert cap.resource["ensemble.strategy.id"] == "kit"
        assert ensemble_otel.configure() is cap.telemetry
        assert ensemble_otel.configure(strategy_id="ignored") is cap.telemetry
        with pytest.raises(AssertionError, match="expected one point"):
            cap.metric("ensemble.no.such.metric")
    assert ensemble_otel.get_telemetry() is None


def test_capture_uses_a_temp_dir_and_removes_it() -> None:
    with capture(strategy_id="tmp") as cap:
        root = cap.root
        assert (root / "logs" / "heartbeat" / "tmp.json").is_file()
    assert not root.exists()


def test_capture_ignores_otlp_and_disabled_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with capture(root=tmp_path) as cap:
        assert cap.telemetry._guarded == []
        assert not cap.telemetry.settings.disabled


def test_capture_leaves_no_thread_behind(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    with capture(root=tmp_path):
        assert set(threading.enumerate()) - before  # the heartbeat reader runs inside
    assert set(threading.enumerate()) <= before


def test_capture_refuses_a_configured_process(tmp_path: Path) -> None:
    ensemble_otel.configure(root=tmp_path / "real", strategy_id="real")
    with pytest.raises(RuntimeError, match="already configured"), capture(root=tmp_path):
        pass
