"""Zero-code: ``opentelemetry-instrument python bot.py`` with a bot that never imports us.

Each test runs a small bot script in a subprocess under the real ``opentelemetry-instrument``
(the ``ensemble`` distro chosen with OTEL_PYTHON_DISTRO, beside the contrib distro that the
dev extra installs) and checks what landed on disk and what an OTLP/HTTP receiver on
127.0.0.1 decoded.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from collector_support import require_binary, wait_until
from otlp_receiver import OtlpReceiver

from ensemble_otel.contract.registry import (
    EQUITY,
    HEARTBEAT_TIMESTAMP,
    SCHEMA_VERSION_ATTRIBUTE,
    STRATEGY_ID_ATTRIBUTE,
)

pytestmark = pytest.mark.integration

_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "PAPER_TRADING_ROOT", "PYTHONPATH",
         "STRATEGY_ID", "SCHEMA_VERSION")


def instrument() -> str:
    return require_binary(Path(sys.executable).with_name("opentelemetry-instrument"),
                          "make venv (opentelemetry-instrumentation is in the dev extra)")


def bot_env(root: Path, strategy: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENSEMBLE_", "OTEL_")) and k not in _DROP}
    env.update({
        "OTEL_PYTHON_DISTRO": "ensemble",  # the contrib distro is installed too
        "PAPER_TRADING_ROOT": str(root),
        "ENSEMBLE_STRATEGY_ID": strategy,
        "ENSEMBLE_HEARTBEAT_INTERVAL": "0.5",
    })
    env.update(extra or {})
    return env


def otlp_env(rx: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "zero-code-bot",
    }


def run_bot(tmp_path: Path, program: str, env: dict[str, str], *args: str,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "bot.py"
    script.write_text(textwrap.dedent(program))
    return subprocess.run([instrument(), sys.executable, str(script), *args], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def last_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture
def rx() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


# A bot that knows nothing about ensemble-otel: it only looks at the heartbeat file.
PLAIN_BOT = """
    import json, os, sys, time
    hb = os.path.join(os.environ["PAPER_TRADING_ROOT"], "logs", "heartbeat",
                      os.environ["ENSEMBLE_STRATEGY_ID"] + ".json")
    first = json.load(open(hb)) if os.path.exists(hb) else None  # the bot's first line
    time.sleep(float(sys.argv[1]))                               # trading
    later = json.load(open(hb)) if os.path.exists(hb) else None
    print(json.dumps({"pid": os.getpid(), "first": first, "later": later}))
"""


def test_plain_bot_gets_heartbeat_and_strategy_resource(tmp_path: Path, rx: OtlpReceiver) -> None:
    root = tmp_path / "out"
    done = run_bot(tmp_path, PLAIN_BOT, bot_env(root, "zc-plain", otlp_env(rx)), "1.5")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "ensemble-otel" not in done.stderr, done.stderr
    out = last_json(done.stdout)
    first, later = out["first"], out["later"]
    # the start-up heartbeat was on disk before the bot's first line ran
    assert first is not None, "no heartbeat file when the bot started"
    assert first["pid"] == out["pid"] and first["strategy_id"] == "zc-plain"
    assert first["state"] in ("starting", "running")
    # background beats while the bot traded
    assert later["seq"] > first["seq"] and later["unix"] > first["unix"]
    assert later["state"] == "starting"  # configured, no bar yet (the first bar says running)
    final = json.loads((root / "logs" / "heartbeat" / "zc-plain.json").read_text())
    assert final["state"] == "stopped" and final["pid"] == out["pid"]

    points = wait_until(lambda: [p for p in rx.points() if p.name == HEARTBEAT_TIMESTAMP],
                        timeout=10, message="no heartbeat metric received over OTLP")
    for p in rx.points():  # every exported point carries the strategy resource
        assert p.resource[STRATEGY_ID_ATTRIBUTE] == "zc-plain"
        assert p.resource[SCHEMA_VERSION_ATTRIBUTE] == "1.1"
        assert p.resource["service.instance.id"] == first["service_instance_id"]
        assert p.resource["service.name"] == "zero-code-bot"
        assert p.resource["telemetry.distro.name"] == "ensemble-otel"
    assert any(abs(p.value - later["unix"]) < 5 for p in points)


CONFIGURE_BOT = """
    import json, sys, time
    import ensemble_otel
    from opentelemetry import metrics, trace
    from ensemble_otel.heartbeat import HeartbeatFileExporter

    before = ensemble_otel.get_telemetry()       # configured by opentelemetry-instrument
    t = ensemble_otel.configure()                # the bot's own call: the same object
    mp = t.meter_provider  # the readers it holds (an SDK-internal attribute, by version)
    readers = list(getattr(mp, "_all_metric_readers", None) or mp._sdk_config.metric_readers)
    report = {
        "same": before is not None and t is before,
        "readers": len(readers),
        "heartbeat_readers": sum(isinstance(getattr(r, "_exporter", None), HeartbeatFileExporter)
                                 for r in readers),
        "global_meter_provider": metrics.get_meter_provider() is t.meter_provider,
        "tracer_resource": dict(trace.get_tracer_provider().resource.attributes),
        "instance_id": t.resource.attributes["service.instance.id"],
    }
    with trace.get_tracer("bot").start_as_current_span("bar-loop"):
        for i in range(31):  # bar time: 10-minute bars over five hours
            t.health.maybe_emit(1_700_000_000 + i * 600, equity=1000.0 + i)
    t.events.emit("order_filled", symbol="EURUSD", qty=1000)
    time.sleep(1.0)
    print(json.dumps(report))
