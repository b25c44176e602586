"""Time parsing for the report: record timestamps and the --from/--to bounds (UTC)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_FRACTION = re.compile(r"(\.\d{6})\d+")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _fromiso(text: str) -> datetime:
    # Python 3.10's fromisoformat takes neither "Z" nor more than 6 fraction digits.
    text = _FRACTION.sub(r"\1", text.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


def parse_utc(text: str) -> float:
    """An ISO-8601 timestamp (naive = UTC) as unix seconds."""
    return _fromiso(text).timestamp()


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
    dt = _fromiso(raw)
    if end and _DATE_ONLY.match(raw):
        dt += timedelta(days=1) - timedelta(microseconds=1)
    return dt.timestamp()


def iso(unix: float) -> str:
    """Unix seconds as ISO-8601 UTC (whole seconds)."""
    return datetime.fromtimestamp(unix, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
