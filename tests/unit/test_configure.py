"""configure(): one call, idempotent, flushes at shutdown and at interpreter exit."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest

import ensemble_otel
from ensemble_otel import ConfigError, Telemetry


def test_same_settings_return_the_same_object(root: Path) -> None:
    first = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    assert isinstance(first, Telemetry)
    assert ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600) is first
    assert ensemble_otel.get_telemetry() is first


def test_same_settings_from_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPER_TRADING_ROOT", str(root))
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "s1")
    first = ensemble_otel.configure()
    assert ensemble_otel.configure() is first
    assert ensemble_otel.configure(strategy_id="s1") is first  # argument equal to the env


def test_relative_and_absolute_root_are_the_same(in_tmp_cwd: Path) -> None:
    first = ensemble_otel.configure(root="out", strategy_id="s1")
    assert ensemble_otel.configure(root=in_tmp_cwd / "out", strategy_id="s1") is first


def test_default_root_is_relative_to_the_working_directory(in_tmp_cwd: Path) -> None:
    ensemble_otel.configure(strategy_id="s1")
    assert (in_tmp_cwd / "paper_trading_outputs" / "logs" / "heartbeat" / "s1.json").is_file()


@pytest.mark.parametrize(
    "change",
    [{"strategy_id": "s2"}, {"schema_version": "2.0"}, {"heartbeat_interval": 5},
     {"environment": "live"}, {"root": "elsewhere"}],
)
def test_different_settings_raise(root: Path, change: dict[str, object]) -> None:
    settings: dict[str, object] = {"root": root, "strategy_id": "s1", "heartbeat_interval": 3600}
    first = ensemble_otel.configure(**settings)
    if change.get("root") == "elsewhere":
        change = {"root": root.parent / "elsewhere"}
    with pytest.raises(ConfigError) as info:
        ensemble_otel.configure(**{**settings, **change})
    text = str(info.value)
    assert "already configured" in text and "shutdown()" in text
    assert info.value.field == "configure"
    assert ensemble_otel.get_telemetry() is first  # the running one is untouched


def test_bad_settings_raise_and_configure_nothing(root: Path) -> None:
    with pytest.raises(ConfigError, match="strategy_id"):
        ensemble_otel.configure(root=root, strategy_id="a/b")
    assert ensemble_otel.get_telemetry() is None
    assert not root.exists()


def test_shutdown_then_configure_again(root: Path) -> None:
    first = ensemble_otel.configure(root=root, strategy_id="s1")
    ensemble_otel.shutdown()
    assert first.closed
    second = ensemble_otel.configure(root=root, strategy_id="s2")
    assert second is not first and second.settings.strategy_id == "s2"


def test_shutdown_is_idempotent(root: Path) -> None:
    before = set(threading.enumerate())
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1")
    started = set(threading.enumerate()) - before
    assert started  # the heartbeat reader's thread
    telemetry.shutdown()
    telemetry.shutdown()
    ensemble_otel.shutdown()
    ensemble_otel.shutdown()  # nothing configured: a no-op
    assert not started & set(threading.enumerate())  # gone


def test_no_otlp_exporter_unless_configured(root: Path) -> None:
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1")
    assert isinstance(telemetry, Telemetry)
    assert telemetry._guarded == []
    assert not telemetry.settings.otlp_metrics and not telemetry.settings.otlp_logs
    assert telemetry.logger_provider is None


def test_emit_event_configures_from_the_environment(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPER_TRADING_ROOT", str(root))
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "auto")
    record = ensemble_otel.emit_event("started", version=3)
    assert record["strategy_id"] == "auto"
    files = list((root / "logs" / "events" / "auto").glob("*.jsonl"))
    assert len(files) == 1
    assert orjson.loads(files[0].read_bytes())["version"] == 3


def test_public_api_is_listed() -> None:
    for name in ensemble_otel.__all__:
        assert hasattr(ensemble_otel, name), name
    assert {"configure", "shutdown", "emit_event", "ConfigError", "Telemetry"} <= set(
        ensemble_otel.__all__)


BOT_WITHOUT_SHUTDOWN = textwrap.dedent(
    """
    import sys
    import ensemble_otel
    from opentelemetry import metrics

    telemetry = ensemble_otel.configure(root=sys.argv[1], strategy_id="exiter")
    assert metrics.get_meter_provider() is telemetry.meter_provider
    telemetry.health.maybe_emit(1_700_000_000, equity=100.0, traded_notional=5.0)
    telemetry.events.emit("about_to_exit")
    print("configured", flush=True)
    # no shutdown(): interpreter exit must flush, write 'stopped' and release the lock
    """
)


def test_shutdown_runs_at_interpreter_exit(root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSEMBLE_", "OTEL_"))}
    done = subprocess.run([sys.executable, "-c", BOT_WITHOUT_SHUTDOWN, str(root)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "configured\n"
    beat = orjson.loads((root / "logs" / "heartbeat" / "exiter.json").read_bytes())
    assert beat["state"] == "stopped"
    state = orjson.loads((root / "state" / "health" / "exiter.json").read_bytes())
    assert state["buckets"]["1h"]["bars"] == 1
    assert state["buckets"]["1h"]["notional"] == 5.0
    # the lock was released: this process can take the strategy over
    telemetry = ensemble_otel.configure(root=root, strategy_id="exiter")
    assert telemetry.health.peak == 100.0


def test_nothing_is_written_after_shutdown(root: Path) -> None:
    """The lock is released at shutdown: a late bar or event must not touch the files."""
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1")
    telemetry.health.maybe_emit(1_700_000_000, equity=100.0)
    ensemble_otel.shutdown()
    before = sorted((p, p.stat().st_size) for p in root.rglob("*") if p.is_file())
    assert telemetry.health.maybe_emit(1_700_000_000 + 86_400, equity=100.0) == []
    telemetry.events.emit("late")
    after = sorted((p, p.stat().st_size) for p in root.rglob("*") if p.is_file())
    assert after == before
    refused = telemetry.health.maybe_emit("later", equity=1.0)  # bad input still reported
    assert refused == [] and refused.refused and refused.field == "ts"


def test_a_failed_start_leaves_no_thread_no_beat_and_no_lock(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ensemble_otel import telemetry as telemetry_module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("broken on purpose")

    before = set(threading.enumerate())
    monkeypatch.setattr(telemetry_module, "HealthSnapshotEmitter", broken)
    with pytest.raises(RuntimeError, match="on purpose"):
        ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=0.01,
                                logging_bridge=True)
    assert set(threading.enumerate()) <= before  # no thread left running
    assert not (root / "logs" / "heartbeat" / "s1.json").exists()
    assert ensemble_otel.get_telemetry() is None
    monkeypatch.undo()
    assert isinstance(ensemble_otel.configure(root=root, strategy_id="s1"), Telemetry)


QUIET_EXIT = textwrap.dedent(
    """
    import atexit
    import sys
    import ensemble_otel
    from opentelemetry import _logs, metrics

    root, how = sys.argv[1], sys.argv[2]
    telemetry = ensemble_otel.configure(root=root, strategy_id="exiter")
    telemetry.health.maybe_emit(1_700_000_000, equity=100.0)
    telemetry.events.emit("about_to_exit", n=1)

    def shut_globals():  # what a bot or a framework may do with the global providers
        metrics.get_meter_provider().shutdown()
        _logs.get_logger_provider().shutdown()

    if how == "shutdown":
        ensemble_otel.shutdown()
    elif how == "globals at exit":  # registered last: runs before ensemble-otel's own
        atexit.register(shut_globals)
    elif how == "globals now":
        shut_globals()
    """
)


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint on loopback that takes everything (an empty response body is
    an export response without errors)."""

    paths: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("how", ["exit", "shutdown", "globals at exit", "globals now"])
