"""UTC time, formatted and parsed one way for the whole package.

Formatters (unix seconds -> ISO-8601 UTC ending in ``Z``):

- :func:`iso`: whole seconds when the time is whole, microseconds otherwise
  (``2024-03-01T00:00:00Z``, ``2024-03-01T00:00:00.500000Z``): health records;
- :func:`iso_seconds`: always whole seconds, the fraction cut off: status, report, demo;
- :func:`iso_micro`: always microseconds: the heartbeat and events ``ts``.

Whole seconds go through an hour cache: bucket closes and events format the same day again
and again, and both are on the bot's path.

Parsers: :func:`parse_iso` / :func:`parse_datetime` read any of these back, and what
readers meet in older or hand-written files (an offset, ``z``, a naive time meaning UTC,
1 to 9 fraction digits, a space for the ``T``). :func:`record_ts_error` is the strict
rule of a record's timestamp (the contract's pattern, on a calendar date).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone
from functools import lru_cache

from ensemble_otel.contract.registry import UTC_TIMESTAMP_PATTERN

UTC = timezone.utc
_DAY = 86400
_day_cache: list[tuple[float, str]] = [(math.nan, "")]  # [(day number, "YYYY-MM-DDT")]: one swap
_hour_cache: list[tuple[float, str]] = [(math.nan, "")]  # [(hour number, "YYYY-MM-DDTHH:")]
_HOURS = [f"{h:02d}:" for h in range(24)]
_MMSS: list[str] = []  # "MM:SSZ" for each second of an hour, made on first use
_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"
_SECONDS = "%Y-%m-%dT%H:%M:%SZ"


def iso(unix: float) -> str:
    """``unix`` seconds as ISO-8601 UTC: whole seconds when whole, microseconds otherwise."""
    hour, rest = divmod(unix, 3600)
    second = int(rest)
    if rest == second:  # a whole second: from the hour cache (the closing bar's path)
        cached, prefix = _hour_cache[0]
        if cached != hour:
            prefix = _hour_prefix(hour)
        return prefix + _MMSS[second]
    dt = datetime.fromtimestamp(unix, tz=UTC)
    return dt.strftime(_MICRO if dt.microsecond else _SECONDS)


def _hour_prefix(hour: float) -> str:
    """``YYYY-MM-DDTHH:`` of hour number ``hour``, kept as the hour cache's one entry."""
    day, h = divmod(int(hour), 24)
    cached, prefix = _day_cache[0]
    if cached != day:
        prefix = datetime.fromtimestamp(day * _DAY, tz=UTC).strftime("%Y-%m-%dT")
        _day_cache[0] = (day, prefix)
    if not _MMSS:
        _MMSS.extend(f"{m:02d}:{s:02d}Z" for m in range(60) for s in range(60))
    prefix += _HOURS[h]
    _hour_cache[0] = (hour, prefix)
    return prefix


def iso_seconds(unix: float) -> str:
    """``unix`` seconds as ISO-8601 UTC in whole seconds (a fraction is cut off)."""
    if unix == int(unix):
        return iso(unix)
    return datetime.fromtimestamp(unix, tz=UTC).strftime(_SECONDS)


def iso_micro(unix: float) -> str:
    """``unix`` seconds as ISO-8601 UTC with six fraction digits (``.000000`` when whole)."""
    if unix == int(unix):
        return iso(unix)[:-1] + ".000000Z"
    return datetime.fromtimestamp(unix, tz=UTC).strftime(_MICRO)


_FRACTION = re.compile(r"\.([0-9]+)")


def parse_datetime(text: str) -> datetime:
    """ISO-8601 text as an aware datetime: ``Z``/``z`` or an offset; naive means UTC; 1 to
    9 fraction digits (cut to microseconds). Raises ValueError."""
    text = text.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    m = _FRACTION.search(text)
    if m is not None and len(m.group(1)) != 6:  # Python 3.10 takes 3 or 6 digits only
        text = text[:m.start(1)] + m.group(1)[:6].ljust(6, "0") + text[m.end(1):]
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def parse_iso(text: str) -> float:
    """ISO-8601 text (see :func:`parse_datetime`) as unix seconds. Raises ValueError."""
    return parse_datetime(text).timestamp()


@lru_cache(maxsize=1 << 16)
def valid_date(text: str) -> bool:
    """Whether ``YYYY-MM-DD`` is a real calendar date."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


_RECORD_TS = re.compile(UTC_TIMESTAMP_PATTERN.removesuffix("$") + r"\Z")


def record_ts_error(text: str) -> str | None:
    """Why ``text`` is not a record timestamp, or None when it is one.

    A record timestamp is ISO-8601 UTC, ``YYYY-MM-DDTHH:MM:SS[.f]`` (1 to 9 fraction
    digits) ending in ``Z`` or ``+00:00`` (the contract's ``UTC_TIMESTAMP_PATTERN``), on a
    calendar date. The reason is ``"form"`` (not that shape) or ``"date"`` (no such day).
    """
    if not _RECORD_TS.search(text):
        return "form"
    if not valid_date(text[:10]):
        return "date"
    return None
