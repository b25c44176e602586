"""Buckets of bar time and how they roll: accumulators, and pure functions of them.

A bucket is one hour or one UTC day of bar time. ``closing`` says which buckets a bar at
a later time closes. Nothing here does I/O or touches the SDK.
"""

from __future__ import annotations

from typing import Any

PERIODS: tuple[tuple[str, int], ...] = (("1h", 3600), ("24h", 86400))


class Bucket:
    """Accumulators of one open bucket of one period, and what its last record said."""

    __slots__ = (
        "bars",
        "breaches",
        "first_ts",
        "last_pnl",
        "last_start",
        "last_ts",
        "last_turnover",
        "last_written",
        "notional",
        "period",
        "prev_close",
        "refused_base",
        "seconds",
        "start",
        "warnings",
    )

    def __init__(self, period: str, seconds: int) -> None:
        self.period = period
        self.seconds = seconds
        self.start = -1  # bucket start (unix seconds), -1 before the first bar
        self.bars = 0
        self.notional = 0.0
        self.breaches = 0
        self.warnings = 0
        self.first_ts = 0.0
        self.last_ts = 0.0
        self.prev_close: float | None = None  # equity at the previous bucket's last bar
        self.last_written = -1  # start of the newest bucket known to be on disk
        self.last_pnl: float | None = None
        self.last_turnover: float | None = None
        self.last_start: int | None = None
        self.refused_base = 0  # refused bars counted before this bucket's record

    def reset(self, start: int) -> None:
        self.start = start
        self.bars = 0
        self.notional = 0.0
        self.breaches = 0
        self.warnings = 0

    def load(self, data: dict[str, Any]) -> None:
        for key in BUCKET_STATE:
            if key in data:
                setattr(self, key, data[key])


BUCKET_STATE = tuple(k for k in Bucket.__slots__ if k not in ("period", "seconds"))


def starts(t: float) -> tuple[int, int]:
    """The start of the hour and of the UTC day holding bar time ``t``."""
    return int(t // 3600) * 3600, int(t // 86400) * 86400


def closing(hour: Bucket, day: Bucket, hour_start: int, day_start: int) -> list[Bucket]:
    """The buckets a bar in the hour ``hour_start`` (of the day ``day_start``) closes: those
    that saw bars and start elsewhere. ``hour`` must hold the open hour's sums (folded)."""
    closed = []
    if hour.bars > 0 and hour.start != hour_start:
        closed.append(hour)
    if day.bars > 0 and day.start != day_start:
        closed.append(day)
    return closed


def on_disk(hour: Bucket, day: Bucket, t: float) -> bool:
    """True when ``t`` falls in an hour or a day whose record is already on disk."""
    h, d = hour.last_written, day.last_written
    return (h >= 0 and t < h + 3600) or (d >= 0 and t < d + 86400)


def sums_stay_finite(hour: Bucket, day: Bucket, h_bars: int, h_notional: float,
                     c_notional: float, end: float, t: float, equity: float,
                     notional: float) -> bool:
    """Whether the notional sums after a bar at ``t`` (the hour's, the day's, the total) and
    their turnovers, were it a bucket's last bar, are finite; computed as the bucket close
    and the bar will compute them (``end``: the end of the open hour)."""
    h, c, d = h_notional, c_notional, day.notional
    if t >= end:  # the bar closes the open hour (and maybe the day) first
        hour_start, day_start = starts(t)
        if h_bars > 0 and hour.start != hour_start:
            c += h
            d += h
        if hour.start != hour_start:
            h = 0.0
        if day.start != day_start:
            d = 0.0
    h += notional
    day_sum = d + h
    values = [h, c + h, day_sum]
    if equity != 0.0:
        values += [h / abs(equity), day_sum / abs(equity)]
    return all(v - v == 0.0 for v in values)
