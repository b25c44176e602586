"""JSON events with strategy metadata: a JSONL line each, and an OTel log record."""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from opentelemetry._logs import Logger, SeverityNumber

from ensemble_otel.errors import EventError
from ensemble_otel.jsonl import JsonlAppender
from ensemble_otel.settings import Settings

EVENT_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
RESERVED = ("ts", "event", "strategy_id", "schema_version")
_RESERVED = frozenset(RESERVED)
_PLAIN = frozenset((str, int, bool, type(None)))  # values that are always valid JSON
_NAMES_KEPT = 4096  # event names already checked (a bot uses a handful)
_DIGITS3 = tuple(f"{i:03d}" for i in range(1000))  # microseconds as two table look-ups
_OPTS = orjson.OPT_APPEND_NEWLINE


class EventLog:
    """``emit(event, **fields)`` appends one record and emits one log record.

    The record is ``{"ts", "event", "strategy_id", "schema_version", ...fields}``. Fields the
    caller sets are kept as given; a caller field named like a metadata field is an error
    rather than being silently overwritten.
    """

    def __init__(
        self, settings: Settings, *, appender: JsonlAppender, logger: Logger | None
    ) -> None:
        self.settings = settings
        self._appender = appender
        self._logger = logger
        self._dir: Path = settings.root / "logs" / "events" / settings.strategy_id
        self._meta = {
            "strategy_id": settings.strategy_id,
            "schema_version": settings.schema_version,
        }
        self.active = True  # False in a forked child that must not write the parent's files
        self._names: set[str] = set()
        self._second = -1  # the wall-clock second of the last event ...
        self._prefix = ""  # ... as "YYYY-MM-DDTHH:MM:SS"
        self._path = self._dir

    def emit(self, event: str, /, **fields: Any) -> dict[str, Any]:
        """Write one event; return the record. Raises :class:`EventError` on bad input."""
        if type(event) is not str or event not in self._names:
            self._check_name(event)
        if fields:
            if not _RESERVED.isdisjoint(fields):
                key = next(k for k in RESERVED if k in fields)
                raise EventError(key, fields[key], "is set by ensemble-otel; use another name")
            for value in fields.values():
                kind = type(value)
                if kind is float:
                    if value - value != 0.0:
                        self._refuse_non_finite(fields)
                elif kind not in _PLAIN and not _finite(value):
                    self._refuse_non_finite(fields)
        now = time.time()
        micros = int(now * 1e6)
        second, micros = divmod(micros, 1_000_000)
        if second != self._second:  # format the date and time once a second
            self._prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S.")
            self._path = self._dir / f"{self._prefix[:10]}.jsonl"
            self._second = second
        ts = self._prefix + _DIGITS3[micros // 1000] + _DIGITS3[micros % 1000] + "Z"
        record = {"ts": ts, "event": event, **self._meta, **fields}
        try:
            line = orjson.dumps(record, option=_OPTS)
        except TypeError as exc:
            bad = _first_unserialisable(fields)
            raise EventError(bad, fields.get(bad), f"must be JSON-serialisable ({exc})") from None
        if not self.active:
            return record
        self._appender.append(self._path, line)
        if self._logger is not None:
            self._logger.emit(
                timestamp=int(now * 1e9),
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                body=_otel_value(fields),
                attributes={"event.name": event},
                event_name=event,
            )
        return record


    def _check_name(self, event: object) -> None:
        if not isinstance(event, str) or not EVENT_NAME_RE.fullmatch(event):
            raise EventError("event", event, "must be a name: [A-Za-z_][A-Za-z0-9_.:-]{0,127}")
        if len(self._names) < _NAMES_KEPT:
            self._names.add(event)

    @staticmethod
    def _refuse_non_finite(fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if not _finite(value):
                raise EventError(key, value, "must not hold NaN or infinity (not valid JSON)")


def _finite(value: Any) -> bool:
    if type(value) is float:
        return value - value == 0.0
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def _first_unserialisable(fields: dict[str, Any]) -> str:
    for key, value in fields.items():
        try:
            orjson.dumps(value)
        except TypeError:
            return key
    return "fields"


def _otel_value(value: Any) -> Any:
    """Log-record bodies take str/bool/int/float/bytes, lists and string-keyed maps."""
    if isinstance(value, dict):
        return {str(k): _otel_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_otel_value(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float, bytes)):
        return value
    return orjson.dumps(value).decode()


def bridge_stdlib_logging(logger_provider: Any, level: int = logging.INFO) -> logging.Handler:
    """Send the bot's stdlib ``logging`` records to OTel logs (opt-in)."""
    from opentelemetry.sdk._logs import LoggingHandler

    handler = LoggingHandler(level=level, logger_provider=logger_provider)
    logging.getLogger().addHandler(handler)
    return handler
