"""The view table: every health metric and record level as a function of one state view.

A state view is an immutable tuple of the ledger's fields (``STATE_ATTRS``), taken in one
C call (``take``). ``LEVELS`` maps each unattributed metric to a function of a view;
``PER_PERIOD`` each per-period metric to a bucket field. The observable instruments
(``register``) and the JSONL record (``record``) both read these tables, so what OTLP
exports and what the files hold agree by construction: a record's levels are the metrics
of the view taken at its bucket's last bar.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from ensemble_otel._time import iso
from ensemble_otel.contract import registry as names
from ensemble_otel.health.buckets import BUCKET_STATE, Bucket
from ensemble_otel.health.ledger import turnover

# The first six are the view's key: a bar stores _writing first and last_ts last, a bucket
# close sets _rolling while it runs and counts itself in _rolls, a dropped or refused bar
# counts itself; so a view is whole (holds whole bars) when _writing == last_ts and not
# _rolling, and two whole views with equal keys are equal (see copies.py).
STATE_ATTRS: tuple[str, ...] = (
    "_writing", "last_ts", "_rolling", "_rolls", "dropped", "refused",
    "equity", "first_equity", "peak", "max_drawdown", "realized", "unrealized", "positions",
    "_c_bars", "_c_notional", "_c_breaches", "_c_warnings",
    "_h_bars", "_h_notional", "_h_breaches", "_h_warnings", "_unwritten",
    *("_hour." + k for k in BUCKET_STATE), *("_day." + k for k in BUCKET_STATE),
)
KEY = 6  # the key is view[:KEY]
AT: dict[str, int] = {name: i for i, name in enumerate(STATE_ATTRS)}
take: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*STATE_ATTRS)
take_key: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*STATE_ATTRS[:KEY])
UNWRITTEN = AT["_unwritten"]
EQUITY = AT["equity"]
_PEAK = AT["peak"]

View = tuple[Any, ...]
# (owner, attribute) of each view value: the ledger's own, or its "_hour"/"_day" bucket's
_WHERE = tuple((name.rpartition(".")[0], name.rpartition(".")[2]) for name in STATE_ATTRS)


def put(ledger: Any, view: View) -> None:
    """Set the ledger's fields to ``view`` (the inverse of ``take``)."""
    if len(view) != len(_WHERE):
        raise ValueError(f"a view has {len(_WHERE)} values, not {len(view)}")
    for (owner, attr), value in zip(_WHERE, view):  # noqa: B905 - length checked above
        setattr(getattr(ledger, owner) if owner else ledger, attr, value)


def whole(view: View) -> bool:
    return bool(view[0] == view[1] and not view[2])


def order(view: View) -> tuple[float, int, int, int, bool]:
    """Whole views in the order they were taken (later bars, closes, drops, appends)."""
    return (view[1], view[3], view[4], view[5], not view[UNWRITTEN])


_FIELD_AT: dict[Callable[[View], Any], int] = {}  # each plain-field view function -> index


def _field(key: str) -> Callable[[View], Any]:
    getter = operator.itemgetter(AT[key])
    _FIELD_AT[getter] = AT[key]
    return getter


def _total(closed: str, open_hour: str) -> Callable[[View], Any]:
    i, j = AT[closed], AT[open_hour]
    return lambda v: v[i] + v[j]


def drawdown(v: View) -> float:
    """``1 - equity / peak`` when peak > 0, else 0 (not capped: above 1 equity < 0)."""
    equity, peak = v[EQUITY], v[_PEAK]
    return 0.0 if peak <= 0.0 else 1.0 - equity / peak


# metric name -> value at the view (None: no point); all None before the first bar
LEVELS: dict[str, Callable[[View], Any]] = {
    names.EQUITY: _field("equity"),
    names.EQUITY_PEAK: _field("peak"),
    names.DRAWDOWN: drawdown,
    names.DRAWDOWN_MAX: _field("max_drawdown"),
    names.PNL_REALIZED: _field("realized"),
    names.PNL_UNREALIZED: _field("unrealized"),
    names.POSITIONS_OPEN: _field("positions"),
    names.BAR_TIMESTAMP: _field("last_ts"),
    names.BARS: _total("_c_bars", "_h_bars"),
    names.BARS_DROPPED: _field("dropped"),
    names.BARS_REFUSED: _field("refused"),
    names.TRADED_NOTIONAL: _total("_c_notional", "_h_notional"),
    names.RISK_BREACHES: _total("_c_breaches", "_h_breaches"),
    names.RISK_WARNINGS: _total("_c_warnings", "_h_warnings"),
}