"""


def test_configure_inside_the_bot_returns_the_same_telemetry(
    tmp_path: Path, rx: OtlpReceiver
) -> None:
    root = tmp_path / "out"
    done = run_bot(tmp_path, CONFIGURE_BOT, bot_env(root, "zc-conf", otlp_env(rx)))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    out = last_json(done.stdout)
    assert out["same"] is True
    # heartbeat mirror + snapshot collection + OTLP: one of each, nothing built twice
    assert out["readers"] == 3 and out["heartbeat_readers"] == 1
    assert out["global_meter_provider"] is True
    assert out["tracer_resource"][STRATEGY_ID_ATTRIBUTE] == "zc-conf"

    wait_until(lambda: any(p.name == EQUITY and p.value == 1030.0 for p in rx.points()),
               timeout=10, message="the bot's equity never reached the receiver")
    points = rx.points()
    # one producer: a single service.instance.id, and no data point twice in one export
    assert {p.resource["service.instance.id"] for p in points} == {out["instance_id"]}
    per_request = Counter((p.request, p.name, tuple(sorted(p.attributes.items())))
                          for p in points)
    assert max(per_request.values()) == 1, [k for k, n in per_request.items() if n > 1]
    logs = wait_until(lambda: [r for r in rx.logs() if r.event_name == "order_filled"],
                      timeout=10, message="the event never reached the receiver")
    assert logs[0].resource[STRATEGY_ID_ATTRIBUTE] == "zc-conf"
    spans = wait_until(lambda: [s for s in rx.spans() if s.name == "bar-loop"], timeout=10,
                       message="the span never reached the receiver")
    assert spans[0].resource[STRATEGY_ID_ATTRIBUTE] == "zc-conf"
    assert spans[0].resource["service.instance.id"] == out["instance_id"]
    hourly = sorted((root / "logs" / "1h" / "health_snapshot" / "zc-conf").glob("*.jsonl"))
    assert hourly, "no hourly health snapshot written"


BAD_SETTINGS_BOT = """
    import json, sys, time
    trades = 0
    for _ in range(3):          # the bot trades whatever its telemetry says
        trades += 1
        time.sleep(0.2)
    result = {"trades": trades}
    if sys.argv[1:] == ["configure"]:
        import ensemble_otel
        try:
            ensemble_otel.configure()
            result["configure"] = "configured"
        except ensemble_otel.ConfigError as exc:
            result["configure"] = str(exc)
    print(json.dumps(result))
"""


@pytest.mark.parametrize(
    ("var", "value", "rule"),
    [("ENSEMBLE_STRATEGY_ID", "bad/id", "safe file-name token"),
     ("ENSEMBLE_HEARTBEAT_INTERVAL", "-1", "seconds > 0"),
     ("ENSEMBLE_SCHEMA_VERSION", "one", "MAJOR.MINOR")],
)
def test_bad_settings_leave_the_bot_running(
    tmp_path: Path, rx: OtlpReceiver, var: str, value: str, rule: str
) -> None:
    root = tmp_path / "out"
    env = bot_env(root, "zc-bad", {**otlp_env(rx), var: value})
    done = run_bot(tmp_path, BAD_SETTINGS_BOT, env, "configure")
    assert done.returncode == 0, done.stderr
    out = last_json(done.stdout)
    assert out["trades"] == 3
    errors = [line for line in done.stderr.splitlines() if line.startswith("ensemble-otel")]
    assert len(errors) == 1, done.stderr
    assert f"{var}={value!r}" in errors[0] and rule in errors[0]
    assert "the bot runs on" in errors[0]
    # the bot's own configure() raises the same error
    assert out["configure"] != "configured" and out["configure"] in errors[0]
    # nothing from ensemble-otel: no files, nothing exported
    assert not root.exists()
    time.sleep(0.5)
    assert rx.metric_requests() == [] and rx.logs() == [] and rx.spans() == []


MULTIPROCESSING_BOT = """
    import json, multiprocessing as mp, os, sys

    def work(queue):
        import ensemble_otel
        queue.put({"pid": os.getpid(), "configured": ensemble_otel.get_telemetry() is not None})

    if __name__ == "__main__":
        import ensemble_otel
        parent = ensemble_otel.get_telemetry()
        children = {}
        for method in ("spawn", "forkserver", "fork"):
            ctx = mp.get_context(method)
            queue = ctx.Queue()
            proc = ctx.Process(target=work, args=(queue,))
            proc.start()
            children[method] = queue.get(timeout=60)
            proc.join(60)
            children[method]["exitcode"] = proc.exitcode
        hb = parent.settings.heartbeat_path
        print(json.dumps({"pid": os.getpid(), "children": children,
                          "beat": json.loads(hb.read_text())}))
