"""Collector outage: the bot's bars, files and log stay as they are when OTLP export fails.

A bot (``paced_bot.py``) sends 1000 bars in real time (one every 2 ms, so the export and
heartbeat threads run between them) with an event every 10 bars and, a tenth of the way in,
a burst of 2500 events (more than the OTLP log queue holds, 2048). OTLP metrics and logs go
to a loopback endpoint that refuses connections, black-holes them (accepts, never answers)
or is slow (answers after 1 s, five export intervals), over gRPC and over HTTP/protobuf,
with a 200 ms export interval. The same bot with OTLP off, run just before each kind of
outage, is the baseline. A last case restarts a healthy collector mid-run (its connections
dropped, the port refusing for 0.7 s): export resumes, and nothing but the one warning
reaches stderr (gRPC's own "Got goaway" lines included).

Asserted for each: the bot never waits for the network: median bar within 4x of OTLP off
plus 50 us (a bar that closes nothing takes 5-20 us here, as other load comes and goes),
and no bar, no ``emit()`` above 250 ms (an export blocks for its 1 s timeout: a bar that
waited for one would take far longer). These bounds catch blocking, not slowness. Also:
RSS bounded; every hourly and daily record present and equal to the baseline's, every
event line there and parseable, the heartbeat file valid; at most one export warning per
warning interval (60 s, fixed in ensemble_otel.telemetry: one per run here) and nothing
else on stderr; shutdown returns. The strict 1.2x target is bench/outage_latency.py's.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from otlp_endpoints import BlackHole, Endpoint, Refusing, free_port, slow
from outage_support import PROTOCOLS, Run, otlp_env, run_paced
from reliability_support import STRATEGY, read_lines, records

from ensemble_otel.telemetry import EXPORT_WARNINGS

BOT = {"bars": "1000", "pace": "0.002", "event_every": "10", "burst": "2500", "beat": "1"}
BARS, EVERY, BURST = 1000, 10, 2500
TIMEOUT_S = 1.0  # OTEL_EXPORTER_OTLP_TIMEOUT
SLOW_DELAY_S = 1.0  # the slow endpoint answers after this (the exporter waits 3 s for it)
MEDIAN_RATIO = 4.0
MEDIAN_SLACK_US = 50.0
CEILING_MS = 250.0
RSS_GROWTH_MB = 16.0  # after a quarter of the run; the full log queue is ~2 MB
SHUTDOWN_CEILING_S = 15.0


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Run]:
    """The OTLP-off run for a kind of outage, made before its first case (both protocols'
    cases follow at once: a change in the machine's load between them stays small)."""
    made: dict[str, Run] = {}

    def baseline(kind: str) -> Run:
        if kind not in made:
            root = tmp_path_factory.mktemp("outage") / f"off-{kind}"
            run = run_paced(root, "OTLP off", otlp_env(None), **BOT)
            assert run.returncode == 0, run.stderr[-3000:]
            assert run.stderr.strip() == "", run.stderr[-3000:]
            made[kind] = run
        return made[kind]

    return baseline


def _endpoint(kind: str, protocol: str) -> Endpoint:
    if kind == "refusing":
        return Refusing()
    if kind == "black-hole":
        return BlackHole()
    return slow(protocol, SLOW_DELAY_S)


@pytest.fixture(params=[(k, p) for k in ("refusing", "black-hole", "slow") for p in PROTOCOLS],
                ids=lambda kp: f"{kp[0]}-{kp[1].split('/')[0]}")
def outage(
    request: pytest.FixtureRequest, tmp_path: Path, baselines: Callable[[str], Run]
) -> Iterator[tuple[Run, Endpoint, Run]]:
    kind, protocol = request.param
    baseline = baselines(kind)
    with _endpoint(kind, protocol) as endpoint:
        timeout = 3 * SLOW_DELAY_S if kind == "slow" else TIMEOUT_S
        run = run_paced(tmp_path / "root", f"{kind} {protocol}",
                        otlp_env(endpoint.url, protocol, interval_ms=200, timeout_s=timeout),
                        **BOT)
        yield run, endpoint, baseline


def _events(root: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path in sorted((root / "logs" / "events" / STRATEGY).glob("*.jsonl")):
        out.extend(read_lines(path))
    return out


def test_outage_leaves_the_bot_and_its_files_alone(outage: tuple[Run, Endpoint, Run]) -> None:
    run, endpoint, baseline = outage
    assert run.returncode == 0, run.stderr[-3000:]
    t = run.timings
    assert len(t["quiet"]) + len(t["closing"]) == BARS

    # per-bar latency: comparable to OTLP off; no bar, no emit() waits for the network
    for kind in ("quiet", "closing"):
        limit = MEDIAN_RATIO * baseline.median(kind) + MEDIAN_SLACK_US
        assert run.median(kind) <= limit, (
            f"{run.label}: median {kind} bar {run.median(kind):.1f} us > {limit:.1f} us "
            f"(OTLP off: {baseline.median(kind):.1f} us)")
        assert run.stat(kind, -1) <= CEILING_MS * 1000, (
            f"{run.label}: a {kind} bar took {run.stat(kind, -1) / 1000:.1f} ms")
    assert run.stat("emit", -1) <= CEILING_MS * 1000, (
        f"{run.label}: an emit() took {run.stat('emit', -1) / 1000:.1f} ms")
    burst_ms = t["burst_ns"] / 1e6
    assert burst_ms <= CEILING_MS * BURST / 100, (  # 20 us an event on average, at most
        f"{run.label}: {BURST} events took {burst_ms:.0f} ms: emit() waits for the exporter")

    # memory bounded (the log queue drops what it cannot hold)
    growth = run.rss_growth_mb()
    assert growth <= RSS_GROWTH_MB, f"{run.label}: RSS grew {growth:.1f} MB: {run.rss_mb}"

    # files complete: the same records as OTLP off, every event line there
    for period in ("1h", "24h"):
        assert records(run.root, period) == records(baseline.root, period), period
    assert len(records(run.root, "1h")) == math.floor((BARS - 1) * 600 / 3600)
    events = _events(run.root)
    assert [e["bar"] for e in events if e["event"] == "bar_done"] == list(range(0, BARS, EVERY))
    assert [e["k"] for e in events if e["event"] == "burst"] == list(range(BURST))
    beat = orjson.loads((run.root / "logs" / "heartbeat" / f"{STRATEGY}.json").read_bytes())
    assert beat["state"] == "stopped"
    assert not list(run.root.rglob("*.torn"))

    # one warning per interval, nothing else on stderr
    warnings = run.warnings()
    allowed = math.floor(run.wall_s / EXPORT_WARNINGS.interval) + 1
    assert len(warnings) <= allowed, f"{run.label}: {len(warnings)} warnings: {warnings}"
    other = [line for line in run.stderr.splitlines() if line.strip() and line not in warnings]
    assert other == [], f"{run.label}: unexpected stderr: {other[:20]}"
    if endpoint.kind in ("refusing", "black-hole"):
        assert len(warnings) == 1, f"{run.label}: the failing export was not reported"
        assert "ensemble-otel" in warnings[0] and "unaffected" in warnings[0], warnings[0]
    else:  # slow but answering: the data got there
        assert endpoint.requests["/v1/metrics"] >= 1 and endpoint.requests["/v1/logs"] >= 1, (
            endpoint.requests)

    # shutdown waits for the exporters, within their timeouts
    assert t["shutdown_ms"] <= SHUTDOWN_CEILING_S * 1000, (
        f"{run.label}: shutdown took {t['shutdown_ms'] / 1000:.1f} s")


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.split("/")[0])
def test_collector_restart_mid_run(protocol: str, tmp_path: Path) -> None:
    port = free_port()
    servers: list[Endpoint] = []
    done = threading.Event()

    def collector() -> None:
        # up from before the bot starts, answering in 0.3 s: an export is under way when it
        # stops (gRPC then logs the GOAWAY it gets, in its C core)
        with slow(protocol, 0.3, port) as first:
            servers.append(first)
            time.sleep(1.0)
        time.sleep(0.7)  # down: the port refuses
        with slow(protocol, 0.0, port) as second:  # back until the bot has shut down
            servers.append(second)
            done.wait(120)

    thread = threading.Thread(target=collector, daemon=True)
    thread.start()
    try:
        run = run_paced(tmp_path / "root", f"restart {protocol}",
                        otlp_env(f"http://127.0.0.1:{port}", protocol, timeout_s=TIMEOUT_S),
                        **{**BOT, "bars": "1500"})
    finally:
        done.set()
        thread.join(timeout=30)
    assert run.returncode == 0, run.stderr[-3000:]
    first, second = servers
    assert first.requests["/v1/metrics"] >= 1, "the collector was not up before the restart"
    assert second.requests["/v1/metrics"] >= 1 and second.requests["/v1/logs"] >= 1, (
        f"export did not resume after the restart: {second.requests}")
    for kind in ("quiet", "closing"):
        assert run.stat(kind, -1) <= CEILING_MS * 1000, (kind, run.stat(kind, -1))
    assert run.stat("emit", -1) <= CEILING_MS * 1000
    warnings = run.warnings()
    assert len(warnings) <= 1, warnings
    other = [line for line in run.stderr.splitlines() if line.strip() and line not in warnings]
    assert other == [], f"unexpected stderr: {other[:20]}"
    events = _events(run.root)
    assert [e["bar"] for e in events if e["event"] == "bar_done"] == list(range(0, 1500, EVERY))
    assert len(records(run.root, "1h")) == math.floor((1500 - 1) * 600 / 3600)
