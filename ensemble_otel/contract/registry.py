"""The telemetry contract: every metric, resource attribute and JSONL record field, once.

Code, JSON Schemas, docs, dashboards and alert rules take their names from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Instrument = Literal["observable_gauge", "observable_counter"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One OpenTelemetry metric the package emits."""

    name: str
    instrument: Instrument
    unit: str
    description: str
    prometheus: str  # the series name after the collector's Prometheus translation
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a JSONL record."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "object"]
    description: str
    nullable: bool = False
    required: bool = True
    enum: tuple[str, ...] = ()
    minimum: float | None = None
    format: Literal["date-time"] | None = None  # date-time: ISO-8601 UTC, see UTC_TIMESTAMP_PATTERN
    pattern: str | None = None  # ECMA-262 / Python regex the whole string must match


@dataclass(frozen=True, slots=True)
class RecordKind:
    """A kind of JSONL (or JSON) record written under PAPER_TRADING_ROOT."""

    name: str
    path: str  # relative to PAPER_TRADING_ROOT, with {strategy_id} and date placeholders
    description: str
    fields: tuple[Field, ...]
    additional_fields: bool = False  # events carry the caller's own fields

    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


# --- metric names -------------------------------------------------------------------------

HEARTBEAT_TIMESTAMP = "ensemble.heartbeat.timestamp"
UPTIME = "ensemble.uptime"
EQUITY = "ensemble.equity"
EQUITY_PEAK = "ensemble.equity.peak"
DRAWDOWN = "ensemble.drawdown"
DRAWDOWN_MAX = "ensemble.drawdown.max"
PNL_REALIZED = "ensemble.pnl.realized"
PNL_UNREALIZED = "ensemble.pnl.unrealized"
POSITIONS_OPEN = "ensemble.positions.open"
BAR_TIMESTAMP = "ensemble.bar.timestamp"
BUCKET_PNL = "ensemble.bucket.pnl"
BUCKET_TURNOVER = "ensemble.bucket.turnover"
BUCKET_START = "ensemble.bucket.start"
BARS = "ensemble.bars"
BARS_DROPPED = "ensemble.bars.dropped"
BARS_REFUSED = "ensemble.bars.refused"
TRADED_NOTIONAL = "ensemble.traded_notional"
RISK_BREACHES = "ensemble.risk.breaches"
RISK_WARNINGS = "ensemble.risk.warnings"
EVENTS_REFUSED = "ensemble.events.refused"

PERIOD_ATTRIBUTE = "ensemble.period"

METRICS: tuple[Metric, ...] = (
    Metric(HEARTBEAT_TIMESTAMP, "observable_gauge", "s",
           "Unix time of the last heartbeat (wall clock).", "ensemble_heartbeat_timestamp_seconds"),
    Metric(UPTIME, "observable_gauge", "s",
           "Seconds since the telemetry started in this process.", "ensemble_uptime_seconds"),
    Metric(EQUITY, "observable_gauge", "{USD}",
           "Equity at the last bar.", "ensemble_equity"),
    Metric(EQUITY_PEAK, "observable_gauge", "{USD}",
           "Running maximum of equity since the strategy's first bar.", "ensemble_equity_peak"),
    Metric(DRAWDOWN, "observable_gauge", "1",
           "1 - equity / peak equity at the last bar.", "ensemble_drawdown_ratio"),
    Metric(DRAWDOWN_MAX, "observable_gauge", "1",
           "Running maximum of drawdown since the strategy's first bar.",
           "ensemble_drawdown_max_ratio"),
    Metric(PNL_REALIZED, "observable_gauge", "{USD}",
           "Realized PnL at the last bar, as reported by the bot.", "ensemble_pnl_realized"),
    Metric(PNL_UNREALIZED, "observable_gauge", "{USD}",
           "Unrealized PnL at the last bar, as reported by the bot.", "ensemble_pnl_unrealized"),
    Metric(POSITIONS_OPEN, "observable_gauge", "{position}",
           "Open positions at the last bar.", "ensemble_positions_open"),
    Metric(BAR_TIMESTAMP, "observable_gauge", "s",
           "Bar time (unix seconds) of the last bar accepted.", "ensemble_bar_timestamp_seconds"),
    Metric(BUCKET_PNL, "observable_gauge", "{USD}",
           "PnL of the last closed health bucket, per period.", "ensemble_bucket_pnl",
           (PERIOD_ATTRIBUTE,)),
    Metric(BUCKET_TURNOVER, "observable_gauge", "1",
           "Turnover of the last closed health bucket, per period.",
           "ensemble_bucket_turnover_ratio", (PERIOD_ATTRIBUTE,)),
    Metric(BUCKET_START, "observable_gauge", "s",
           "Start (bar time, unix seconds) of the last closed health bucket, per period.",
           "ensemble_bucket_start_seconds", (PERIOD_ATTRIBUTE,)),
    Metric(BARS, "observable_counter", "{bar}",
           "Bars accepted since the strategy's first bar.", "ensemble_bars_total"),
    Metric(BARS_DROPPED, "observable_counter", "{bar}",
           "Bars dropped because their time was not after the last bar's.",
           "ensemble_bars_dropped_total"),
    Metric(BARS_REFUSED, "observable_counter", "{bar}",
           "Bars refused because a field had a bad value (nothing of them was recorded).",
           "ensemble_bars_refused_total"),
    Metric(TRADED_NOTIONAL, "observable_counter", "{USD}",
           "Traded notional since the strategy's first bar.", "ensemble_traded_notional_total"),
    Metric(RISK_BREACHES, "observable_counter", "{breach}",
           "Risk-limit breaches since the strategy's first bar.", "ensemble_risk_breaches_total"),
    Metric(RISK_WARNINGS, "observable_counter", "{warning}",
           "Risk warnings since the strategy's first bar.", "ensemble_risk_warnings_total"),
    Metric(EVENTS_REFUSED, "observable_counter", "{event}",
           "Events refused for a bad name or value (or an oversized record) since this "
           "process started; nothing of them was written.", "ensemble_events_refused_total"),
)

