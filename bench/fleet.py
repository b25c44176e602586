"""``make fleet``: a fleet of paper bots on one machine, through agents and one gateway.

The set-up: ``--bots`` (default 24) demo bots with distinct strategy ids replay market data
at full speed, split over two "hosts" (two roots, two agents). Each bot exports OTLP to its
host's agent; each agent forwards everything, and ships every JSONL record under its root
(collector/backends/records.yaml), to one gateway over TLS with a bearer token; the gateway
writes to VictoriaMetrics, VictoriaLogs and Prometheus 3 (native OTLP).

Checked (exit 1 when one fails): every strategy's series are in VictoriaMetrics and
Prometheus with that strategy's last equity; no series or record carries another
strategy's id; every record on disk is in VictoriaLogs, none lost.

Printed: records and data points per second through the gateway; gateway and agent CPU
seconds per 1,000 records and per 1,000 data points, and their peak RSS; series per
strategy. docs/scaling.md works out what these mean for larger fleets.

    python bench/fleet.py [--bots 24] [--bars 400] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "integration")]

from backend_support import BackendFactory, logsql  # noqa: E402
from collector_support import (  # noqa: E402
    Collector,
    hermetic_env,
    make_collector,
    make_tls_files,
    wait_until,
)
from records_support import tally  # noqa: E402

from ensemble_otel.contract.registry import METRICS  # noqa: E402

HOSTS = ("host-a", "host-b")
TOKENS: dict[str, str] = {}
EQUITY_RE = re.compile(r"equity\s+[\d,.]+ -> ([\d,]+\.\d\d)")


@dataclass
class Bot:
    strategy: str
    host: str
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def final_equity(self) -> float:
        match = EQUITY_RE.search(self.log.read_text(errors="replace"))
        assert match, f"{self.strategy}: no summary in {self.log}"
        return float(match.group(1).replace(",", ""))


def proc_usage(pid: int) -> tuple[float, int]:
    """(user+system CPU seconds, peak RSS in bytes) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    hwm = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
               .splitlines() if line.startswith("VmHWM:"))
    return ticks / os.sysconf("SC_CLK_TCK"), hwm * 1024


def own_counter(c: Collector, name: str) -> float:
    """Sum of one of the collector's own counters (e.g. otelcol_receiver_accepted_log_records)."""
    total = 0.0
    for line in c.own_metrics().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def agent_token(host: str) -> str:
    """The bearer token of one host's agent (random per run, 32 characters)."""
    return TOKENS.setdefault(host, secrets.token_urlsafe(24))


def start_gateway(work: Path, backends: BackendFactory) -> tuple[Collector, dict[str, object]]:
    vm = backends.victoriametrics().start()
    vl = backends.victorialogs().start()
    prom = backends.prometheus3().start()
    tls = make_tls_files(work / "tls")
    tokens = work / "tokens"
    # One token per line and nothing else (scripts/check-gateway-tokens.sh's format).
    tokens.write_text("".join(f"{agent_token(h)}\n" for h in HOSTS))
    gateway = make_collector(
        work, "gateway.yaml", "backends/victoriametrics.yaml", "backends/victorialogs.yaml",
        "backends/prometheus-otlp.yaml", name="gateway", env={
            "ENSEMBLE_GATEWAY_TLS_CERT_FILE": str(tls.cert),
            "ENSEMBLE_GATEWAY_TLS_KEY_FILE": str(tls.key),
            "ENSEMBLE_GATEWAY_TOKEN_FILE": str(tokens),
            "ENSEMBLE_VICTORIAMETRICS_ENDPOINT": vm.otlp_endpoint,
            "ENSEMBLE_VICTORIALOGS_ENDPOINT": f"{vl.url}/insert/opentelemetry",
            "ENSEMBLE_PROMETHEUS_OTLP_ENDPOINT": prom.otlp_endpoint,
            "ENSEMBLE_STORAGE_FSYNC": "false",
        })
    gateway.start()
    return gateway, {"vm": vm, "vl": vl, "prom": prom, "tls": tls}


