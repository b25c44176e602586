"""One rule for messages that could repeat on every bar: log at most once an interval."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any


class RateLimitedLog:
    """Logs a message at most once every ``interval`` seconds (monotonic clock).

    ``log`` returns True when it logged. Calls between two logged ones are counted in
    ``suppressed``; :meth:`take` hands that count to a message that says how many it stood
    for. Thread-safe; costs one clock read and a comparison when it does not log.
    """

    __slots__ = ("_lock", "_next", "interval", "logger", "suppressed")

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._next = -float("inf")
        self._lock = threading.Lock()
        self.suppressed = 0

    def take(self) -> int | None:
        """None when a message was logged less than an interval ago (this one is counted);
        else the count held back since the last one, and the interval starts again."""
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self.suppressed += 1
                return None
            self._next = now + self.interval
            held, self.suppressed = self.suppressed, 0
            return held

    def allow(self) -> bool:
        """True (and the interval starts again) when a message may be logged now."""
        return self.take() is not None

    def log(self, level: int, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` at ``level`` unless one was logged less than an interval ago."""
        if not self.allow():
            return False
        self.logger.log(level, msg, *args)
        return True
