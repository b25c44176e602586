"""Settings: arguments beat the environment, which beats defaults; every bad value is named."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ensemble_otel import ConfigError, load_settings
from ensemble_otel.contract.registry import SCHEMA_VERSION_PATTERN, STRATEGY_ID_PATTERN
from ensemble_otel.settings import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_ROOT,
    DEFAULT_SCHEMA_VERSION,
    DEFAULT_STRATEGY_ID,
    SCHEMA_VERSION_RE,
    STRATEGY_ID_RE,
)


def test_defaults() -> None:
    s = load_settings({})
    assert s.strategy_id == "default" == DEFAULT_STRATEGY_ID
    assert s.schema_version == "1.1" == DEFAULT_SCHEMA_VERSION
    assert s.root == Path("./paper_trading_outputs") == Path(DEFAULT_ROOT)
    assert s.heartbeat_interval == 30.0 == DEFAULT_HEARTBEAT_INTERVAL
    assert s.environment == "paper"
    assert s.service_name == "ensemble-bot"
    assert s.disabled is False
    assert s.otlp_metrics is False and s.otlp_logs is False


def test_os_environ_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "from-env")
    assert load_settings().strategy_id == "from-env"


def test_environment_beats_defaults() -> None:
    env = {
        "ENSEMBLE_STRATEGY_ID": "trend_v2",
        "ENSEMBLE_SCHEMA_VERSION": "2.3",
        "PAPER_TRADING_ROOT": "/srv/out",
        "ENSEMBLE_HEARTBEAT_INTERVAL": "7.5",
        "ENSEMBLE_ENVIRONMENT": "live",
        "OTEL_SERVICE_NAME": "my-bot",
    }
    s = load_settings(env)
    assert (s.strategy_id, s.schema_version, s.root, s.heartbeat_interval, s.environment,
            s.service_name) == ("trend_v2", "2.3", Path("/srv/out"), 7.5, "live", "my-bot")


def test_arguments_beat_environment() -> None:
    env = {
        "ENSEMBLE_STRATEGY_ID": "env-id",
        "STRATEGY_ID": "fallback-id",
        "ENSEMBLE_SCHEMA_VERSION": "2.3",
        "PAPER_TRADING_ROOT": "/srv/out",
        "ENSEMBLE_HEARTBEAT_INTERVAL": "7.5",
        "ENSEMBLE_ENVIRONMENT": "live",
    }
    s = load_settings(
        env, strategy_id="arg-id", schema_version="3.0", root="/tmp/x",
        heartbeat_interval=2, environment="paper",
    )
    assert (s.strategy_id, s.schema_version, s.root, s.heartbeat_interval, s.environment) == (
        "arg-id", "3.0", Path("/tmp/x"), 2.0, "paper")


def test_none_arguments_fall_through_to_environment() -> None:
    s = load_settings({"ENSEMBLE_STRATEGY_ID": "env-id"}, strategy_id=None)
    assert s.strategy_id == "env-id"


@pytest.mark.parametrize(
    ("env", "strategy", "schema"),
    [
        ({"STRATEGY_ID": "fb", "SCHEMA_VERSION": "4.2"}, "fb", "4.2"),
        ({"STRATEGY_ID": "fb", "ENSEMBLE_STRATEGY_ID": "main",
          "SCHEMA_VERSION": "4.2", "ENSEMBLE_SCHEMA_VERSION": "5.0"}, "main", "5.0"),
        ({"STRATEGY_ID": "fb", "ENSEMBLE_STRATEGY_ID": ""}, "fb", "1.1"),
    ],
)
def test_fallback_variables(env: dict[str, str], strategy: str, schema: str) -> None:
    s = load_settings(env)
    assert (s.strategy_id, s.schema_version) == (strategy, schema)


def test_blank_variables_count_as_unset() -> None:
    s = load_settings({"ENSEMBLE_STRATEGY_ID": "  ", "ENSEMBLE_HEARTBEAT_INTERVAL": ""})
    assert s.strategy_id == "default"
    assert s.heartbeat_interval == 30.0


def test_surrounding_whitespace_in_variables_is_ignored() -> None:
    assert load_settings({"ENSEMBLE_STRATEGY_ID": " s1\n"}).strategy_id == "s1"


@pytest.mark.parametrize("good", ["a", "A9", "0", "trend_v2.1-eu", "x" * 64, "a.b", "a-", "a_"])
def test_good_strategy_ids(good: str) -> None:
    assert load_settings({}, strategy_id=good).strategy_id == good


def _assert_names(exc: ConfigError, source: str, value: object, *rule_words: str) -> None:
    text = str(exc)
    assert exc.field == source and exc.source == source
    assert source in text
    assert repr(value) in text
    for word in rule_words:
        assert word in text, f"{word!r} missing from {text!r}"
    assert isinstance(exc, ValueError)


BAD_STRATEGY_IDS = ["../x", "a/b", "..", "", "x" * 65, "-a", ".a", "a..b", "a b", "a\\b",
                    "/abs", "é", "a\x00"]


@pytest.mark.parametrize("bad", BAD_STRATEGY_IDS)
def test_bad_strategy_id_argument(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, strategy_id=bad)
    _assert_names(info.value, "strategy_id", bad, "file-name token", "[A-Za-z0-9]")


@pytest.mark.parametrize("bad", [b for b in BAD_STRATEGY_IDS if b.strip() == b and b])
@pytest.mark.parametrize("var", ["ENSEMBLE_STRATEGY_ID", "STRATEGY_ID"])
def test_bad_strategy_id_variable(var: str, bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({var: bad})
    _assert_names(info.value, var, bad, "file-name token")


@pytest.mark.parametrize("bad", [1, 1.5, ["a"], b"abc"])
def test_strategy_id_must_be_a_string(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, strategy_id=bad)
    assert info.value.field == "strategy_id"


@pytest.mark.parametrize("bad", ["1", "1.1.1", "v1.1", "01.1", "1.01", "1.", ".1", "a.b",
                                 "1,1", "", "1.1 "])
def test_bad_schema_version_argument(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, schema_version=bad)
    _assert_names(info.value, "schema_version", bad, "MAJOR.MINOR")


@pytest.mark.parametrize("var", ["ENSEMBLE_SCHEMA_VERSION", "SCHEMA_VERSION"])
def test_bad_schema_version_variable(var: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({var: "1.2.3"})
    _assert_names(info.value, var, "1.2.3", "MAJOR.MINOR")


@pytest.mark.parametrize("good", ["0.1", "1.0", "10.22", "123456.0"])
def test_good_schema_versions(good: str) -> None:
    assert load_settings({}, schema_version=good).schema_version == good


@pytest.mark.parametrize("bad", [0, -1, -0.5, "abc", math.inf, math.nan, "inf", "nan", "0",
                                 "-3", True, "1e999"])
def test_bad_heartbeat_interval_argument(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, heartbeat_interval=bad)
    exc = info.value
    assert exc.field == "heartbeat_interval"
    assert "heartbeat_interval" in str(exc) and "> 0" in str(exc)
    assert repr(bad) in str(exc)


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "inf", "nan", "30s"])
def test_bad_heartbeat_interval_variable(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"ENSEMBLE_HEARTBEAT_INTERVAL": bad})
    _assert_names(info.value, "ENSEMBLE_HEARTBEAT_INTERVAL", bad, "seconds > 0")


def test_heartbeat_interval_accepts_fractions_and_numbers() -> None:
    # issue 13 bounds the variable to 0.5 s .. 1 day (0.25 was accepted before)
    assert load_settings({"ENSEMBLE_HEARTBEAT_INTERVAL": "0.75"}).heartbeat_interval == 0.75
    assert load_settings({}, heartbeat_interval=5).heartbeat_interval == 5.0


@pytest.mark.parametrize("bad", ["1e15", "1e-9", "0.25", "86401", "0.49"])
def test_heartbeat_interval_variable_is_bounded(bad: str) -> None:
    """1e15 used to kill the heartbeat reader's thread (timer overflow), 1e-9 burnt a core."""
    with pytest.raises(ConfigError) as info:
        load_settings({"ENSEMBLE_HEARTBEAT_INTERVAL": bad})
    _assert_names(info.value, "ENSEMBLE_HEARTBEAT_INTERVAL", bad, "from 0.5 to 86400")


