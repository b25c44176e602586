"""Counting JSONL records on disk against the records shipped to VictoriaLogs.

A record's dedupe key is (strategy_id, period or event, ts, order_id where the event has
one): the same key twice in VictoriaLogs is a duplicate, a key on disk that is not in
VictoriaLogs is lost. :func:`tally` compares the two per record kind.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend_support import Server, logsql

# Record kind -> the directory its files are in, under a PAPER_TRADING_ROOT.
KIND_DIRS = {
    "health_snapshot_1h": "logs/1h",
    "health_snapshot_24h": "logs/24h",
    "event": "logs/events",
}
KEY_FIELDS = ("strategy_id", "period", "event", "ts", "order_id")

# Every shipped record with its key fields (a LogsQL query; docs/backends.md explains it).
SHIPPED_QUERY = ('ensemble.record.kind:* | fields ensemble.record.kind, '
                 + ", ".join(KEY_FIELDS))
# The number of distinct records, duplicates not counted.
DISTINCT_QUERY = ('ensemble.record.kind:* | uniq by (ensemble.record.kind, '
                  + ", ".join(KEY_FIELDS) + ") | stats count() records")

Key = tuple[str, ...]


def record_key(kind: str, fields: dict[str, Any]) -> Key:
    """The dedupe key of one record (missing fields are empty)."""
    return (kind, *("" if fields.get(f) is None else str(fields[f]) for f in KEY_FIELDS))


def disk_records(*roots: Path) -> Counter[Key]:
    """Every whole line of every record file under the roots, by key (torn files left out)."""
    out: Counter[Key] = Counter()
    for root in roots:
        for kind, directory in KIND_DIRS.items():
            for path in sorted((root / directory).rglob("*.jsonl")):
                for line in path.read_bytes().splitlines(keepends=True):
                    if line.endswith(b"\n") and line.strip():
                        out[record_key(kind, json.loads(line))] += 1
    return out


def shipped_records(server: Server) -> Counter[Key]:
    """Every record in VictoriaLogs by key (a key seen twice was shipped twice)."""
    out: Counter[Key] = Counter()
    for row in logsql(server, SHIPPED_QUERY, timeout=60):
        kind = row.get("ensemble.record.kind", "")
        out[record_key(kind, {f: row.get(f) or None for f in KEY_FIELDS})] += 1
    return out


@dataclass(frozen=True)
class Tally:
    """Records on disk against records delivered, per kind and in total."""

    on_disk: dict[str, int]
    delivered: dict[str, int]  # distinct records found in the store
    lost: int
    duplicates: int

    def line(self, label: str) -> str:
        kinds = " ".join(f"{k}={self.delivered.get(k, 0)}/{v}" for k, v in self.on_disk.items())
        return (f"records [{label}]: on disk {sum(self.on_disk.values())}, delivered "
                f"{sum(self.delivered.values())}, lost {self.lost}, duplicates "
                f"{self.duplicates} (delivered/on disk per kind: {kinds})")


def tally(server: Server, *roots: Path) -> Tally:
    disk = disk_records(*roots)
    shipped = shipped_records(server)
    dup_on_disk = {k: n for k, n in disk.items() if n > 1}
    assert not dup_on_disk, f"dedupe key not unique on disk: {list(dup_on_disk)[:3]}"
    on_disk: Counter[str] = Counter(k[0] for k in disk)
    delivered: Counter[str] = Counter(k[0] for k in shipped)
    return Tally(
        on_disk={k: on_disk.get(k, 0) for k in KIND_DIRS},
        delivered={k: delivered.get(k, 0) for k in KIND_DIRS},
        lost=sum(1 for k in disk if k not in shipped),
        duplicates=sum(n - 1 for n in shipped.values()),
    )
