"""Restore a ledger from the store: the newest saved state, else the records on disk."""

from __future__ import annotations

import math
from typing import Any

from ensemble_otel._time import parse_iso
from ensemble_otel.health.ledger import Ledger
from ensemble_otel.health.store import Store, check_state

_INF = math.inf


def load(ledger: Ledger, state: dict[str, Any], strategy_id: str) -> None:
    """Put a checked state into the ledger (every field is checked before any is set)."""
    if state.get("strategy_id") != strategy_id:
        raise ValueError("state belongs to another strategy")
    check_state(state)  # every field first: a bad one must not leave half a state
    lg = ledger
    lg.equity = state["equity"]
    lg.first_equity = state["first_equity"]
    lg.peak = float(state["peak"])
    lg.max_drawdown = float(state["max_drawdown"])  # drawdown follows from equity, peak
    lg.realized = state["realized"]
    lg.unrealized = state["unrealized"]
    lg.positions = state["positions"]
    lg.last_ts = -_INF if state["last_ts"] is None else float(state["last_ts"])
    lg._c_bars = int(state["total_bars"])
    lg._c_notional = float(state["total_notional"])
    lg._c_breaches = int(state["total_breaches"])
    lg._c_warnings = int(state["total_warnings"])
    lg.dropped = int(state["dropped"])
    lg.refused = int(state.get("refused", 0))
    h, d = lg._hour, lg._day
    h.load(state["buckets"]["1h"])
    d.load(state["buckets"]["24h"])
    lg._h_bars, lg._h_notional = int(h.bars), float(h.notional)
    lg._h_breaches, lg._h_warnings = int(h.breaches), int(h.warnings)
    if state["version"] == 1:  # version 1 counted the open hour in the day and the totals
        d.bars -= lg._h_bars
        d.notional -= lg._h_notional
        d.breaches -= lg._h_breaches
        d.warnings -= lg._h_warnings
        lg._c_bars -= lg._h_bars
        lg._c_notional -= lg._h_notional
        lg._c_breaches -= lg._h_breaches
        lg._c_warnings -= lg._h_warnings


def restore(ledger: Ledger, store: Store, strategy_id: str) -> None:
    """Continue from the saved state; never write a bucket that is already on disk."""
    state: dict[str, Any] | None = None
    saved = store.saved_states()
    if saved:
        path, state = max(saved, key=lambda item: int(item[1].get("seq", 0)))
        try:
            load(ledger, state, strategy_id)
            store.append_unwritten(state.get("unwritten") or [])
        except (OSError, ValueError, TypeError, KeyError) as exc:
            store.set_aside(path, exc)
            state = None
            # as the log says: from the records on disk only, nothing of the state set aside
            ledger._init_ledger(strict=ledger.strict)
        else:
            store.seq = max(int(s.get("seq", 0)) for _, s in saved)
            store.start_journal(path, state)
    if state is None:
        store.drop_journal()
    _from_records(ledger, store, recover=state is None)
    if ledger._hour.start > ledger._hour.last_written and ledger._h_bars > 0:
        # the open hour continues (when it is on disk already, bars take the general
        # path, which drops the late ones and closes it without writing it again)
        ledger._end = float(ledger._hour.start + 3600)


def _from_records(ledger: Ledger, store: Store, *, recover: bool) -> None:
    """What the newest record of each period says: the newest bucket on disk (rule 3) and,
    with no state (``recover``), the running levels (rule 4)."""
    peak: float | None = None
    for b in (ledger._hour, ledger._day):
        last = store.last_record(b.period)
        if last is None:
            continue
        start = int(parse_iso(last["ts"]))
        b.last_written = max(b.last_written, start)
        if not recover:
            continue
        record_peak = float(last["peak_equity"])
        peak = record_peak if peak is None else max(peak, record_peak)
        ledger.max_drawdown = max(ledger.max_drawdown, float(last["max_drawdown"]))
        if b.prev_close is None or start >= (b.last_start or -1):
            b.prev_close = float(last["equity"])
            b.last_start = start
        ledger.last_ts = max(ledger.last_ts, parse_iso(last["last_bar_ts"]))
        if ledger.first_equity is None:
            ledger.first_equity = float(last["equity"])
    if peak is not None:
        ledger.peak = peak
