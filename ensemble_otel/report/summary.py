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
    last_bar_ts: str
    start_equity: float
    final_equity: float
    peak_equity: float
    total_pnl: float
    max_drawdown: float
    total_turnover: float
    traded_notional: float
    breaches: int
    warnings: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(records: list[dict[str, Any]]) -> Summary | None:
    """Totals over `records` (oldest first); None when there are none."""
    if not records:
        return None
    first, last = records[0], records[-1]
    return Summary(
        buckets=len(records),
        bars=sum(r["bars"] for r in records),
        first_ts=first["ts"],
        last_ts=last["ts"],
        last_bar_ts=last["last_bar_ts"],
        start_equity=float(first["equity"] - first["pnl"]),
        final_equity=float(last["equity"]),
        peak_equity=float(max(r["peak_equity"] for r in records)),
        total_pnl=math.fsum(r["pnl"] for r in records),
        max_drawdown=float(max(r["max_drawdown"] for r in records)),
        total_turnover=math.fsum(r["turnover"] for r in records),
        traded_notional=math.fsum(r["traded_notional"] for r in records),
        breaches=sum(r["risk_breaches"] for r in records),
        warnings=sum(r["risk_warnings"] for r in records),
    )