def test_a_bot_that_configures_and_exits_prints_nothing(root: Path, how: str) -> None:
    """Nothing on stderr at exit, however the providers get shut down (our shutdown at exit,
    an explicit one, or the bot shutting the global providers down itself, before ours):
    the SDK's provider shutdown runs once."""
    _Collector.paths = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSEMBLE_", "OTEL_"))}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
               OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    try:
        done = subprocess.run([sys.executable, "-c", QUIET_EXIT, str(root), how],
                              capture_output=True, text=True, env=env, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    beat = orjson.loads((root / "logs" / "heartbeat" / "exiter.json").read_bytes())
    assert beat["state"] == "stopped"
    assert {"/v1/metrics", "/v1/logs"} <= set(_Collector.paths)  # OTLP was really on


def test_health_snapshot_emitter_made_directly_is_the_configured_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HealthSnapshotEmitter()`` resolves PAPER_TRADING_ROOT and the settings via configure()."""
    from ensemble_otel.health import HealthSnapshotEmitter

    monkeypatch.setenv("PAPER_TRADING_ROOT", str(tmp_path))
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "direct")
    emitter = HealthSnapshotEmitter()
    assert emitter is HealthSnapshotEmitter()
    telemetry = ensemble_otel.get_telemetry()
    assert telemetry is not None and emitter is telemetry.health
    emitter.maybe_emit(3600.0, equity=100.0)
    [record] = emitter.maybe_emit(7200.0, equity=110.0)
    assert record["strategy_id"] == "direct" and record["equity"] == 100.0
    assert (tmp_path / "logs" / "1h" / "health_snapshot" / "direct" / "1970-01-01.jsonl").exists()
    with pytest.raises(ensemble_otel.ConfigError):
        HealthSnapshotEmitter(strategy_id="other")  # configured already, other settings
    ensemble_otel.shutdown()


# -- one configured telemetry, found from anywhere (issue 12 §5) ------------------------------

def test_configure_without_arguments_returns_the_configured_one(root: Path) -> None:
    """Today: ConfigError when the earlier call had arguments (and the env says otherwise)."""
    first = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600,
                                    environment="live")
    assert ensemble_otel.configure() is first


def test_only_the_named_arguments_are_compared(root: Path) -> None:
    first = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    assert ensemble_otel.configure(strategy_id="s1") is first  # root from env would differ


def test_differing_arguments_name_both_values(root: Path) -> None:
    ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    with pytest.raises(ConfigError) as info:
        ensemble_otel.configure(strategy_id="s1", heartbeat_interval=60)
    text = str(info.value)
    assert "heartbeat_interval=60.0" in text and "heartbeat_interval=3600.0" in text
    assert "strategy_id=s1" in text


def test_configure_has_one_typed_keyword_per_setting() -> None:
    import inspect

    from ensemble_otel.settings import Settings

    params = inspect.signature(ensemble_otel.configure).parameters
    assert set(params) == set(Settings.__dataclass_fields__)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is None
               for p in params.values())
    # annotations are strings (postponed evaluation): every one names a real type
    assert all(p.annotation not in (inspect.Parameter.empty, "Any") and "None" in p.annotation
               for p in params.values())
    with pytest.raises(TypeError, match="stratgy_id"):
        ensemble_otel.configure(stratgy_id="x")  # type: ignore[call-arg]


def test_shutdown_takes_a_timeout_in_seconds(root: Path) -> None:
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1")
    ensemble_otel.shutdown(timeout=0.5)
    assert telemetry.closed and ensemble_otel.get_telemetry() is None
    beat = orjson.loads((root / "logs" / "heartbeat" / "s1.json").read_bytes())
    assert beat["state"] == "stopped"


def test_the_first_bar_wakes_the_heartbeat(root: Path) -> None:
    """``starting`` means configured, no bar yet: the first bar has the beat file say
    ``running`` at once, not an interval later (the bar thread itself writes nothing)."""
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    path = root / "logs" / "heartbeat" / "s1.json"
    assert orjson.loads(path.read_bytes())["state"] == "starting"
    time.sleep(0.3)
    assert orjson.loads(path.read_bytes())["state"] == "starting"  # no bar, no change
    telemetry.health.maybe_emit(1_700_000_000, equity=100.0)
    deadline = time.monotonic() + 1.0
    while orjson.loads(path.read_bytes())["state"] != "running":
        assert time.monotonic() < deadline, "no running beat within 1 s of the first bar"
        time.sleep(0.01)
    beat = orjson.loads(path.read_bytes())
    assert beat["seq"] == 1 and beat["interval_s"] == 3600
    seq = beat["seq"]
    telemetry.health.maybe_emit(1_700_000_060, equity=101.0)  # later bars wake nothing
    time.sleep(0.3)
    assert orjson.loads(path.read_bytes())["seq"] == seq


def test_the_bar_thread_writes_no_file_on_the_first_bar(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    writers: list[str] = []
    real = telemetry.heartbeat.write

    def write(unix: float, state: str | None = None) -> bool:
        writers.append(threading.current_thread().name)
        return real(unix, state)

    monkeypatch.setattr(telemetry.heartbeat, "write", write)
    telemetry.health.maybe_emit(1_700_000_000, equity=100.0)
    deadline = time.monotonic() + 1.0
    while not writers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writers and threading.current_thread().name not in writers
