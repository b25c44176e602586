"""UTC time, formatted and parsed one way for the whole package.

``iso(unix)`` gives ISO-8601 UTC with a ``Z``: whole seconds when the time is whole,
microseconds otherwise (``2024-03-01T00:00:00Z``, ``2024-03-01T00:00:00.500000Z``).
``parse_iso`` reads what ``iso`` writes (and ``+00:00`` or any other offset) back to unix
seconds. The formatter keeps the date of the last day it formatted: bucket closes format
the same day again and again, and this is on the closing bar's path.
"""

from __future__ import annotations

from datetime import datetime, timezone

UTC = timezone.utc
_DAY = 86400
_day_cache: list[tuple[float, str]] = [(-1.0, "")]  # [(day number, "YYYY-MM-DDT")]: one swap
_HOURS = [f"{h:02d}:" for h in range(24)]
_MMSS: list[str] = []  # "MM:SSZ" for each second of an hour, made on first use


def iso(unix: float) -> str:
    """``unix`` seconds as ISO-8601 UTC: whole seconds when whole, microseconds otherwise."""
    day, rest = divmod(unix, _DAY)
    if rest == int(rest):
        cached, prefix = _day_cache[0]
        if cached != day:
            prefix = datetime.fromtimestamp(day * _DAY, tz=UTC).strftime("%Y-%m-%dT")
            _day_cache[0] = (day, prefix)
        if not _MMSS:
            _MMSS.extend(f"{m:02d}:{s:02d}Z" for m in range(60) for s in range(60))
        hour, second = divmod(int(rest), 3600)
        return prefix + _HOURS[hour] + _MMSS[second]
    dt = datetime.fromtimestamp(unix, tz=UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    """ISO-8601 text (``Z`` or an offset; naive means UTC) as unix seconds."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def day_file(unix: float, daily: bool = True) -> str:
    """The JSONL file name of a time's partition: ``YYYY-MM-DD.jsonl`` or ``YYYY-MM.jsonl``."""
    text = iso(float(int(unix // _DAY) * _DAY))
    return f"{text[:10]}.jsonl" if daily else f"{text[:7]}.jsonl"
