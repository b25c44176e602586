"""The health snapshot emitter: the ledger's bar path, wired to the store and the SDK.

A bar updates the ledger (no SDK call, no I/O). When a bar opens a later hour (or day),
the closing bucket's record is built from the view table (the same functions the
observable instruments read) and appended to its JSONL file after the state that names it
(write-ahead, see store.py), so a restart continues where the last one stopped: peak
equity and max drawdown are never reset, a bucket on disk is never written twice. No SDK
collection runs on the bar thread; the instruments read whole copies (copies.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from threading import get_ident
from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from ensemble_otel._ratelog import RateLimitedLog
from ensemble_otel._time import iso
from ensemble_otel.errors import BarError
from ensemble_otel.health import views
from ensemble_otel.health.closes import Unwritten, close
from ensemble_otel.health.copies import COPY_TIMEOUT, Copies
from ensemble_otel.health.ledger import Ledger
from ensemble_otel.health.restore import restore
from ensemble_otel.health.store import Store, state_from
from ensemble_otel.health.views import take
from ensemble_otel.jsonl import JsonlAppender
from ensemble_otel.settings import Settings

_log = logging.getLogger("ensemble_otel")
_INF = math.inf


class HealthSnapshotEmitter(Ledger):
    """Per-bar state of one strategy; writes one record per hour and per day of bar time.

    Obtain it from ``ensemble_otel.configure().health`` (or ``HealthSnapshotEmitter()``,
    the configured process's one). Call ``maybe_emit`` on every bar.
    """

    __slots__ = ()

    def __new__(cls, settings: Settings | None = None, **kwargs: Any) -> Any:
        # ``HealthSnapshotEmitter()`` (or with configure() keywords, e.g. strategy_id=...):
        # the emitter of this process's telemetry, configured on first use, so PAPER_TRADING_ROOT
        # and the strategy settings resolve exactly as configure() resolves them.
        if settings is None:
            import ensemble_otel

            current = ensemble_otel.get_telemetry()
            if current is not None and not kwargs and not getattr(current, "closed", False):
                return current.health  # whatever settings configured it
            return ensemble_otel.configure(**kwargs).health
        return super().__new__(cls)

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        meter: Meter | None = None,
        snapshot_reader: InMemoryMetricReader | None = None,
        appender: JsonlAppender | None = None,
        on_first_bar: Callable[[], None] | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:  # returned ready-made by __new__: nothing to build again
            return
        assert meter is not None and appender is not None
        self.settings = settings
        self._reader = snapshot_reader  # kept for the SDK pipeline; records never collect
        self._init_ledger(strict=bool(getattr(settings, "strict", False)))
        self._unwritten: tuple[Unwritten, ...] = ()  # closed buckets' records, unappended
        self._store = Store(settings.root, settings.state_path, settings.strategy_id, appender)
        self.state_path: Path = self._store.state_path
        self._drops = RateLimitedLog(_log, 60.0)
        self._refusals = RateLimitedLog(_log, 60.0)
        self._replayed = 0  # bars dropped because an earlier run recorded them
        restore(self, self._store, settings.strategy_id)
        self._arm()
        self._recorded_until = self.last_ts  # what earlier runs recorded: bars up to ...
        h, d = self._hour.last_written, self._day.last_written  # ... and buckets before
        self._disk_until = max(h + 3600 if h >= 0 else -_INF, d + 86400 if d >= 0 else -_INF)
        self._saved_ts: float | None = self.last_ts  # last_ts at the last save
        self._on_first_bar = on_first_bar
        if on_first_bar is not None:
            self._hour_end = -_INF  # the first bar takes the general path, which calls it
        self._copies = Copies(self)
        views.register(meter, self._copies.reader)

    # -- the bucket close ---------------------------------------------------------------

    def _close(self, t: float) -> list[dict[str, Any]]:
        """A bar at ``t`` opened a later hour: record what it closes, open its buckets."""
        copies, store, s = self._copies, self._store, self.settings
        copies.bar_ident = get_ident()
        # the state before the close, whole (no bar is under way): what other threads read
        # while the close runs, the view the records' levels come from, and what the journal
        # line holds (with t, its redo gives the state after the close)
        before = take(self)
        copies.closing = before
        # a copy taken between the fold and the end of the close would mix two hours:
        # _rolling marks it as not whole (see copies.py)
        self._rolling = True
        try:
            closed, items = close(self, t, before, s.strategy_id, s.schema_version,
                                  store.file_name)
            self._unwritten = items  # before _rolling clears: a copy must carry them
        finally:
            self._rolls += 1
            self._rolling = False
            copies.closing = None  # whole copies are taken again from here
        if self._copy_req:  # now: the save below may wait for the beat's save, which waits
            self._publish()  # for this copy
        if not closed:
            return []
        # write-ahead (store.py, rule 1): the journal names the close, hence its records,
        # before they are appended, so a crash in between leaves a state never behind the files
        with store.lock:
            if self._active and store.journal_close(before, t, s.schema_version):
                self._saved_ts = self.last_ts
        store.append(items)
        self._unwritten = ()
        return [rec for _, _, rec in items]

    def _publish(self) -> None:
        self._copies.publish()

    # -- what a dropped, refused or first bar says ---------------------------------------------

    def _dropped(self, t: float) -> None:
        if t <= self._recorded_until or t < self._disk_until:
            self._replayed += 1
            if self._replayed == 1:
                _log.warning("ensemble-otel health: bars up to %s are already recorded for %s; "
                             "replaying them adds nothing (they are dropped and counted)",
                             self._recorded_text(), self.settings.strategy_id)
            return
        self._drops.log(logging.WARNING, "ensemble-otel health: bar ts=%s is not after the "
                        "last bar (%s); dropped (%d dropped so far, this warning repeats at "
                        "most once a minute)", iso(t), iso(self.last_ts), self.dropped)

    def _recorded_text(self) -> str:
        """Up to when earlier runs recorded bars (their last bar, else their last bucket)."""
        until = max(self._recorded_until, self.last_ts)
        if until == -_INF:
            return f"{iso(self._disk_until)} (exclusive)" if self._disk_until > -_INF else "?"
        return iso(until)

    def _refused(self, error: BarError) -> None:
        self._refusals.log(logging.WARNING, "ensemble-otel health: bar refused, %s; nothing of "
                           "it is recorded (%d refused so far; ENSEMBLE_STRICT=1 raises instead; "
                           "this warning repeats at most once a minute)", error, self.refused)

    def _accepted(self) -> None:
        callback = self._on_first_bar
        if callback is not None:
            self._on_first_bar = None
            try:
                callback()
            except Exception:
                _log.exception("ensemble-otel health: the first-bar callback raised")

    # -- state for other threads, saving, closing ------------------------------------------------

    @property
    def active(self) -> bool:
        """False in a forked child: bars are validated, then ignored."""
        return self._active

    @active.setter
    def active(self, value: bool) -> None:
        self._active = value
        if not value:  # every bar takes the general path, which checks this
            self._end = self._hour_end = -_INF

    @property
    def dirty(self) -> bool:
        """True when bars arrived since the state was last saved."""
        return self._saved_ts != self.last_ts

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self._saved_ts = None if value else self.last_ts

    def state(self, timeout: float = COPY_TIMEOUT) -> dict[str, Any]:
        """A consistent snapshot of the state (whole bars only), from any thread.

        Deterministic: a whole lock-free copy when no bar is under way; else the copy the
        bar thread publishes at the end of the bar under way; if that takes over
        ``timeout`` seconds, the newest whole copy known (never older than one returned
        before).
        """
        return state_from(self._copies.whole(timeout), self.settings.strategy_id)

    def save_state(self, *, fsync: bool = True, journal: bool = False) -> bool:
        """Save the state. Fails soft (returns False, logs).

        By default (beats, shutdown) the state file is replaced atomically (temp file,
        fsync unless ``fsync=False``, rename) and the journal emptied; with ``journal=True``
        one line is appended to the journal ``<state file>.wal`` instead.
        """
        if not self._active or self.equity is None:
            return False
        store = self._store
        with store.lock:  # copies reach the file in the order they were taken
            state = self.state()
            if not store.save(state, journal=journal, fsync=fsync):
                return False
        self._saved_ts = -_INF if state["last_ts"] is None else state["last_ts"]
        return True

    def close(self) -> None:
        """Persist the open buckets (they close when a later bar arrives, maybe after a
        restart) and say what this run dropped or refused."""
        self.save_state(fsync=True)
        self._store.close()
        if self._replayed:
            _log.warning("ensemble-otel health: %d bar(s) of this run were already recorded for "
                         "%s (up to %s) and were dropped", self._replayed,
                         self.settings.strategy_id, self._recorded_text())
        if self.refused:
            _log.warning("ensemble-otel health: %d bar(s) refused so far for %s (bad values; "
                         "see the earlier warnings)", self.refused, self.settings.strategy_id)