@pytest.mark.parametrize("good", ["0.5", "86400", "30"])
def test_heartbeat_interval_variable_range_is_inclusive(good: str) -> None:
    assert load_settings({"ENSEMBLE_HEARTBEAT_INTERVAL": good}).heartbeat_interval == float(good)


@pytest.mark.parametrize("bad", [1e15, 1e-9, 86_401])
def test_heartbeat_interval_argument_is_bounded(bad: float) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, heartbeat_interval=bad)
    _assert_names(info.value, "heartbeat_interval", bad, "to 86400")
    assert load_settings({}, heartbeat_interval=0.01).heartbeat_interval == 0.01  # tests


@pytest.mark.parametrize("name", ["strict", "fresh"])
def test_strict_and_fresh_flags(name: str) -> None:
    var = f"ENSEMBLE_{name.upper()}"
    assert getattr(load_settings({}), name) is False
    assert getattr(load_settings({var: "1"}), name) is True
    assert getattr(load_settings({var: "true"}, **{name: False}), name) is False
    with pytest.raises(ConfigError) as info:
        load_settings({var: "sometimes"})
    _assert_names(info.value, var, "sometimes", "true or false")


@pytest.mark.parametrize("bad", ["Paper", "LIVE", "prod", "staging", "papers"])
def test_bad_environment(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, environment=bad)
    _assert_names(info.value, "environment", bad, "'paper' or 'live'")
    with pytest.raises(ConfigError) as info:
        load_settings({"ENSEMBLE_ENVIRONMENT": bad})
    _assert_names(info.value, "ENSEMBLE_ENVIRONMENT", bad, "'paper' or 'live'")


