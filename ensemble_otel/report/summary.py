"""Per-strategy totals, computed from every record in the selection (never downsampled)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Summary:
    """The numbers in a strategy's summary row.

    max_drawdown is the largest `max_drawdown` among the selected records: the running
    maximum since the strategy's first bar, as of the last selected bucket (it includes
    drawdowns inside a bucket, which the bucket-end `drawdown` series alone can miss).
    """

    buckets: int
    bars: int
    first_ts: str
    last_ts: str
    last_bar_ts: str | None
    start_equity: float | None
    final_equity: float | None
    peak_equity: float | None
    total_pnl: float | None
    max_drawdown: float | None
    total_turnover: float | None
    traded_notional: float | None
    breaches: int
    warnings: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _values(records: list[dict[str, Any]], name: str) -> list[float]:
    """The numbers a field holds (a record without it, or with null, adds nothing)."""
    out = []
    for r in records:
        v = r.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(v)
    return out


def _total(records: list[dict[str, Any]], name: str) -> float | None:
    values = _values(records, name)
    if not values:
        return None
    try:
        return math.fsum(values)
    except OverflowError:  # values near the float limits: the plain sum says inf
        return float(sum(float(v) for v in values))


def _peak(records: list[dict[str, Any]], name: str) -> float | None:
    values = _values(records, name)
    return float(max(values)) if values else None


def _last(records: list[dict[str, Any]], name: str) -> Any:
    return next((r[name] for r in reversed(records) if r.get(name) is not None), None)


def summarize(records: list[dict[str, Any]]) -> Summary | None:
    """Totals over `records` (oldest first); None when there are none. A record without a
    field (older or partial) leaves that field's totals to the records that have it."""
    if not records:
        return None
    first = records[0]
    equity, pnl = first.get("equity"), first.get("pnl")
    start = (float(equity) - float(pnl)
             if isinstance(equity, (int, float)) and isinstance(pnl, (int, float)) else None)
    final = _last(records, "equity")
    return Summary(
        buckets=len(records),
        bars=int(sum(_values(records, "bars"))),
        first_ts=first["ts"],
        last_ts=records[-1]["ts"],
        last_bar_ts=_last(records, "last_bar_ts"),
        start_equity=start,
        final_equity=None if final is None else float(final),
        peak_equity=_peak(records, "peak_equity"),
        total_pnl=_total(records, "pnl"),
        max_drawdown=_peak(records, "max_drawdown"),
        total_turnover=_total(records, "turnover"),
        traded_notional=_total(records, "traded_notional"),
        breaches=int(sum(_values(records, "risk_breaches"))),
        warnings=int(sum(_values(records, "risk_warnings"))),
    )
