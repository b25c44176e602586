"""Every JSONL record shipped to a real VictoriaLogs (collector/backends/records.yaml).

The agent tails the records under the root with its file_log receiver (offsets in
file_storage, a persistent sending queue, the synchronous emitter built in). After a
demo run the records of each kind in VictoriaLogs equal the lines on disk, and still do
after each fault, in its own run:

- the collector SIGKILLed twice mid-tail and restarted;
- VictoriaLogs stopped for 30 s mid-run, then started again;
- the bot SIGKILLed mid-run, a torn tail left behind, the bot restarted (the tail is set
  aside into ``.torn``, appends resume, and the partial line is never shipped).

Each run prints records on disk, delivered, lost (must be 0) and duplicated.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from backend_support import BackendFactory, Server, logsql, logsql_count
from collector_support import (
    BACKENDS_DIR,
    REPO_ROOT,
    BotRun,
    Collector,
    hermetic_env,
    wait_until,
)
from records_support import DISTINCT_QUERY, Tally, disk_records, tally

pytestmark = pytest.mark.integration

STRATEGY = "it-records"


def shipping_agent(collector: Callable[..., Collector], vl: Server, roots: Path | str,
                   ) -> Collector:
    """An agent shipping the records under ``roots`` (a root, or a glob of roots)."""
    return collector("config.yaml", BACKENDS_DIR / "victorialogs.yaml",
                     BACKENDS_DIR / "records.yaml", name="agent", env={
                         "ENSEMBLE_VICTORIALOGS_ENDPOINT": f"{vl.url}/insert/opentelemetry",
                         "ENSEMBLE_RECORDS_ROOTS": str(roots),
                     })


def start_demo(root: Path, log: Path, *, bars: int, speed: float | None,
               strategy: str = STRATEGY) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "ensemble_otel.cli", "demo", "--bars", str(bars),
            "--root", str(root), "--strategy", strategy, "--no-report", "--no-validate"]
    if speed is not None:
        argv += ["--speed", str(speed)]
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=hermetic_env(), cwd=root.parent, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_demo(proc: subprocess.Popen[bytes], log: Path) -> None:
    rc = proc.wait(300)
    assert rc == 0, log.read_text(errors="replace")[-3000:]


def wait_delivered(vl: Server, agent: Collector, *roots: Path, timeout: float = 180) -> Tally:
    """Wait until every record on disk is in VictoriaLogs, then a little for stragglers."""
    expected = sum(disk_records(*roots).values())
    assert expected > 0, "no record on disk: nothing would be proven"
    wait_until(lambda: logsql_count(vl, DISTINCT_QUERY.rsplit(" | stats", 1)[0]) >= expected,
               timeout=timeout, interval=1.0,
               message=lambda: f"{expected} records on disk, in VictoriaLogs: "
                               f"{tally(vl, *roots).line('so far')}\n{agent.log_tail()}")
    time.sleep(3)  # a duplicate still in flight lands now
    return tally(vl, *roots)


def documented_queries() -> list[str]:
    """The two LogsQL blocks of docs/backends.md's records section, each on one line."""
    text = (REPO_ROOT / "docs" / "backends.md").read_text()
    section = text.split("**Dedupe key**", 1)[1]
    blocks = [b.split("```", 1)[0] for b in section.split("```\n")[1::2]]
    assert len(blocks) >= 2, blocks
    return [" ".join(line.strip() for line in b.splitlines()) for b in blocks[:2]]


def report(label: str, result: Tally) -> None:
    print(result.line(label))
    assert result.lost == 0, result.line(label)
    assert result.delivered == result.on_disk, result.line(label)


def test_demo_records_all_arrive_once(
    collector: Callable[..., Collector], backends: BackendFactory, tmp_path: Path,
) -> None:
    vl = backends.victorialogs().start()
    # Two roots (two PAPER_TRADING_ROOTs on one host), one glob.
    root, other = tmp_path / "roots" / "a", tmp_path / "roots" / "b"
    root.mkdir(parents=True)
    other.mkdir()
    agent = shipping_agent(collector, vl, f"{tmp_path}/roots/*")
    demos = [start_demo(root, tmp_path / "demo.log", bars=600, speed=None),
             start_demo(other, tmp_path / "demo-b.log", bars=300, speed=None,
                        strategy=f"{STRATEGY}-b")]
    for demo, log in zip(demos, ("demo.log", "demo-b.log"), strict=True):
        wait_demo(demo, tmp_path / log)
    result = wait_delivered(vl, agent, root, other)
    report("demo, two roots, no fault", result)
    assert result.duplicates == 0
    assert all(n > 0 for n in result.on_disk.values()), result.on_disk

    # What one shipped record is: the line as body, its fields as attributes, the kind,
    # the strategy on the resource (one stream per strategy).
    [row] = logsql(vl, f'{{ensemble.strategy.id="{STRATEGY}"}} '
                       'ensemble.record.kind:=health_snapshot_24h | sort by (ts) | limit 1')
    lines = [ln for f in sorted((root / "logs/24h").rglob("*.jsonl"))
             for ln in f.read_text().splitlines()]
    assert row["_msg"] == min(lines)  # the earliest day: ts leads every line
    assert row["strategy_id"] == STRATEGY and row["period"] == "24h"
    assert row["ensemble.strategy.id"] == STRATEGY
    assert row["_stream"] == f'{{ensemble.strategy.id="{STRATEGY}"}}'
    # The LogsQL of docs/backends.md: distinct records per kind, and the duplicates.
    distinct, duplicates = documented_queries()
    per_kind = {r["ensemble.record.kind"]: int(r["records"])
                for r in logsql(vl, distinct.replace("demo-sma-eurusd", STRATEGY))}
    assert per_kind == {k: n for k, n in tally(vl, root).on_disk.items()}, per_kind
    assert logsql(vl, duplicates) == []

    # Heartbeats are replaced, not appended: never shipped.
    assert not logsql(vl, 'log.file.path:~"heartbeat"')


