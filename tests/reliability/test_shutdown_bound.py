"""Shutdown is bounded by its timeout even when the collector never answers.

The SDK's log provider takes no timeout and its batch processor waits up to 30 s per
export; ``Telemetry.shutdown(timeout_millis)`` must still return in about that time, with
the files complete and the heartbeat saying ``stopped``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from otlp_endpoints import BlackHole, Endpoint, Refusing
from outage_support import PROTOCOLS
from shutdown_support import run_stop

from ensemble_otel._process import DEFAULT_SHUTDOWN_TIMEOUT

BOT = textwrap.dedent("""
    import sys, time
    import ensemble_otel
    tel = ensemble_otel.configure(otlp_endpoint=sys.argv[1], strategy_id="bounded")
    for i in range(5000):  # more than one batch of log records queued for the dead end
        tel.events.emit("tick", i=i)
    started = time.monotonic()
    tel.shutdown(timeout_millis=2000)
    print(f"shutdown_s={time.monotonic() - started:.3f}")
""")


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A loopback listener that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_shutdown_returns_within_its_timeout_against_a_black_hole(
    black_hole: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "ENSEMBLE_"))}
    env.update(PAPER_TRADING_ROOT=str(tmp_path), OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
               OTEL_EXPORTER_OTLP_TIMEOUT="30000", OTEL_METRIC_EXPORT_INTERVAL="60000")
    out = subprocess.run([sys.executable, "-c", BOT, black_hole], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seconds = float(out.stdout.split("shutdown_s=")[1])
    assert seconds < 6.0, f"shutdown took {seconds:.1f}s with a 2 s timeout\n{out.stderr}"
    beat = json.loads((tmp_path / "logs" / "heartbeat" / "bounded.json").read_text())
    assert beat["state"] == "stopped"
    events = list((tmp_path / "logs" / "events" / "bounded").glob("*.jsonl"))
    lines = [json.loads(x) for p in events for x in p.read_text().splitlines()]
    assert len(lines) == 5000


# -- ensemble_otel.shutdown(timeout) and the shutdown at exit, both protocols, both failures --

MARGIN_S = 1.0  # the target is timeout + 0.5 s (bench/shutdown.py); slack for a loaded host


def _endpoint(kind: str) -> Endpoint:
    return BlackHole() if kind == "black-hole" else Refusing()


@pytest.mark.parametrize("mode", ["explicit", "exit"])
@pytest.mark.parametrize("kind", ["black-hole", "refusing"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stop_is_bounded_and_writes_the_files_first(
    tmp_path: Path, protocol: str, kind: str, mode: str
) -> None:
    """``shutdown(timeout=2.0)`` and the default at exit end within the timeout (plus a
    margin) against an endpoint that never answers or refuses, over gRPC and HTTP; the
    ``stopped`` beat, the health state and every event line are on disk before the network
    flush gives up (today a dead endpoint cost 4-8 s at exit)."""
    root = tmp_path / "root"
    root.mkdir()
    with _endpoint(kind) as endpoint:
        stop = run_stop(root, endpoint.url, protocol, mode, timeout=2.0)
    limit = (2.0 if mode == "explicit" else DEFAULT_SHUTDOWN_TIMEOUT) + MARGIN_S
    assert stop.seconds <= limit, f"{mode} stop took {stop.seconds:.2f}s\n{stop.stderr}"
    assert stop.beat.get("state") == "stopped"
    assert stop.state is not None and stop.state["buckets"]["1h"]["bars"] > 0  # type: ignore[index]
    assert stop.events == 5000
    assert stop.stopped_on_disk_after_s is not None
    if kind == "black-hole" and stop.seconds > 1.5:  # the network hung: files came first
        assert stop.stopped_on_disk_after_s < stop.seconds - 0.5, stop
