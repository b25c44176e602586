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


MARKED_TESTS = textwrap.dedent(
    """
    import math

    import pytest

    import ensemble_otel


    @pytest.mark.ensemble(strategy_id="marked", schema_version="2.0")
    def test_marker_settings(ensemble_capture):
        telemetry = ensemble_otel.configure()
        assert telemetry.settings.strategy_id == "marked"
        assert ensemble_capture.resource["ensemble.strategy.id"] == "marked"
        telemetry.events.emit("done", n=1)
        [record] = ensemble_capture.records("event")
        assert (record["event"], record["schema_version"]) == ("done", "2.0")


    def test_shell_variables_are_ignored(ensemble_capture):
        assert ensemble_capture.telemetry.settings.strategy_id == "default"
        assert ensemble_capture.telemetry.settings.heartbeat_interval == 30.0


    @pytest.mark.ensemble(use_env=True)
    def test_shell_variables_on_request(ensemble_capture):
        assert ensemble_capture.telemetry.settings.strategy_id == "from-shell"


    def test_strict_by_default(ensemble_capture):
        with pytest.raises(ensemble_otel.EventError):
            ensemble_capture.events.emit("bad", x=math.nan)
        with pytest.raises(ensemble_otel.BarError):
            ensemble_capture.health.maybe_emit("not a time", equity=1.0)
    """
)


def test_marker_settings_and_a_hostile_shell(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README example passes whatever the shell exports (ENSEMBLE_* ignored unless
    asked), settings come from ``@pytest.mark.ensemble``, strict is on."""
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "from-shell")
    monkeypatch.setenv("ENSEMBLE_HEARTBEAT_INTERVAL", "5")
    monkeypatch.setenv("PAPER_TRADING_ROOT", "/nonexistent/shell/root")
    pytester.makepyfile(test_marked=MARKED_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--strict-markers")
    result.assert_outcomes(passed=4)
    pytester.makepyfile(test_user_bot=USER_TESTS)  # the README's example, same hostile shell
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "test_user_bot.py")
    result.assert_outcomes(passed=3)


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.ensemble(**settings)*"])


def test_records_of_each_kind(tmp_path: Path) -> None:
    with capture(root=tmp_path, strategy_id="kit") as cap:
        assert cap.records("event") == [] and cap.records("1h") == []
        cap.health.maybe_emit(1_700_000_000, equity=100.0)
        cap.health.maybe_emit(1_700_003_600, equity=90.0)
        cap.events.emit("hello", n=1)
        [hour] = cap.records("health_snapshot_1h")
        assert hour["equity"] == 100.0 and hour["strategy_id"] == "kit"
        assert cap.records("24h") == []
        assert [r["event"] for r in cap.records("events")] == ["hello"]
        [beat] = cap.records("heartbeat")
        assert beat["strategy_id"] == "kit"
        with pytest.raises(ValueError, match=r"known kinds: .*health_snapshot_1h"):
            cap.records("snapshots")


def test_an_unknown_metric_lists_the_known_ones(tmp_path: Path) -> None:
    with capture(root=tmp_path) as cap:
        with pytest.raises(AssertionError) as info:
            cap.metric("ensemble.equty")
        text = str(info.value)
        assert "expected one point" in text and "not a metric" in text
        assert "ensemble.equity" in text and "ensemble.heartbeat.timestamp" in text
        with pytest.raises(AssertionError) as info:
            cap.metric("ensemble.equity")  # known, no bar yet: no list
        assert "not a metric" not in str(info.value)


def test_capture_can_read_the_environment_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "env-id")
    with capture(root=tmp_path) as cap:
        assert cap.telemetry.settings.strategy_id == "default"
    with capture(root=tmp_path, use_env=True) as cap:
        assert cap.telemetry.settings.strategy_id == "env-id"
    with capture(root=tmp_path, strict=False) as cap:
        assert not cap.events.emit("bad", x=float("nan"))  # refused, not raised
