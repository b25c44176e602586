"""The copy protocol in detail: a lock-free copy and its tries, the newest view kept, a
request for a copy and its answer, one view per collection, and the wait for a bar under
way (its bound and its warning)."""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import pytest

from ensemble_otel.health import copies as copies_mod
from ensemble_otel.health.copies import Copies
from ensemble_otel.health.ledger import Ledger
from ensemble_otel.health.views import AT, take

H0 = 1_709_251_200.0


class Owned(Ledger):
    """A ledger wired to its copies, as the emitter is."""

    def __init__(self) -> None:
        self._init_ledger()
        self._unwritten = ()
        self.copies = Copies(self)

    def _publish(self) -> None:
        self.copies.publish()


def _owned() -> Owned:
    ledger = Owned()
    ledger.maybe_emit(H0 + 1.0, equity=100.0)
    return ledger


def _mid_bar(ledger: Ledger) -> None:
    ledger._writing = ledger.last_ts + 1.0  # a bar's first store done, not its last


def _in_thread(fn: Any) -> Any:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join(5)
    return out[0]


def test_copy_tries_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = _owned()
    assert ledger.copies.copy() == take(ledger)
    _mid_bar(ledger)
    calls: list[int] = []
    monkeypatch.setattr(copies_mod, "take", lambda lg: calls.append(1) or take(lg))
    assert ledger.copies.copy() is None
    assert len(calls) == copies_mod.COPY_TRIES == 3


def test_remember_keeps_the_newest() -> None:
    ledger = _owned()
    copies = ledger.copies
    first = copies.newest
    ledger.maybe_emit(H0 + 2.0, equity=101.0)
    later = take(ledger)
    copies.remember(later)
    assert copies.newest is later and copies._cache[0] == later[:copies_mod.KEY]
    copies.remember(first)  # older: not kept
    assert copies.newest is later
    same_order = tuple(v if i != AT["equity"] else 5.0 for i, v in enumerate(later))
    copies.remember(same_order)  # as new (the same order): kept
    assert copies.newest is same_order


def test_publish_answers_a_request() -> None:
    ledger = _owned()
    copies = ledger.copies
    copies.ask()
    assert ledger._copy_req is True and ledger._hour_end == -math.inf
    ledger.maybe_emit(H0 + 2.0, equity=102.0)  # the general path publishes
    assert ledger._copy_req is False and ledger._hour_end == H0 + 3600.0
    assert copies._seq == 1 and copies._published == take(ledger)
    assert copies.newest == take(ledger)


def test_view_reuses_an_unchanged_view_and_copies_a_changed_one() -> None:
    ledger = _owned()
    copies = ledger.copies
    first = copies.view()
    assert copies.view() is first
    ledger.maybe_emit(H0 + 2.0, equity=103.0)
    second = copies.view()
    assert second == take(ledger) and copies.newest is second


def test_view_during_a_bar_on_another_thread_yields_then_asks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = _owned()
    copies = ledger.copies
    known = copies.newest
    _mid_bar(ledger)
    sleeps: list[float] = []
    monkeypatch.setattr(copies_mod.time, "sleep", sleeps.append)
    assert _in_thread(copies.view) is known
    assert sleeps == [0] * copies_mod.YIELD_TRIES and ledger._copy_req is True
    ledger._copy_req = False
    sleeps.clear()
    assert copies.view() is known  # on the bar thread: no yield
    assert sleeps == [] and ledger._copy_req is True


