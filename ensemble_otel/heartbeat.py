"""Heartbeat: observable gauges, mirrored to an atomically replaced file by a metric exporter.

The file is written only from what a metric collection produced, so a stuck metrics
pipeline shows as a stale file, never as a fresh one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from ensemble_otel._metricsdata import point_value
from ensemble_otel._process import on_fork_in_child
from ensemble_otel._ratelog import RateLimitedLog
from ensemble_otel._time import iso_micro
from ensemble_otel.contract.registry import HEARTBEAT_TIMESTAMP, METRICS_BY_NAME, UPTIME
from ensemble_otel.jsonl import atomic_write_json
from ensemble_otel.paths import heartbeat_path
from ensemble_otel.settings import Settings

_log = logging.getLogger("ensemble_otel")

STATES = ("starting", "running", "stopping", "stopped")
# What readers (heartbeat check, status, report) take as proof of life:
INTERVALS_PER_MAX_AGE = 3  # a beat older than 3 x the interval_s it states is stale
DEFAULT_MAX_SKEW = 300.0  # seconds a beat may be ahead of the reader's clock (clock skew)


def process_start(pid: int) -> int | None:
    """Start time of process ``pid`` (field 22 of ``/proc/<pid>/stat``: clock ticks since
    boot), or None where it cannot be read. With the host and pid it names one process."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            raw = fh.read(4096)
        # the command name (field 2) is in parentheses and may hold spaces or ')'
        return int(raw[raw.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


_own_start: list[int | None] = []  # this process's start time, read once; a forked child
on_fork_in_child(_own_start.clear)  # is another process: it reads its own


def own_start() -> int | None:
    """:func:`process_start` of this process."""
    if not _own_start:
        _own_start.append(process_start(os.getpid()))
    return _own_start[0]


class Heartbeat:
    """Lifecycle state and the beat file of one process.

    ``observe`` registers the gauges; :class:`HeartbeatFileExporter` calls ``write`` with the
    timestamp that the collection produced.
    """

    def __init__(self, settings: Settings, instance_id: str) -> None:
        self.settings = settings
        self.path: Path = heartbeat_path(settings.root, settings.strategy_id)
        self.instance_id = instance_id
        self.state = "starting"
        self.seq = 0
        self.started_monotonic = time.monotonic()
        self.started_unix = time.time()
        self.last_beat_unix: float | None = None
        self.active = True  # False in a forked child: it never touches the parent's file
        self._lock = threading.Lock()
        self._host = socket.gethostname()
        self._errors = RateLimitedLog(_log, 60.0)
        self.on_beat: list[Callable[[str], None]] = []

    def uptime(self) -> float:
        return time.monotonic() - self.started_monotonic

    def observe(self, meter: Meter) -> None:
        spec = METRICS_BY_NAME[HEARTBEAT_TIMESTAMP]
        meter.create_observable_gauge(
            spec.name, callbacks=[self._beat_callback], unit=spec.unit,
            description=spec.description,
        )
        spec = METRICS_BY_NAME[UPTIME]
        meter.create_observable_gauge(
            spec.name, callbacks=[self._uptime_callback], unit=spec.unit,
            description=spec.description,
        )

    def _beat_callback(self, options: CallbackOptions) -> Iterable[Observation]:
        return (Observation(time.time()),)

    def _uptime_callback(self, options: CallbackOptions) -> Iterable[Observation]:
        return (Observation(self.uptime()),)

    def record(self, unix: float, state: str | None = None) -> dict[str, Any]:
        s = self.settings
        return {
            "ts": iso_micro(unix),
            "unix": round(unix, 6),
            "strategy_id": s.strategy_id,
            "schema_version": s.schema_version,
            "state": state or self.state,
            "seq": self.seq,
            "pid": os.getpid(),
            "host": self._host,
            "service_instance_id": self.instance_id,
            "uptime_s": round(self.uptime(), 6),
            "interval_s": s.heartbeat_interval,
            "environment": s.environment,
            "pid_start": own_start(),
        }

    def write(self, unix: float, state: str | None = None) -> bool:
        """Replace the beat file. Fails soft: returns False and logs at most once a minute."""
        if not self.active:
            return False
        with self._lock:
            state = state or self.state
            try:
                atomic_write_json(self.path, self.record(unix, state))
            except OSError as exc:
                self._errors.log(logging.ERROR, "ensemble-otel heartbeat: cannot write %s: %s",
                                 self.path, exc)
                return False
            self.seq += 1
            self.last_beat_unix = unix
        for hook in self.on_beat:
            try:
                hook(state)
            except Exception:  # a hook never stops the beat
                _log.exception("ensemble-otel heartbeat hook failed")
        return True


class HeartbeatFileExporter(MetricExporter):
    """Mirrors ``ensemble.heartbeat.timestamp`` from each collection into the beat file."""

    def __init__(self, heartbeat: Heartbeat) -> None:
        super().__init__()
        self._heartbeat = heartbeat

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        unix = point_value(metrics_data, HEARTBEAT_TIMESTAMP)
        if unix is None:
            return MetricExportResult.FAILURE
        ok = self._heartbeat.write(unix)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def read_heartbeat(path: Path, root: Path | None = None) -> dict[str, Any]:
    """Read a beat file: a regular file (no symbolic link, FIFO or device; with ``root``, no
    linked directory below it either) of at most 64 KiB holding one JSON object. Raises
    OSError (``readers.RefusedFile`` for a refused path) or ValueError."""
    import orjson

    from ensemble_otel.readers import HEARTBEAT_MAX_BYTES, read_limited

    data = orjson.loads(read_limited(path, HEARTBEAT_MAX_BYTES, root=root))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
