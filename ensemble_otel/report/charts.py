"""The charts each strategy gets: one definition, used by the HTML and by the page script.

Every series is a field of the health snapshot record (checked against the registry at
import). The page script draws them with uPlot; `kind` picks a line, an area or bars, and
`format` how the values read on the axis and in the legend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ensemble_otel.contract.registry import HEALTH_1H, HEALTH_24H

SeriesKind = Literal["line", "dashed", "area", "bars", "signed_bars"]
ValueFormat = Literal["money", "percent", "ratio", "count"]


@dataclass(frozen=True, slots=True)
class Series:
    field: str
    label: str
    kind: SeriesKind
    color: str


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    format: ValueFormat
    series: tuple[Series, ...]
    invert: bool = False  # values grow downward (drawdown "under water")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


CHARTS: tuple[Chart, ...] = (
    Chart("equity", "Equity and running peak", "money", (
        Series("equity", "Equity", "line", "#1f5fa8"),
        Series("peak_equity", "Running peak", "dashed", "#6b6b6b"),
    )),
    Chart("drawdown", "Drawdown and max drawdown", "percent", (
        Series("drawdown", "Drawdown", "area", "#c62828"),
        Series("max_drawdown", "Max drawdown", "dashed", "#6d1b1b"),
    ), invert=True),
    Chart("pnl", "PnL per bucket", "money", (
        Series("pnl", "PnL", "signed_bars", "#2e7d32"),
    )),
    Chart("turnover", "Turnover per bucket (traded notional / equity)", "ratio", (
        Series("turnover", "Turnover", "bars", "#6a3d9a"),
    )),
    Chart("risk", "Risk warnings and breaches per bucket", "count", (
        Series("risk_warnings", "Warnings", "bars", "#e08a00"),
        Series("risk_breaches", "Breaches", "bars", "#c62828"),
    )),
)

NEGATIVE_COLOR = "#c62828"  # signed_bars below zero

# Columns embedded per strategy: every charted field, plus what tests and tooltips use.
COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(
    [s.field for c in CHARTS for s in c.series] + ["traded_notional", "bars"]
))

_SNAPSHOT_FIELDS = set(HEALTH_1H.field_names()) & set(HEALTH_24H.field_names())
_unknown = [c for c in COLUMNS if c not in _SNAPSHOT_FIELDS]
if _unknown:  # pragma: no cover - guards against a registry rename
    raise RuntimeError(f"report charts use fields the registry does not define: {_unknown}")