"""


def test_multiprocessing_children_are_not_configured_automatically(tmp_path: Path) -> None:
    """spawn/forkserver children (and the resource tracker) run the sitecustomize again."""
    root = tmp_path / "out"
    done = run_bot(tmp_path, MULTIPROCESSING_BOT, bot_env(root, "zc-mp"))
    assert done.returncode == 0, done.stderr
    # no child fought for the parent's lock or reported anything
    assert "ensemble-otel" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    out = last_json(done.stdout)
    for method, child in out["children"].items():
        assert child["configured"] is False, method
        assert child["pid"] != out["pid"] and child["exitcode"] == 0
    assert out["beat"]["pid"] == out["pid"]
    assert sorted(p.name for p in (root / "logs" / "heartbeat").iterdir()) == ["zc-mp.json"]
    final = json.loads((root / "logs" / "heartbeat" / "zc-mp.json").read_text())
    assert final["pid"] == out["pid"] and final["state"] == "stopped"


SYSTEMD_BOT = """
    import os, socket, time
    def tell(message):
        address = os.environ["NOTIFY_SOCKET"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), "\\0" + address[1:])
    tell("BOT=first-line")
    time.sleep(1.0)
    tell("BOT=last-line")
"""


@contextlib.contextmanager
def systemd_socket() -> Iterator[tuple[str, list[str]]]:
    """An abstract NOTIFY_SOCKET address and the messages it received, read like systemd."""
    address = f"@ensemble-otel-zc-{uuid.uuid4().hex}"
    messages: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + address[1:])
        sock.settimeout(0.2)
        stop = threading.Event()

        def read() -> None:  # keep reading: a datagram queue holds only a few messages
            while not stop.is_set():
                try:
                    messages.append(sock.recv(4096).decode())
                except TimeoutError:
                    continue

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            yield address, messages
        finally:
            time.sleep(0.3)
            stop.set()
            reader.join(5)


def test_systemd_notifications_under_auto_instrumentation(tmp_path: Path) -> None:
    with systemd_socket() as (address, messages):
        env = bot_env(tmp_path / "out", "zc-systemd",
                      {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "5000000"})
        done = run_bot(tmp_path, SYSTEMD_BOT, env)
    assert done.returncode == 0, done.stderr
    assert messages[:2] == ["READY=1", "BOT=first-line"], messages  # ready before the bot runs
    assert messages[-2:] == ["BOT=last-line", "STOPPING=1"], messages
    middle = messages[2:-2]
    assert middle.count("WATCHDOG=1") >= 2 and set(middle) == {"WATCHDOG=1"}, messages


def test_bad_settings_still_let_systemd_start_the_bot(tmp_path: Path) -> None:
    """READY=1 with the error as STATUS=, and no watchdog pings: there are no heartbeats."""
    with systemd_socket() as (address, messages):
        env = bot_env(tmp_path / "out", "zc-systemd",
                      {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "5000000",
                       "ENSEMBLE_ENVIRONMENT": "prod"})
        done = run_bot(tmp_path, SYSTEMD_BOT, env)
    assert done.returncode == 0, done.stderr
    assert len(messages) == 3, messages
    ready, first, last = messages
    lines = ready.split("\n")
    assert lines[0] == "READY=1"
    assert lines[1].startswith("STATUS=ensemble-otel is off: ENSEMBLE_ENVIRONMENT='prod'")
    assert [first, last] == ["BOT=first-line", "BOT=last-line"]
    assert not (tmp_path / "out").exists()


def test_disabled_sdk_still_lets_systemd_start_the_bot(tmp_path: Path) -> None:
    with systemd_socket() as (address, messages):
        env = bot_env(tmp_path / "out", "zc-systemd",
                      {"NOTIFY_SOCKET": address, "OTEL_SDK_DISABLED": "true"})
        done = run_bot(tmp_path, SYSTEMD_BOT, env)
    assert done.returncode == 0, done.stderr
    assert "ensemble-otel" not in done.stderr  # switched off on purpose: not an error
    assert messages == ["READY=1\nSTATUS=ensemble-otel is disabled (OTEL_SDK_DISABLED=true)",
                        "BOT=first-line", "BOT=last-line"]
    assert not (tmp_path / "out").exists()