def start_agent(work: Path, host: str, gateway: Collector, tls_cert: Path) -> Collector:
    root = work / host / "root"
    root.mkdir(parents=True, exist_ok=True)
    agent = make_collector(
        work / host, "config.yaml", "backends/gateway-forward.yaml", "backends/records.yaml",
        name="agent", env={
            "ENSEMBLE_GATEWAY_ENDPOINT": gateway.otlp_grpc_endpoint,
            "ENSEMBLE_GATEWAY_TOKEN": agent_token(host),
            "ENSEMBLE_GATEWAY_CA_FILE": str(tls_cert),
            "ENSEMBLE_RECORDS_ROOTS": str(root),
            "ENSEMBLE_RECORDS_EXPORTERS": "[otlp_grpc/gateway]",
            "ENSEMBLE_STORAGE_FSYNC": "false",
        })
    agent.start()
    return agent


def start_bot(i: int, host: str, agent: Collector, work: Path, bars: int) -> Bot:
    strategy = f"fleet-{i:03d}"
    root = work / host / "root"
    log = work / host / f"{strategy}.log"
    argv = [sys.executable, "-m", "ensemble_otel.cli", "demo", "--bars", str(bars + 7 * i),
            "--root", str(root), "--strategy", strategy, "--no-report", "--no-validate",
            "--otlp-endpoint", agent.otlp_grpc_url]
    env = hermetic_env({"OTEL_METRIC_EXPORT_INTERVAL": "250"})
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    return Bot(strategy, host, root, proc, log)


def check_metrics(store: object, bots: list[Bot], label: str) -> list[str]:
    """Problems: a strategy without its last equity, or an instance with two strategies."""
    problems: list[str] = []
    want = {b.strategy: b.final_equity() for b in bots}

    def equities() -> dict[str, float]:
        rows = store.promql('max by (ensemble_strategy_id) '  # type: ignore[attr-defined]
                            '(last_over_time(ensemble_equity{ensemble_strategy_id=~"fleet-.*"}[1h]))')
        return {r["metric"]["ensemble_strategy_id"]: float(r["value"][1]) for r in rows}

    try:
        wait_until(lambda: all(round(equities().get(s, -1), 2) == v for s, v in want.items()),
                   timeout=120, interval=1.0)
    except AssertionError:
        got = equities()
        problems += [f"{label}: {s} equity {got.get(s)} != {v}" for s, v in want.items()
                     if round(got.get(s, -1), 2) != v]
    # Every series the registry names, for every strategy.
    names = "|".join(m.prometheus for m in METRICS)
    rows = store.promql('count by (ensemble_strategy_id) (count by (ensemble_strategy_id, '  # type: ignore[attr-defined]
                        f'__name__) ({{__name__=~"{names}", ensemble_strategy_id=~"fleet-.*"}}))')
    names_per = {r["metric"]["ensemble_strategy_id"]: int(r["value"][1]) for r in rows}
    problems += [f"{label}: {s} has {names_per.get(s, 0)} of {len(METRICS)} series names"
                 for s in want if names_per.get(s, 0) != len(METRICS)]
    by = "service_instance_id" if label == "VictoriaMetrics" else "instance"
    rows = store.promql(f'count by ({by}) (count by ({by}, ensemble_strategy_id) '  # type: ignore[attr-defined]
                        f'({{ensemble_strategy_id=~"fleet-.*"}})) > 1')
    problems += [f"{label}: {by} {r['metric']} carries two strategy ids" for r in rows]
    return problems


