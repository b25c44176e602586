"""The report's --from/--to bounds (UTC) and ages; timestamps go through ``_time``."""

from __future__ import annotations

import re
from datetime import timedelta

from ensemble_otel._time import parse_datetime

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_bound(text: str, *, end: bool = False) -> float:
    """A --from/--to value as unix seconds.

    Accepts a date (``2024-03-01``), an ISO-8601 date-time (naive = UTC, ``Z`` or an offset)
    or unix seconds. A date alone as an end bound means the end of that day, so
    ``--from 2024-03-01 --to 2024-03-01`` selects that whole day.
    Raises ValueError naming the rule.
    """
    raw = text.strip()
    try:
        return float(raw) if re.fullmatch(r"\d+(\.\d+)?", raw) else _bound_from_iso(raw, end)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date (YYYY-MM-DD), an ISO-8601 date-time or unix seconds"
        ) from None


def _bound_from_iso(raw: str, end: bool) -> float:
    dt = parse_datetime(raw)
    if end and _DATE_ONLY.match(raw):
        dt += timedelta(days=1) - timedelta(microseconds=1)
    return dt.timestamp()


def human_age(seconds: float) -> str:
    """`95` -> ``1 min 35 s``; negative ages (clock skew) are shown as such."""
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 60:
        return f"{sign}{s:.0f} s"
    if s < 3600:
        return f"{sign}{int(s // 60)} min {int(s % 60)} s"
    if s < 86400:
        return f"{sign}{int(s // 3600)} h {int(s % 3600 // 60)} min"
    return f"{sign}{int(s // 86400)} d {int(s % 86400 // 3600)} h"
