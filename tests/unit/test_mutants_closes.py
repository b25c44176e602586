"""The bucket close as a pure step and its redo: the same records and state either way, a
redo that says nothing, and the view put back into a ledger as it was taken."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from unit_support import bare_ledger

from ensemble_otel.health.closes import close, file_name, redo
from ensemble_otel.health.views import STATE_ATTRS, put, take

H0 = 1_709_251_200.0  # 2024-03-01T00:00:00Z


def _ledger_with_an_hour_on_disk() -> Any:
    ledger = bare_ledger()
    ledger.maybe_emit(H0 + 60, equity=100.0, traded_notional=10.0)
    ledger._hour.last_written = ledger._hour.start  # another run wrote this hour meanwhile
    return ledger


def test_a_close_says_when_a_bucket_is_on_disk_and_its_redo_does_not(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ensemble_otel")
    ledger = _ledger_with_an_hour_on_disk()
    before = take(ledger)
    closed, items = close(ledger, H0 + 3700, before, "s1", "1.1")
    assert closed and items == ()  # the hour closed, its record is on disk already
    assert [r.getMessage() for r in caplog.records] == [
        "ensemble-otel health: 1h bucket 2024-03-01T00:00:00Z already on disk; not written "
        "again"]
    caplog.clear()
    after = redo(before, H0 + 3700, "s1", "1.1")
    assert caplog.records == []  # the close said it when it ran
    ledger._unwritten = ()
    assert after == take(ledger)


def test_a_close_with_log_false_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ensemble_otel")
    ledger = _ledger_with_an_hour_on_disk()
    close(ledger, H0 + 3700, take(ledger), "s1", "1.1", log=False)
    assert caplog.records == []


def test_the_redo_of_a_close_equals_the_close() -> None:
    ledger = bare_ledger()
    for i in range(30):
        ledger.maybe_emit(H0 + 1000.0 * i + 1, equity=100.0 + i % 7, realized_pnl=float(i),
                          traded_notional=float(i % 3), risk_breaches=i % 2,
                          open_positions=i % 4)
    before = take(ledger)
    t = H0 + 86400 * 2 + 5.25
    _, items = close(ledger, t, before, "s1", "2.0")
    ledger._unwritten = items
    assert redo(before, t, "s1", "2.0") == take(ledger)
    hour = int(H0 + 29001) // 3600 * 3600  # the hour of the last bar
    assert [(p, n) for p, n, _ in items] == [("1h", file_name("1h", hour)),
                                             ("24h", "2024-03.jsonl")]


def test_put_is_the_inverse_of_take_and_refuses_a_view_of_another_length() -> None:
    ledger = bare_ledger()
    ledger.maybe_emit(H0 + 60, equity=100.0, traded_notional=10.0)
    view = take(ledger)
    other = bare_ledger()
    put(other, view)
    assert take(other) == view
    with pytest.raises(ValueError, match=rf"^a view has {len(STATE_ATTRS)} values, not 3$"):
        put(other, (1, 2, 3))


def test_a_redo_that_fails_names_the_close() -> None:
    view = list(take(bare_ledger()))
    with pytest.raises(ValueError, match=r"^the journalled close at 5.0 cannot be redone "
                       r"\(ValueError: a view has"):
        redo(tuple(view[:3]), 5.0, "s1", "1.1")
