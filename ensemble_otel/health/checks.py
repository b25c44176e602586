"""Bar field validation: each rule once, each failure a BarError naming field, value, rule.

Nothing here keeps state or does I/O. A value whose own methods raise (``__float__``,
``__index__``, a tzinfo's ``utcoffset``) or whose ``repr`` fails is refused like any
other bad value: the error carries a safe stand-in for the value.
"""

from __future__ import annotations

import math
import numbers
from datetime import datetime, timezone
from typing import Any

from ensemble_otel.errors import BarError

_UTC = timezone.utc
_INF = math.inf
# Bar times: 1970-01-01T00:00:00Z <= ts < 10000-01-01T00:00:00Z (bucket starts are then never
# negative: -1 means "none yet"). A time outside (typically milliseconds passed as seconds)
# would be taken as the last bar and make every later bar look out of order, so it is refused.
TS_MIN = 0.0
TS_MAX = 253402300800.0
_REPR_MAX = 200
# counts per bar (risk_breaches, risk_warnings, open_positions): below 2**32, so sums stay
# far inside JSON's 64-bit integers and the metrics' exact range
COUNT_MAX = 0xFFFFFFFF


def safe_value(value: object) -> object:
    """``value`` when its repr works and is short; else a short text standing for it."""
    try:
        text = repr(value)
    except Exception as exc:
        return f"<{type(value).__name__} whose repr raised {type(exc).__name__}>"
    if len(text) > _REPR_MAX or not text.isprintable():
        short = text[:60].encode("unicode_escape").decode("ascii")
        return f"<{type(value).__name__}: {short}{'...' if len(text) > 60 else ''}>"
    return value


def bar_error(field: str, value: object, rule: str) -> BarError:
    """A BarError that can always be built and printed, whatever ``value`` is."""
    return BarError(field, safe_value(value), rule)


def to_unix(ts: object) -> float:
    """Bar time as unix seconds: aware datetime, naive datetime (UTC) or a number."""
    if isinstance(ts, datetime):
        try:
            if ts.tzinfo is None or ts.utcoffset() is None:  # naive (by the docs' rule)
                ts = ts.replace(tzinfo=_UTC)
            value = ts.timestamp()
        except (OverflowError, ValueError, OSError):
            raise bar_error("ts", ts, "must be unix seconds between 1970-01-01 and 9999-12-31 "
                            "(its UTC offset takes it out of range)") from None
        except Exception as exc:
            raise bar_error("ts", ts, f"must be a datetime whose tzinfo works "
                            f"(utcoffset raised {type(exc).__name__})") from None
        if type(value) is not float or not math.isfinite(value):
            raise bar_error("ts", ts, "must be a datetime whose tzinfo gives a finite offset")
    elif isinstance(ts, numbers.Real) and not isinstance(ts, bool):
        try:
            value = float(ts)
        except OverflowError:  # an int too large for a float: refused as out of range below
            value = TS_MAX
        except Exception:
            raise bar_error("ts", ts, "must be a datetime (naive = UTC) or unix seconds") from None
        if not math.isfinite(value):
            raise bar_error("ts", ts, "must be a finite unix time")
    else:
        raise bar_error("ts", ts, "must be a datetime (naive = UTC) or unix seconds")
    if not TS_MIN <= value < TS_MAX:
        raise bar_error("ts", ts, "must be unix seconds between 1970-01-01 and 9999-12-31 "
                        "(is it in milliseconds?)")
    return value


def number(value: object, field: str) -> float:
    """A finite float from any real number (int, Fraction, Decimal, numpy...)."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        raise bar_error(field, value, "must be a number")
    try:
        out = float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise bar_error(field, value, "must be finite (not NaN or infinity)") from None
    except Exception:
        raise bar_error(field, value, "must be a number") from None
    if type(out) is not float or not math.isfinite(out):
        raise bar_error(field, value, "must be finite (not NaN or infinity)")
    return out


def count(value: object, field: str) -> int:
    """A whole number >= 0 (an int, or a float that is whole)."""
    try:
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            if not (isinstance(value, float) and value.is_integer() and value >= 0):
                raise bar_error(field, value, "must be a whole number >= 0")
            out = int(value)  # whole: the range check below holds it to COUNT_MAX too
        else:
            out = int(value.__index__())  # type: ignore[union-attr]
    except BarError:
        raise
    except Exception:
        raise bar_error(field, value, "must be a whole number >= 0") from None
    if not 0 <= out <= COUNT_MAX:
        raise bar_error(field, value, "must be a whole number >= 0"
                        + ("" if out < 0 else f" and <= {COUNT_MAX}"))
    return out


def check_bar(ts: Any, equity: Any, realized: Any, unrealized: Any, notional: Any,
              breaches: Any, warnings: Any, positions: Any) -> tuple[Any, ...]:
    """Every field validated and converted; raises BarError naming the first bad one."""
    t = ts if type(ts) is float and TS_MIN <= ts < TS_MAX else \
        to_unix(ts)
    if type(equity) is not float or not -_INF < equity < _INF:
        equity = number(equity, "equity")
    if realized is not None and (type(realized) is not float or
                                 not -_INF < realized < _INF):
        realized = number(realized, "realized_pnl")
    if unrealized is not None and (type(unrealized) is not float or
                                   not -_INF < unrealized < _INF):
        unrealized = number(unrealized, "unrealized_pnl")
    if type(notional) is not float:
        notional = number(notional, "traded_notional")
    if not 0.0 <= notional < _INF:
        raise bar_error("traded_notional", notional, "must be a finite number >= 0")
    if type(breaches) is not int or not 0 <= breaches <= COUNT_MAX:
        breaches = count(breaches, "risk_breaches")
    if type(warnings) is not int or not 0 <= warnings <= COUNT_MAX:
        warnings = count(warnings, "risk_warnings")
    if positions is not None and (type(positions) is not int or
                                  not 0 <= positions <= COUNT_MAX):
        positions = count(positions, "open_positions")
    return t, equity, realized, unrealized, notional, breaches, warnings, positions