def run(work: Path, n_bots: int, bars: int) -> int:
    backends = BackendFactory(work)
    collectors: list[Collector] = []
    try:
        gateway, stores = start_gateway(work, backends)
        collectors.append(gateway)
        agents = {h: start_agent(work, h, gateway, stores["tls"].cert)  # type: ignore[attr-defined]
                  for h in HOSTS}
        collectors += agents.values()
        started = time.monotonic()
        bots = [start_bot(i, HOSTS[i % 2], agents[HOSTS[i % 2]], work, bars)
                for i in range(n_bots)]
        for b in bots:
            rc = b.proc.wait(900)
            assert rc == 0, f"{b.strategy} exited {rc}: {b.log.read_text()[-2000:]}"
        roots = [work / h / "root" for h in HOSTS]
        vl = stores["vl"]
        expected = sum(tally(vl, *roots).on_disk.values())  # type: ignore[arg-type]
        wait_until(lambda: sum(tally(vl, *roots).delivered.values()) >= expected,  # type: ignore[arg-type]
                   timeout=300, interval=2.0, message="records still missing in VictoriaLogs")
        elapsed = time.monotonic() - started
        problems = check_metrics(stores["vm"], bots, "VictoriaMetrics")
        problems += check_metrics(stores["prom"], bots, "Prometheus")
        records = tally(vl, *roots)  # type: ignore[arg-type]
        if records.lost:
            problems.append(f"records lost: {records.lost}")
        foreign = logsql(vl, 'ensemble.record.kind:* | filter strategy_id:!"" '  # type: ignore[arg-type]
                         '| format "<strategy_id>|<ensemble.strategy.id>" as pair '
                         '| uniq by (pair)')
        problems += [f"record with mixed ids: {r['pair']}" for r in foreign
                     if len(set(r["pair"].split("|"))) != 1]
        print_table(gateway, agents, stores, bots, records, elapsed)
        for p in problems:
            print("FAIL:", p)
        print("fleet: OK" if not problems else f"fleet: {len(problems)} problem(s)")
        return 0 if not problems else 1
    finally:
        for c in collectors:
            c.stop()
        backends.stop_all()


def print_table(gateway: Collector, agents: dict[str, Collector], stores: dict[str, object],
                bots: list[Bot], records: object, elapsed: float) -> None:
    logs_in = own_counter(gateway, "otelcol_receiver_accepted_log_records")
    points_in = own_counter(gateway, "otelcol_receiver_accepted_metric_points")
    series = stores["vm"].promql(  # type: ignore[attr-defined]
        'count by (ensemble_strategy_id) ({ensemble_strategy_id=~"fleet-.*"})')
    per_strategy = sorted(int(r["value"][1]) for r in series)
    print(f"\nfleet: {len(bots)} bots on {len(agents)} hosts, one gateway (TLS + token) -> "
          f"VictoriaMetrics, VictoriaLogs, Prometheus 3; {elapsed:.1f} s wall")
    print(f"records on disk {sum(records.on_disk.values())}, delivered "  # type: ignore[attr-defined]
          f"{sum(records.delivered.values())}, lost {records.lost}, "  # type: ignore[attr-defined]
          f"duplicates {records.duplicates}")  # type: ignore[attr-defined]
    print(f"through the gateway: {logs_in:,.0f} log records ({logs_in / elapsed:,.0f}/s), "
          f"{points_in:,.0f} data points ({points_in / elapsed:,.0f}/s)")
    print(f"series per strategy (VictoriaMetrics): min {per_strategy[0]}, "
          f"max {per_strategy[-1]}" if per_strategy else "series per strategy: none")
    print("\n| process | CPU s | CPU s / 1k records | CPU s / 1k points | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for name, c in (("gateway", gateway), *agents.items()):
        assert c.pid is not None
        cpu, rss = proc_usage(c.pid)
        recs = own_counter(c, "otelcol_receiver_accepted_log_records")
        pts = own_counter(c, "otelcol_receiver_accepted_metric_points")
        print(f"| {name} | {cpu:.2f} | {1000 * cpu / max(recs, 1):.3f} | "
              f"{1000 * cpu / max(pts, 1):.3f} | {rss / 2**20:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", type=int, default=24, help="bot processes (default 24)")
    parser.add_argument("--bars", type=int, default=400,
                        help="bars of the first bot; bot i replays bars + 7*i (default 400)")
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: temporary)")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args.keep.resolve(), args.bots, args.bars)
    with tempfile.TemporaryDirectory(prefix="ensemble-fleet-") as tmp:
        return run(Path(tmp), args.bots, args.bars)


if __name__ == "__main__":
    sys.exit(main())