def test_collector_killed_twice_mid_tail(
    collector: Callable[..., Collector], backends: BackendFactory, tmp_path: Path,
) -> None:
    vl = backends.victorialogs().start()
    root = tmp_path / "root"
    root.mkdir()
    agent = shipping_agent(collector, vl, root)
    demo = start_demo(root, tmp_path / "demo.log", bars=1500, speed=400_000)
    for _ in range(2):
        wait_until(lambda: logsql_count(vl, "ensemble.record.kind:*") > 0, timeout=60)
        time.sleep(2.5)
        assert demo.poll() is None, "the demo ended before the kill: not mid-tail"
        agent.restart(kill=True)
    wait_demo(demo, tmp_path / "demo.log")
    report("collector SIGKILLed twice", wait_delivered(vl, agent, root))


def test_victorialogs_down_for_30_seconds(
    collector: Callable[..., Collector], backends: BackendFactory, tmp_path: Path,
) -> None:
    vl = backends.victorialogs().start()
    root = tmp_path / "root"
    root.mkdir()
    agent = shipping_agent(collector, vl, root)
    demo = start_demo(root, tmp_path / "demo.log", bars=2000, speed=150_000)  # 48 s of bars
    wait_until(lambda: logsql_count(vl, "ensemble.record.kind:*") > 0, timeout=60)
    vl.stop()
    down_at = sum(disk_records(root).values())
    time.sleep(30)
    written_while_down = sum(disk_records(root).values()) - down_at
    assert demo.poll() is None, "the demo ended during the outage: not mid-run"
    vl.start()
    wait_demo(demo, tmp_path / "demo.log")
    result = wait_delivered(vl, agent, root)
    report(f"VictoriaLogs down 30 s, {written_while_down} records written meanwhile", result)
    assert written_while_down > 0, "the outage did not overlap the run"


def test_bot_killed_with_a_torn_tail_then_restarted(
    collector: Callable[..., Collector], backends: BackendFactory,
    bot: Callable[..., BotRun], tmp_path: Path,
) -> None:
    vl = backends.victorialogs().start()
    gate = tmp_path / "never"
    first = bot(None, strategy_id=STRATEGY, bars=60, pause=0.02, event_every=1,
                gates={40: gate})
    agent = shipping_agent(collector, vl, first.root)
    first.wait_at_gate(40)
    first.proc.kill()
    first.proc.wait(10)
    # A crash mid-write leaves a partial last line in the newest files.
    torn = b'{"ts":"2024-01-02T16:00:00Z","event":"bar_done","strategy_id":"it-rec'
    newest = [max((first.root / d).rglob("*.jsonl"), key=lambda p: p.stat().st_mtime)
              for d in ("logs/events", "logs/1h")]
    for path in newest:
        with path.open("ab") as handle:
            handle.write(torn)
    time.sleep(2)  # the agent sees the partial lines (and must not ship them)
    second = bot(None, strategy_id=STRATEGY, bars=60, pause=0.01, event_every=1,
                 first_bar=1_704_067_200 + 41 * 3600)
    assert second.root == first.root
    second.wait()
    for path in newest:
        assert path.with_name(path.name + ".torn").read_bytes().rstrip(b"\n") == torn
        assert path.read_bytes().endswith(b"\n")
    result = wait_delivered(vl, agent, first.root)
    report("bot SIGKILLed with torn tails, restarted", result)
    assert not logsql(vl, '"it-rec" -"it-records"'), "a partial line was shipped"


def test_secret_named_fields_never_leave_the_host(
    collector: Callable[..., Collector], backends: BackendFactory, tmp_path: Path,
) -> None:
    """An event a bot wrote with a secret-named field: the shipped record has neither the
    attribute nor the value in its body (the line, masked)."""
    vl = backends.victorialogs().start()
    root = tmp_path / "root"
    events = root / "logs" / "events" / STRATEGY / "2024-01-01.jsonl"
    events.parent.mkdir(parents=True)
    events.write_text(
        '{"ts":"2024-01-01T00:00:00Z","event":"login","strategy_id":"it-records",'
        '"schema_version":"1.1","api_key":"k-1\\"x","Broker.Password":12345,'
        '"symbol":"EURUSD","note":"api_key is not a key here"}\n')
    shipping_agent(collector, vl, root)
    [row] = wait_until(lambda: logsql(vl, "ensemble.record.kind:=event"), timeout=60)
    assert "k-1" not in row["_msg"] and "12345" not in row["_msg"], row["_msg"]
    assert '"api_key":"[redacted]"' in row["_msg"]
    assert '"Broker.Password":"[redacted]"' in row["_msg"]
    assert '"note":"api_key is not a key here"' in row["_msg"]
    assert not {"api_key", "Broker.Password"} & set(row)
    assert row["symbol"] == "EURUSD" and row["event"] == "login"
