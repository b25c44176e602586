"""A bucket close as one pure step of the ledger, and its redo from the journal.

``close`` rolls the ledger to the hour of a bar at ``t``: it folds the open hour, builds the
records of the buckets it closes (from the view taken at their last bar, through the view
table) and opens the new buckets. No I/O. A close's journal line holds the view from before
the close and ``t`` (see store.py); ``redo`` runs the same step on a ledger made from that
view, so a restart gets the state after the close and the records it names, exactly as the
close made them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ensemble_otel import paths
from ensemble_otel.contract.registry import HEALTH_1H, HEALTH_24H
from ensemble_otel.health.buckets import Bucket, starts
from ensemble_otel.health.ledger import Ledger
from ensemble_otel.health.views import View, put, record, take

_log = logging.getLogger("ensemble_otel")
KINDS = {"1h": HEALTH_1H, "24h": HEALTH_24H}
Unwritten = tuple[str, str, dict[str, Any]]  # (period, file name, record)
FileName = Callable[[str, int], str]  # (period, bucket start) -> its file's name


def file_name(period: str, start: int) -> str:
    """The name of the file holding the record of ``period``'s bucket at ``start``."""
    return paths.partition_file(KINDS[period], start)


def close(ledger: Ledger, t: float, before: View, strategy_id: str, schema_version: str,
          name_of: FileName = file_name, *, log: bool = True) -> tuple[bool, tuple[Unwritten, ...]]:
    """Roll ``ledger`` to the hour of a bar at ``t`` (``before``: its view now). Returns
    whether buckets closed, and the records of those not on disk yet."""
    hour_start, day_start = starts(t)
    closed = ledger._roll(hour_start, day_start)
    items = records(ledger, closed, before, strategy_id, schema_version, name_of,
                    log=log) if closed else ()
    ledger._open(hour_start, day_start)
    return bool(closed), items


def records(ledger: Ledger, closed: list[Bucket], before: View, strategy_id: str,
            schema_version: str, name_of: FileName, *, log: bool) -> tuple[Unwritten, ...]:
    """The records of the closed buckets not on disk yet; each bucket remembers what its
    record said (the next record's PnL starts there)."""
    refused = ledger.refused
    items = []
    for b in closed:
        rec = record(b, before, ledger.first_equity, refused - b.refused_base, strategy_id,
                     schema_version)
        if b.start > b.last_written:
            items.append((b.period, name_of(b.period, b.start), rec))
            b.last_written = b.start
        elif log:
            _log.info("ensemble-otel health: %s bucket %s already on disk; not written "
                      "again", b.period, rec["ts"])
        b.prev_close = rec["equity"]
        b.last_pnl = rec["pnl"]
        b.last_turnover = rec["turnover"]
        b.last_start = b.start
        b.refused_base = refused
    return tuple(items)


def redo(before: View, t: float, strategy_id: str, schema_version: str) -> View:
    """The view after a journalled close: ``before`` with the close of a bar at ``t`` applied
    (its records in ``_unwritten``). Raises ValueError when the close cannot be redone."""
    ledger = Ledger()
    ledger._init_ledger()
    try:
        put(ledger, before)
        _, items = close(ledger, t, before, strategy_id, schema_version, log=False)
    except (AssertionError, ArithmeticError, TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"the journalled close at {t!r} cannot be redone "
                         f"({type(exc).__name__}: {exc})") from None
    ledger._unwritten = items
    return take(ledger)