def test_view_during_a_bar_takes_the_copy_found_after_a_yield(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = _owned()
    copies = ledger.copies
    _mid_bar(ledger)
    sleeps: list[float] = []

    def bar_ends(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            ledger.last_ts = ledger._writing

    monkeypatch.setattr(copies_mod.time, "sleep", bar_ends)
    view = _in_thread(copies.view)
    assert view == take(ledger) and len(sleeps) == 2 and ledger._copy_req is False
    assert copies.newest is view


def test_one_view_per_collection_per_thread() -> None:
    ledger = _owned()
    copies = ledger.copies
    read0, read1 = copies.reader(0), copies.reader(1)
    first = read0()
    ledger.maybe_emit(H0 + 2.0, equity=104.0)
    assert read1() is first  # the same collection
    second = read0()  # index 0 again: a new collection
    assert second == take(ledger) and second is not first
    assert read1() is second
    assert _in_thread(read1) == second  # another thread: its own collection


def test_whole_on_the_bar_thread_mid_bar_is_the_newest_known() -> None:
    ledger = _owned()
    known = ledger.copies.newest
    _mid_bar(ledger)
    assert ledger.copies.whole() is known and ledger._copy_req is False


def test_whole_waits_for_the_published_copy() -> None:
    ledger = _owned()
    copies = ledger.copies
    _mid_bar(ledger)
    out: list[Any] = []
    waiter = threading.Thread(target=lambda: out.append(copies.whole(5.0)))
    waiter.start()
    for _ in range(500):
        if ledger._copy_req:
            break
        threading.Event().wait(0.01)
    assert ledger._copy_req
    published = take(ledger)  # what the bar thread publishes (a bar is still under way)
    with copies._cv:
        copies._published = published
        copies._seq += 1
        copies._cv.notify_all()
    waiter.join(5)
    assert out == [published] and out[0] is published


def test_whole_after_the_timeout_is_the_newest_known_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    ledger = _owned()
    known = ledger.copies.newest
    _mid_bar(ledger)
    assert _in_thread(lambda: ledger.copies.whole(0.05)) is known
    assert [r.getMessage() for r in caplog.records] == [
        "ensemble-otel health: a bar has been under way for over 0.05 s; using the newest "
        "whole copy of the state (repeats at most once a minute)"]


def test_whole_without_a_bar_under_way() -> None:
    ledger = _owned()
    view = _in_thread(ledger.copies.whole)
    assert view == take(ledger) and ledger.copies.newest is view


def test_each_publication_counts() -> None:
    ledger = _owned()
    ledger.copies.publish()
    ledger.copies.publish()
    assert ledger.copies._seq == 2


def test_whole_takes_a_copy_once_the_bar_under_way_ends_without_publishing() -> None:
    ledger = _owned()
    copies = ledger.copies
    _mid_bar(ledger)
    out: list[Any] = []
    waiter = threading.Thread(target=lambda: out.append(copies.whole(5.0)))
    waiter.start()
    for _ in range(500):
        if ledger._copy_req:
            break
        threading.Event().wait(0.01)
    ledger.equity = 77.0
    ledger.last_ts = ledger._writing  # the bar ends; nothing is published
    waiter.join(5)
    assert out and out[0] == take(ledger) and copies._seq == 0


def test_whole_looks_again_every_fraction_of_its_timeout() -> None:
    """A bar that ends without publishing is seen by the next look (every 0.05 s), well
    before a timeout under a second runs out."""
    ledger = _owned()
    copies = ledger.copies
    known = copies.newest
    _mid_bar(ledger)
    out: list[Any] = []
    waiter = threading.Thread(target=lambda: out.append(copies.whole(0.9)))
    waiter.start()
    for _ in range(500):
        if ledger._copy_req:
            break
        threading.Event().wait(0.01)
    ledger.equity = 66.0
    ledger.last_ts = ledger._writing
    waiter.join(5)
    assert out and out[0] is not known and out[0][AT["equity"]] == 66.0


def test_a_collection_that_starts_with_another_callback_takes_a_new_view() -> None:
    ledger = _owned()
    read0, read1 = ledger.copies.reader(0), ledger.copies.reader(1)
    first = read0()
    assert read1() is first
    ledger.maybe_emit(H0 + 2.0, equity=104.0)
    second = read1()  # index 1 again: the next collection, whatever its first callback
    assert second is not first and second == take(ledger)
