"""Whole copies of the ledger's state for other threads: the cross-thread copy protocol.

The bar path takes no lock. Other threads (the beat saving the state, readers running
the observable callbacks) take views in one C call (``views.take``) and use one when it is
whole. A view is not whole only while a bar (or a bucket close) is under way on the bar
thread; then ``whole`` asks the bar thread for a copy (``ask``) and waits for it (a
timeout at most). The ask costs the fast path nothing: it sets ``_copy_req`` and
``_hour_end = -inf`` on the ledger, so the next bar takes the general path, which restores
``_hour_end`` and, seeing ``_copy_req``, publishes a copy (a tuple, no I/O) at its end; a
bucket close publishes one as soon as it is done. A callback never waits (it may run while
the bar thread waits for a lock the collection holds): it takes the newest whole copy known
and asks for a fresh one for next time.

One collection reads one view: each callback has an index, and per thread the first
callback of a collection (one whose index this thread already served) takes a new view
that the others of the same collection reuse. This holds whatever order the SDK calls the
callbacks in, as long as a collection calls each callback once (as the OTel API says).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from threading import get_ident
from typing import Any

from ensemble_otel._ratelog import RateLimitedLog
from ensemble_otel.health.views import KEY, View, order, take, take_key, whole

_log = logging.getLogger("ensemble_otel")
COPY_TRIES = 3  # lock-free copies tried before the bar thread is asked for one
COPY_TIMEOUT = 1.0  # seconds whole() waits for the bar thread's copy (then: the newest known)
YIELD_TRIES = 5  # a callback that finds a bar under way yields the GIL this often at most


class Copies:
    """The copy protocol of one ledger (whose ``_publish`` calls :meth:`publish`)."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        first = take(ledger)
        self._cache: tuple[View, View] = (first[:KEY], first)
        self._cache_order = order(first)
        self._cache_lock = threading.Lock()
        self._cv = threading.Condition(threading.Lock())
        self._seq = 0
        self._published: View = first
        self.bar_ident = get_ident()  # the bar thread: the last to close a bucket
        # while a bucket close runs: the whole view taken at its start (None otherwise);
        # readers that find the close under way remember it (a store here costs the bar
        # thread less than remembering every close's view itself)
        self.closing: View | None = None
        self._local = threading.local()
        self._slow = RateLimitedLog(_log, 60.0)

    @property
    def newest(self) -> View:
        """The newest whole view known (a bucket close under way counts: the view it was
        handed at its start, see :attr:`closing`)."""
        closing = self.closing
        if closing is not None:
            self.remember(closing)
        return self._cache[1]

    def copy(self) -> View | None:
        """A whole lock-free view, or None after COPY_TRIES views taken mid-bar."""
        ledger = self._ledger
        for _ in range(COPY_TRIES):
            view = take(ledger)
            if whole(view):
                return view
        return None

    def remember(self, view: View) -> None:
        """Keep a whole view as the newest known, unless a newer one is kept already."""
        rank = order(view)
        with self._cache_lock:
            if rank >= self._cache_order:
                self._cache = (view[:KEY], view)
                self._cache_order = rank

    def publish(self) -> None:
        """On the bar thread, between bars: answer a request for a copy."""
        view = take(self._ledger)  # whole: this thread is the only one that changes it
        self.remember(view)
        with self._cv:
            self._ledger._copy_req = False
            self._published = view
            self._seq += 1
            self._cv.notify_all()

    def view(self) -> View:
        """The newest whole view, at once (for callbacks: never waits on a lock)."""
        ledger = self._ledger
        key, values = self._cache
        if take_key(ledger) == key:  # nothing changed since that view
            return values
        copy = self.copy()
        if copy is None and get_ident() != self.bar_ident:
            # a bar is under way on the bar thread: let it run to its end (a few us) and
            # look again, a bounded number of times
            for _ in range(YIELD_TRIES):
                time.sleep(0)
                copy = self.copy()
                if copy is not None:
                    break
        if copy is not None:
            self.remember(copy)
            return copy
        self.ask()  # the bar thread refreshes the newest known view
        return self.newest

    def reader(self, index: int) -> Callable[[], View]:
        """The view function of callback ``index``: one view per collection (see above)."""
        local = self._local

        def read() -> View:
            served: set[int] | None = getattr(local, "served", None)
            if served is None or index in served:
                local.view = self.view()
                local.served = {index}
            else:
                served.add(index)
            return local.view  # type: ignore[no-any-return]

        return read

    def ask(self) -> None:
        # _copy_req first: the general path restores _hour_end before it reads _copy_req, so
        # a request is either seen by the bar under way or sends the next bar there
        ledger = self._ledger
        ledger._copy_req = True
        ledger._hour_end = -math.inf

    def whole(self, timeout: float = COPY_TIMEOUT) -> View:
        """A whole view from any thread, waiting ``timeout`` at most for the bar thread."""
        view = self.copy()
        if view is not None:
            self.remember(view)
            return view
        if get_ident() == self.bar_ident:
            # inside a bar on its own thread (a signal handler): that bar cannot finish first
            return self.newest
        cv = self._cv
        with cv:
            seq = self._seq
            self.ask()
        deadline = time.monotonic() + timeout
        while True:
            # asked before this copy: if it finds a bar under way, that bar or the next one
            # publishes (and when none follows, a later copy here is whole)
            view = self.copy()
            if view is not None:
                self.remember(view)
                return view
            with cv:
                if self._seq == seq:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0.0:
                        break
                    cv.wait(min(remaining, 0.05))
                if self._seq != seq:
                    return self._published
        self._slow.log(logging.WARNING, "ensemble-otel health: a bar has been under way for "
                       "over %g s; using the newest whole copy of the state (repeats at most "
                       "once a minute)", timeout)
        return self.newest