METRICS_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}

# --- resource attributes ------------------------------------------------------------------

STRATEGY_ID_ATTRIBUTE = "ensemble.strategy.id"
SCHEMA_VERSION_ATTRIBUTE = "ensemble.schema.version"
ENVIRONMENT_ATTRIBUTE = "deployment.environment.name"

RESOURCE_ATTRIBUTES: dict[str, str] = {
    STRATEGY_ID_ATTRIBUTE: "Strategy id (ENSEMBLE_STRATEGY_ID); also strategy_id in every record.",
    SCHEMA_VERSION_ATTRIBUTE: "Telemetry schema version (ENSEMBLE_SCHEMA_VERSION), MAJOR.MINOR.",
    ENVIRONMENT_ATTRIBUTE: "paper or live (ENSEMBLE_ENVIRONMENT).",
    "service.name": "OTEL_SERVICE_NAME, else ensemble-bot.",
    "service.instance.id": "A UUID per process (a forked child gets its own).",
    "telemetry.distro.name": "ensemble-otel.",
    "telemetry.distro.version": "The installed ensemble-otel version.",
}

# --- JSONL record kinds -------------------------------------------------------------------

# Record-level formats (JSON Schema `pattern`; the same text works in Python's `re`).
# Keep STRATEGY_ID_PATTERN / SCHEMA_VERSION_PATTERN in step with settings.py (a test checks).
STRATEGY_ID_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SCHEMA_VERSION_PATTERN = r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$"
UTC_TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|\+00:00)$"
)

_META = (
    Field("strategy_id", "string", "Strategy id.", pattern=STRATEGY_ID_PATTERN),
    Field("schema_version", "string", "Telemetry schema version, MAJOR.MINOR.",
          pattern=SCHEMA_VERSION_PATTERN),
)

HEARTBEAT = RecordKind(
    "heartbeat",
    "logs/heartbeat/{strategy_id}.json",
    "The last heartbeat, replaced atomically at every beat.",
    (
        Field("ts", "string", "Time of the beat, ISO-8601 UTC.", format="date-time"),
        Field("unix", "number", "Time of the beat, unix seconds.", minimum=0),
        *_META,
        Field("state", "string", "Lifecycle state.",
              enum=("starting", "running", "stopping", "stopped")),
        Field("seq", "integer", "Beat number in this process, from 0.", minimum=0),
        Field("pid", "integer", "Process id.", minimum=0),
        Field("host", "string", "Host name."),
        Field("service_instance_id", "string", "service.instance.id of the process."),
        Field("uptime_s", "number", "Seconds since the telemetry started.", minimum=0),
        Field("interval_s", "number", "Configured heartbeat interval.", minimum=0),
        Field("environment", "string", "paper or live.", enum=("paper", "live")),
        Field("pid_start", "integer",
              "Start time of the process: field 22 of /proc/<pid>/stat (clock ticks since "
              "boot); with host and pid it names one process, so a reused pid is told "
              "apart. Null where /proc is not available; absent in older files.",
              nullable=True, required=False, minimum=0),
    ),
)

