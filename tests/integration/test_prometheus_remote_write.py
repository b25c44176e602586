"""Remote write (collector/backends/prometheus-remote-write.yaml) to a real Prometheus.

Prometheus starts only after the bot has finished: what the agent wrote while it was
down (its write-ahead log, which survives an agent restart) must arrive, sample for
sample, with the data points' own timestamps.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from collector_support import (
    BACKENDS_DIR,
    BotRun,
    Collector,
    Prometheus,
    archived_points,
    wait_until,
)

from ensemble_otel.contract import registry

pytestmark = pytest.mark.integration

STRATEGY = "it-remote-write"
REMOTE_WRITE = BACKENDS_DIR / "prometheus-remote-write.yaml"


def test_remote_write_delivers_what_was_sent_while_prometheus_was_down(
    collector: Callable[..., Collector], prometheus: Callable[..., Prometheus],
    bot: Callable[..., BotRun],
) -> None:
    prom = prometheus(remote_write_receiver=True, start=False)
    agent = collector("config.yaml", REMOTE_WRITE, name="agent",
                      env={"ENSEMBLE_REMOTE_WRITE_URL": prom.remote_write_url})
    bars = 30
    result = bot(agent.otlp_grpc_url, strategy_id=STRATEGY, bars=bars, pause=0.05,
                 export_interval_ms=300).wait()

    def sent() -> dict[int, float]:
        """ensemble.bars points the agent received: timestamp (ms) -> value."""
        return {p.time_unix_nano // 1_000_000: p.value
                for p in archived_points(agent.archive("metrics"))
                if p.metric == registry.BARS}

    wait_until(lambda: bars in sent().values(), timeout=30,
               message="the agent never received the final bar count")
    # The agent crashes while Prometheus is still down: the write-ahead log keeps the data.
    agent.restart(kill=True)
    prom.start()

    series = registry.METRICS_BY_NAME[registry.BARS].prometheus
    query = f'{series}{{ensemble_strategy_id="{STRATEGY}"}}[1h]'

    def arrived() -> dict[int, float]:
        out: dict[int, float] = {}
        for item in prom.promql(query):
            for ts, value in item["values"]:
                out[round(float(ts) * 1000)] = float(value)
        return out

    expected = sent()
    wait_until(lambda: arrived() == expected, timeout=90,
               message=lambda: f"sent {len(expected)} samples, arrived {len(arrived())}: "
                               f"missing {sorted(set(expected) - set(arrived()))[:5]}")
    assert max(expected.values()) == bars

    # The other series came along, labelled with the strategy and the right final values.
    equity = registry.METRICS_BY_NAME[registry.EQUITY].prometheus
    (item,) = prom.promql(f'last_over_time({equity}{{ensemble_strategy_id="{STRATEGY}"}}[1h])')
    assert float(item["value"][1]) == result["equity"]
    assert item["metric"]["deployment_environment_name"] == "paper"
