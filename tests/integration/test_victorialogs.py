"""Events to a real VictoriaLogs (collector/backends/victorialogs.yaml).

The same strategy started twice (two processes, two random service.instance.id values)
is one stream, not two; every event the bot wrote to disk arrives.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from backend_support import BackendFactory, logsql, logsql_count
from collector_support import BACKENDS_DIR, BotRun, Collector, read_jsonl, wait_until

pytestmark = pytest.mark.integration

STRATEGY = "it-victorialogs"


def test_one_strategy_is_one_stream_across_process_starts(
    collector: Callable[..., Collector], backends: BackendFactory,
    bot: Callable[..., BotRun],
) -> None:
    vl = backends.victorialogs().start()
    agent = collector("config.yaml", BACKENDS_DIR / "victorialogs.yaml", name="agent", env={
        "ENSEMBLE_VICTORIALOGS_ENDPOINT": f"{vl.url}/insert/opentelemetry"})
    first = bot(agent.otlp_grpc_url, strategy_id=STRATEGY, bars=8, event_every=2).wait()
    second = bot(agent.otlp_grpc_url, strategy_id=STRATEGY, bars=8, event_every=2,
                 first_bar=1_704_067_200 + 8 * 3600).wait()
    sent = first["events"] + second["events"]
    strategy = f'{{ensemble.strategy.id="{STRATEGY}"}}'
    events = f"{strategy} event.name:=bar_done"
    wait_until(lambda: logsql_count(vl, events) == sent, timeout=60,
               message=lambda: f"{logsql_count(vl, events)} of {sent} events\n{agent.log_tail()}")

    # Two processes ...
    instances = logsql(vl, f"{strategy} | uniq by (service.instance.id)")
    assert len(instances) == 2, instances
    # ... one stream: the stream is the strategy, nothing else.
    streams = {row["_stream"] for row in logsql(vl, f"{strategy} | uniq by (_stream)")}
    assert streams == {strategy}

    # The events on disk are the ones delivered (the JSONL file is the durable copy).
    root = agent.workdir.parent / f"bot-{STRATEGY}" / "root"
    on_disk = [r for f in sorted((root / "logs/events").rglob("*.jsonl")) for r in read_jsonl(f)
               if r["event"] == "bar_done"]
    assert len(on_disk) == sent