def test_bad_sdk_disabled_flag() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"OTEL_SDK_DISABLED": "maybe"})
    _assert_names(info.value, "OTEL_SDK_DISABLED", "maybe", "true or false")


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("TRUE", True), ("1", True),
                                                ("false", False), ("", False)])
def test_sdk_disabled_flag(raw: str, expected: bool) -> None:
    assert load_settings({"OTEL_SDK_DISABLED": raw}).disabled is expected


def test_bad_metric_export_interval_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"OTEL_METRIC_EXPORT_INTERVAL": "-5"})
    _assert_names(info.value, "OTEL_METRIC_EXPORT_INTERVAL", "-5", "milliseconds > 0")


def test_metric_export_interval_is_bounded() -> None:
    """A timer of 1e15 s would kill the OTLP reader's thread, as the heartbeat's did."""
    with pytest.raises(ConfigError) as info:
        load_settings({"OTEL_METRIC_EXPORT_INTERVAL": "1e18"})
    _assert_names(info.value, "OTEL_METRIC_EXPORT_INTERVAL", "1e18", "86400000")
    with pytest.raises(ConfigError) as info:
        load_settings({}, metric_export_interval=1e15)
    _assert_names(info.value, "metric_export_interval", 1e15, "86400")
    assert load_settings({"OTEL_METRIC_EXPORT_INTERVAL": "86400000"}).metric_export_interval \
        == 86_400.0


def test_metric_export_interval_is_milliseconds() -> None:
    assert load_settings({"OTEL_METRIC_EXPORT_INTERVAL": "1500"}).metric_export_interval == 1.5


def test_bad_otlp_endpoint_argument() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, otlp_endpoint="localhost:4317")
    _assert_names(info.value, "otlp_endpoint", "localhost:4317", "http://")


def test_unknown_argument_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, stratgy_id="x")
    assert info.value.field == "stratgy_id" and "unknown setting" in str(info.value)


@pytest.mark.parametrize(
    ("env", "metrics", "logs"),
    [
        ({}, False, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, True, True),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4318/v1/metrics"},
         True, False),
        ({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://127.0.0.1:4318/v1/logs"}, False, True),
        ({"OTEL_METRICS_EXPORTER": "otlp"}, True, False),
        ({"OTEL_LOGS_EXPORTER": "console,otlp"}, False, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
          "OTEL_METRICS_EXPORTER": "none"}, False, True),
    ],
)
def test_otlp_only_when_configured(env: dict[str, str], metrics: bool, logs: bool) -> None:
    s = load_settings(env)
    assert (s.otlp_metrics, s.otlp_logs) == (metrics, logs)


def test_endpoint_argument_turns_otlp_on() -> None:
    s = load_settings({}, otlp_endpoint="http://127.0.0.1:4317")
    assert s.otlp_metrics and s.otlp_logs


def test_settings_and_registry_patterns_agree() -> None:
    import re

    samples = ["a", "x" * 64, "x" * 65, "..", "a..b", "-a", ".a", "a/b", "ok.v1-2_3", "1.1",
               "01.1", "1.1.1", "0.0", "1234567.1"]
    strategy = re.compile(STRATEGY_ID_PATTERN)
    schema = re.compile(SCHEMA_VERSION_PATTERN)
    for sample in samples:
        ours = bool(STRATEGY_ID_RE.fullmatch(sample)) and ".." not in sample
        assert ours == bool(strategy.match(sample)), sample
        assert bool(SCHEMA_VERSION_RE.fullmatch(sample)) == bool(schema.match(sample)), sample