_SNAPSHOT_FIELDS = (
    Field("ts", "string", "Bucket start, ISO-8601 UTC.", format="date-time"),
    Field("period", "string", "Bucket length.", enum=("1h", "24h")),
    *_META,
    Field("equity", "number", "Equity at the bucket's last bar."),
    Field("peak_equity", "number", "Running maximum of equity since the first bar."),
    Field("drawdown", "number", "1 - equity / peak_equity at the bucket's last bar (0 while "
          "peak_equity <= 0; above 1 when equity is negative).", minimum=0),
    Field("max_drawdown", "number", "Running maximum of drawdown since the first bar.", minimum=0),
    Field("pnl", "number", "Equity at this bucket's last bar minus at the previous one's."),
    Field("turnover", "number", "traded_notional / |equity| at the bucket's last bar; null "
          "when that equity is 0.", nullable=True, minimum=0),
    Field("traded_notional", "number", "Sum of traded notional in the bucket.", minimum=0),
    Field("realized_pnl", "number", "Realized PnL at the bucket's last bar.", nullable=True),
    Field("unrealized_pnl", "number", "Unrealized PnL at the bucket's last bar.", nullable=True),
    Field("open_positions", "integer", "Open positions at the bucket's last bar.",
          nullable=True, minimum=0),
    Field("risk_breaches", "integer", "Risk breaches in the bucket.", minimum=0),
    Field("risk_warnings", "integer", "Risk warnings in the bucket.", minimum=0),
    Field("bars", "integer", "Bars the bucket saw.", minimum=1),
    Field("bars_refused", "integer", "Bars refused for a bad value since the previous record "
          "of this period.", minimum=0, required=False),
    Field("first_bar_ts", "string", "Time of the bucket's first bar, ISO-8601 UTC.",
          format="date-time"),
    Field("last_bar_ts", "string", "Time of the bucket's last bar, ISO-8601 UTC.",
          format="date-time"),
)

HEALTH_1H = RecordKind(
    "health_snapshot_1h",
    "logs/1h/health_snapshot/{strategy_id}/{YYYY-MM-DD}.jsonl",
    "One record per hour (bar time, UTC) that saw bars.",
    _SNAPSHOT_FIELDS,
)

HEALTH_24H = RecordKind(
    "health_snapshot_24h",
    "logs/24h/health_snapshot/{strategy_id}/{YYYY-MM}.jsonl",
    "One record per day (bar time, UTC) that saw bars.",
    _SNAPSHOT_FIELDS,
)

EVENT = RecordKind(
    "event",
    "logs/events/{strategy_id}/{YYYY-MM-DD}.jsonl",
    "One record per emit() call; the caller's fields follow the metadata. Size: the JSON "
    "line of a record is at most 1 MiB (1048576 bytes); a larger event is refused whole "
    "(nothing written, counted in ensemble.events.refused). In the OTel log record a string "
    "longer than 64 KiB (65536 bytes of UTF-8) is cut there and ends with "
    "'...[truncated by ensemble-otel: N bytes]' (the JSONL keeps it whole), and a body over "
    "256 KiB is replaced by the record's JSON cut the same way. A bad event (name, reserved "
    "field, value JSON cannot hold, NaN) is refused the same way; emit() then returns an "
    "empty, falsy Refused naming the field and rule (strict mode raises EventError).",
    (
        Field("ts", "string", "Wall-clock time of the event, ISO-8601 UTC.", format="date-time"),
        Field("event", "string", "Event name."),
        *_META,
    ),
    additional_fields=True,
)

RECORD_KINDS: tuple[RecordKind, ...] = (HEARTBEAT, HEALTH_1H, HEALTH_24H, EVENT)

# Files under PAPER_TRADING_ROOT that are not records (same placeholders as the kinds).
HEALTH_STATE_PATH = "state/health/{strategy_id}.json"  # + ".wal", its journal
STRATEGY_LOCK_PATH = "state/{strategy_id}.lock"
REPORT_PATH = "report.html"
RECORD_KINDS_BY_NAME: dict[str, RecordKind] = {k.name: k for k in RECORD_KINDS}

PERIOD_FIELD = "period"


def kind_period(kind: RecordKind) -> str | None:
    """The bucket period of a snapshot kind (the `period` value naming its directory)."""
    for f in kind.fields:
        if f.name == PERIOD_FIELD:
            segments = kind.path.split("/")
            return next((p for p in f.enum if p in segments), None)
    return None