# per-period metric -> the field of each period's bucket holding its last record's value
PER_PERIOD: dict[str, str] = {
    names.BUCKET_PNL: "last_pnl",
    names.BUCKET_TURNOVER: "last_turnover",
    names.BUCKET_START: "last_start",
}
_PERIOD_AT = {name: ((AT["_hour." + key], {names.PERIOD_ATTRIBUTE: "1h"}),
                     (AT["_day." + key], {names.PERIOD_ATTRIBUTE: "24h"}))
              for name, key in PER_PERIOD.items()}

# record field -> the metric whose view function gives it
RECORD_LEVELS: dict[str, str] = {
    "equity": names.EQUITY,
    "peak_equity": names.EQUITY_PEAK,
    "drawdown": names.DRAWDOWN,
    "max_drawdown": names.DRAWDOWN_MAX,
    "realized_pnl": names.PNL_REALIZED,
    "unrealized_pnl": names.PNL_UNREALIZED,
    "open_positions": names.POSITIONS_OPEN,
}
# the record's plain levels in one C call: the indices of their view functions in the table
# (a level that stops being a plain field fails here, at import)
_PLAIN = ("equity", "peak_equity", "max_drawdown", "realized_pnl", "unrealized_pnl",
          "open_positions")
_PLAIN_GET = operator.itemgetter(*(_FIELD_AT[LEVELS[RECORD_LEVELS[k]]] for k in _PLAIN))
_DD = LEVELS[RECORD_LEVELS["drawdown"]]
if set(RECORD_LEVELS) != {*_PLAIN, "drawdown"}:
    raise ImportError("every record level but drawdown must be a plain field of the view")


def record(b: Bucket, view: View, first_equity: float | None, refused: int,
           strategy_id: str, schema_version: str) -> dict[str, Any]:
    """The JSONL record of closed bucket ``b``; levels from ``view`` (its last bar)."""
    equity, peak, max_dd, realized, unrealized, positions = _PLAIN_GET(view)
    prev = b.prev_close if b.prev_close is not None else first_equity
    assert prev is not None
    notional = b.notional
    # bar times formatted once each (an hour of one bar, or a first bar at the hour's
    # start, shares the text)
    start, first, last = b.start, b.first_ts, b.last_ts
    ts = iso(start)
    first_text = ts if first == start else iso(first)
    return {
        "ts": ts,
        "period": b.period,
        "strategy_id": strategy_id,
        "schema_version": schema_version,
        "equity": equity,
        "peak_equity": peak,
        "drawdown": _DD(view),
        "max_drawdown": max_dd,
        "pnl": equity - prev,
        "turnover": turnover(notional, equity),
        "traded_notional": notional,
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "open_positions": positions,
        "risk_breaches": b.breaches,
        "risk_warnings": b.warnings,
        "bars": b.bars,
        "bars_refused": refused,
        "first_bar_ts": first_text,
        "last_bar_ts": first_text if last == first else iso(last),
    }


def register(meter: Meter, reader: Callable[[int], Callable[[], View]]) -> None:
    """Make the observable instruments; callback ``i`` reads ``reader(i)()`` through the
    table (see copies.py: one view per collection, whatever order the SDK calls the
    callbacks in)."""
    for i, (name, fn) in enumerate(LEVELS.items()):
        _instrument(meter, name, _level_callback(fn, reader(i)))
    for i, (name, at) in enumerate(_PERIOD_AT.items(), start=len(LEVELS)):
        _instrument(meter, name, _period_callback(at, reader(i)))


def _instrument(meter: Meter, name: str, callback: Any) -> None:
    spec = names.METRICS_BY_NAME[name]
    create = (meter.create_observable_counter if spec.instrument == "observable_counter"
              else meter.create_observable_gauge)
    create(name, callbacks=[callback], unit=spec.unit, description=spec.description)


def _level_callback(fn: Callable[[View], Any], read: Callable[[], View]) -> Any:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        v = read()
        if v[EQUITY] is None:  # before the first bar
            return ()
        value = fn(v)
        return () if value is None else (Observation(value),)

    return callback


def _period_callback(at: tuple[tuple[int, dict[str, str]], ...], read: Callable[[], View]) -> Any:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        v = read()
        return [Observation(v[i], attrs) for i, attrs in at if v[i] is not None]

    return callback
