"""The collector crashes mid-run and comes back: the bot never notices.

The bot stops at two gates: at bar 16 the agent is killed (SIGKILL, a crash), bars 16-31
run with no collector, at bar 32 the agent is started again. Per-bar latency in the
outage is compared with the bars before it; the bot's own JSONL files must be complete;
data produced after the restart must reach the archive.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import pytest
from collector_support import (
    BotRun,
    Collector,
    archived_logs,
    archived_points,
    read_jsonl,
    wait_until,
)

from ensemble_otel.contract import registry

pytestmark = pytest.mark.integration

STRATEGY = "it-restart"
BARS, CRASH_AT, BACK_AT = 48, 16, 32


def test_collector_crash_and_restart_mid_run(
    collector: Callable[..., Collector], bot: Callable[..., BotRun], tmp_path: Path,
) -> None:
    agent = collector(name="agent")
    go_crash, go_back = tmp_path / "go-crash", tmp_path / "go-back"
    run = bot(agent.otlp_grpc_url, strategy_id=STRATEGY, bars=BARS, pause=0.08,
              event_every=2, export_interval_ms=300,
              gates={CRASH_AT: go_crash, BACK_AT: go_back})

    run.wait_at_gate(CRASH_AT)
    wait_until(lambda: any(p.metric == registry.BARS and p.value == CRASH_AT
                           for p in archived_points(agent.archive("metrics"))),
               timeout=30, message="bars before the crash never reached the archive")
    agent.kill()
    go_crash.touch()
    run.wait_at_gate(BACK_AT)  # bars 16..31 ran with no collector listening
    agent.start()
    go_back.touch()
    result = run.wait()

    # The bot never blocked: outage bars cost what the bars before them did.
    lat = result["latencies"]
    before, outage, after = lat[:CRASH_AT], lat[CRASH_AT:BACK_AT], lat[BACK_AT:]
    walls = [p["wall"] for p in result["produced"]]
    outage_seconds = walls[BACK_AT - 1] - walls[CRASH_AT]
    assert statistics.median(outage) < 10 * statistics.median(before), (before, outage)
    assert max(outage) < 0.25 * outage_seconds, (max(outage), outage_seconds)
    assert statistics.median(after) < 10 * statistics.median(before), (before, after)

    # The bot's files are complete: every event and every closed hour, each line whole.
    root = run.root
    events = [r for f in sorted((root / "logs/events" / STRATEGY).glob("*.jsonl"))
              for r in read_jsonl(f) if r["event"] == "bar_done"]
    assert [r["seq"] for r in events] == list(range(result["events"]))
    hourly = [r for f in sorted((root / "logs/1h/health_snapshot" / STRATEGY).glob("*.jsonl"))
              for r in read_jsonl(f)]
    assert len(hourly) == result["records"]["1h"] == BARS - 1
    assert len({r["ts"] for r in hourly}) == len(hourly)

    # Data produced after the restart arrived: the final state and the later events.
    def final_state_archived() -> bool:
        points = archived_points(agent.archive("metrics"))
        return any(p.metric == registry.BARS and p.value == BARS for p in points)

    wait_until(final_state_archived, timeout=60,
               message="the final bar count never reached the restarted collector")
    points = [p for p in archived_points(agent.archive("metrics"))
              if p.metric == registry.EQUITY]
    assert points[-1].value == result["equity"]
    post_restart_seqs = {r["seq"] for r in events if r["bar"] >= BACK_AT}
    wait_until(
        lambda: post_restart_seqs <= {
            r.body["seq"] for r in archived_logs(agent.archive("logs"))
            if r.event == "bar_done"},
        timeout=30, message="events emitted after the restart never reached the archive")
    # Every line of the archive is whole JSON: a crash cuts no line the restart continues.
    agent.stop()
    for signal_name in ("metrics", "logs"):
        assert agent.archive(signal_name)
