"""Simple moving-average crossover: long when the fast average is above the slow one."""

from __future__ import annotations

from collections import deque
from itertools import islice


class SmaCross:
    """Feed closes one at a time; ``update`` returns the wanted direction: +1, -1 or 0.

    0 until ``slow`` closes have been seen; then +1 while SMA(fast) > SMA(slow), -1 while
    below (0 when shorts are not allowed), and the previous direction when they are equal.
    """

    def __init__(self, fast: int = 10, slow: int = 30, *, allow_short: bool = True) -> None:
        if not 0 < fast < slow:
            raise ValueError(f"fast={fast}, slow={slow}: need 0 < fast < slow")
        self.fast = fast
        self.slow = slow
        self.allow_short = allow_short
        self._window: deque[float] = deque(maxlen=slow)
        self.direction = 0

    def update(self, close: float) -> int:
        w = self._window
        w.append(close)
        if len(w) < self.slow:
            return 0
        fast = sum(islice(w, self.slow - self.fast, None)) / self.fast
        slow = sum(w) / self.slow
        if fast > slow:
            self.direction = 1
        elif fast < slow:
            self.direction = -1 if self.allow_short else 0
        return self.direction
