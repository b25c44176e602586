"""The data embedded in the page (`<script type="application/json" id="ensemble-data">`).

Columns carry every selected record at full precision: the page downsamples for drawing
only, and tests read these numbers back to compare them with the files.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from ensemble_otel._time import iso_seconds
from ensemble_otel.contract.registry import EVENT
from ensemble_otel.heartbeat import DEFAULT_MAX_SKEW, INTERVALS_PER_MAX_AGE

from .charts import CHARTS, COLUMNS, NEGATIVE_COLOR
from .load import Dataset, StrategyData
from .summary import summarize

PAYLOAD_VERSION = 1
UPLOT_VERSION = "1.6.32"
STALE_FACTOR = float(INTERVALS_PER_MAX_AGE)  # as `ensemble-otel heartbeat check`


def heartbeat_status(hb: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """The beat with its age, whether it is stale and whether it is from the future (ahead
    of this clock by more than the clock-skew allowance: no proof of life)."""
    if hb is None:
        return None
    age = now - float(hb["unix"])
    interval = float(hb.get("interval_s") or 0.0)
    stale = interval > 0 and age > STALE_FACTOR * interval
    future = -age > DEFAULT_MAX_SKEW
    return {**hb, "age_s": age if math.isfinite(age) else None, "stale": stale,
            "future": future}


def _displayable(event: dict[str, Any]) -> dict[str, Any]:
    """The event as listed; fields JSON cannot carry here (nesting too deep) are left out."""
    try:
        orjson.dumps(event)
    except orjson.JSONEncodeError as exc:
        meta = {k: event[k] for k in EVENT.field_names() if k in event}
        return {**meta, "fields_not_shown": str(exc)}
    return event


def _strategy(sd: StrategyData, now: float) -> dict[str, Any]:
    summary = summarize(sd.snapshots)
    columns: dict[str, list[Any]] = {"t": sd.times}
    for name in COLUMNS:
        columns[name] = [r.get(name) for r in sd.snapshots]  # null: a gap in the chart
    return {
        "id": sd.strategy_id,
        "notes": sd.notes,
        "heartbeat": heartbeat_status(sd.heartbeat, now),
        "summary": summary.to_json() if summary else None,
        "columns": columns,
        "events": {
            "count": sd.event_count,
            "names": dict(sd.event_names.most_common()),
            "latest": [_displayable(e) for e in sd.events],
        },
    }


def build(ds: Dataset, now: float) -> dict[str, Any]:
    v = ds.validation
    return {
        "version": PAYLOAD_VERSION,
        "generated_at": iso_seconds(now),
        "generated_unix": now,
        "root": str(ds.root),
        "period": ds.period,
        "from": iso_seconds(ds.start) if ds.start is not None else None,
        "to": iso_seconds(ds.end) if ds.end is not None else None,
        "problems": ds.problems,
        "charts": [c.to_json() for c in CHARTS],
        "negative_color": NEGATIVE_COLOR,
        "uplot_version": UPLOT_VERSION,
        "validation": {
            "files": len(v.files),
            "lines": v.lines,
            "bad": v.bad_total,
            "checked_with": v.checked_with,
            "validator_unavailable": v.validator_unavailable,
            "notes": v.notes,
            "per_file": [
                {"path": f.path, "kind": f.kind, "lines": f.lines, "bad": f.bad} for f in v.files
            ],
            "bad_lines": [
                {"path": b.path, "line": b.line, "reason": b.reason} for b in v.bad_lines
            ],
        },
        "strategies": [_strategy(sd, now) for sd in ds.strategies],
    }


def to_script_json(payload: dict[str, Any]) -> str:
    """JSON safe inside a <script> element.

    "<" only occurs inside JSON strings, so writing it as the escape "\\u003c" keeps the
    value and makes "</script>" and "<!--" impossible in the element's text.
    """
    return orjson.dumps(payload).decode().replace("<", "\\u003c")
