"""Hourly and daily health snapshots in bar time (UTC), as metric views and JSONL records.

The parts, each with one job:

- ``checks``: bar field validation (BarError naming field, value and rule);
- ``ledger``: bar accounting, the fast and the general path (no I/O, no SDK, no threads);
- ``buckets``: bucket accumulators and the pure rules of rolling them;
- ``views``: the view table (metric name -> function of a state view), read by the
  observable instruments and by the JSONL record alike;
- ``copies``: whole copies of the state for other threads;
- ``store`` and ``restore``: state file, journal, restore, the exactly-once rules;
- ``emitter``: :class:`HealthSnapshotEmitter`, the public face.
"""

from __future__ import annotations

from ensemble_otel._time import iso
from ensemble_otel.health.buckets import PERIODS
from ensemble_otel.health.checks import TS_MAX, TS_MIN, to_unix
from ensemble_otel.health.copies import COPY_TIMEOUT, COPY_TRIES
from ensemble_otel.health.emitter import HealthSnapshotEmitter
from ensemble_otel.health.ledger import EQUITY_FLOOR, NOTIONAL_ROOM, Refused
from ensemble_otel.health.store import STATE_VERSION, read_json_line, read_saved_state

__all__ = [
    "COPY_TIMEOUT",
    "COPY_TRIES",
    "EQUITY_FLOOR",
    "NOTIONAL_ROOM",
    "PERIODS",
    "STATE_VERSION",
    "TS_MAX",
    "TS_MIN",
    "HealthSnapshotEmitter",
    "Refused",
    "iso",
    "read_json_line",
    "read_saved_state",
    "to_unix",
]
