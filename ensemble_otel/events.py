"""JSON events with strategy metadata: a JSONL line each, and an OTel log record."""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import time
import traceback
from collections.abc import Iterable
from datetime import date, datetime, timezone
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import orjson
from opentelemetry._logs import Logger, SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from ensemble_otel._ratelog import RateLimitedLog
from ensemble_otel._time import iso_micro
from ensemble_otel.contract.registry import EVENT, EVENTS_REFUSED, METRICS_BY_NAME
from ensemble_otel.errors import EventError
from ensemble_otel.jsonl import JsonlAppender
from ensemble_otel.paths import record_path
from ensemble_otel.settings import Settings

_log = logging.getLogger("ensemble_otel")
EVENT_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
RESERVED = ("ts", "event", "strategy_id", "schema_version")
_NAMES_KEPT = 4096  # event names already checked (a bot uses a handful)
_D3 = tuple(f"{i:03d}" for i in range(1000))  # microseconds as two table look-ups
_D3Z = tuple(f"{i:03d}Z" for i in range(1000))
_NULL = b"null"  # orjson writes NaN and infinity as null
_OPTS = orjson.OPT_APPEND_NEWLINE
_TIMES = (datetime, date, dt_time)


def _default(value: Any) -> Any:
    # date and time values are written by Python's isoformat, which checks what a tzinfo
    # returns (orjson's own path crashes the process when utcoffset() raises, and writes a
    # wrong offset when it returns a bad one)
    if isinstance(value, _TIMES):
        return value.isoformat()
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _dumps(value: Any, option: int = 0) -> bytes:
    """orjson.dumps with date and time values through :func:`_default` (see there)."""
    return orjson.dumps(value, default=_default,
                        option=option | orjson.OPT_PASSTHROUGH_DATETIME)


# Size bounds of one event (documented in docs/reference.md, "Events"):
# - the JSONL line of a record is at most MAX_RECORD_BYTES; a larger event is refused whole
#   (counted, logged; strict mode raises), so a file never holds a line a reader must skip;
# - in the OTel log record a string longer than MAX_FIELD_BYTES (UTF-8) is cut there and
#   ends with TRUNCATED_MARKER: one huge field cannot make a whole OTLP batch fail.
#   The OTel log record as a whole is bounded too (MAX_OTEL_RECORD_BYTES): past that its
#   body is the record's JSON cut there, with the marker.
MAX_RECORD_BYTES = 1 << 20
MAX_FIELD_BYTES = 64 << 10
MAX_OTEL_RECORD_BYTES = 256 << 10
TRUNCATED_MARKER = "...[truncated by ensemble-otel: {n} bytes]"
_REFUSAL_LOG_INTERVAL = 60.0


class Refused(dict):  # type: ignore[type-arg]
    """What ``emit`` returns for an event it refused: an empty (falsy) mapping whose
    ``field``, ``value`` and ``rule`` say why. Nothing of the event was written."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        super().__init__()
        self.field = field
        self.value = value
        self.rule = rule

    def __repr__(self) -> str:
        return f"Refused(field={self.field!r}, rule={self.rule!r})"


class EventLog:
    """``emit(event, **fields)`` appends one record and emits one log record.

    The record is ``{"ts", "event", "strategy_id", "schema_version", ...fields}``. Fields the
    caller sets are kept as given; a caller field named like a metadata field is an error
    rather than being silently overwritten.

    A bad event (name, reserved field, value JSON cannot hold, NaN, a record over
    :data:`MAX_RECORD_BYTES`) is refused: by default ``emit`` returns a :class:`Refused`,
    counts it (``ensemble.events.refused``) and logs it once a minute with the field, value
    and rule; with ``settings.strict`` it raises :class:`EventError`.
    """

    def __init__(
        self, settings: Settings, *, appender: JsonlAppender, logger: Logger | None,
        meter: Meter | None = None,
    ) -> None:
        self.settings = settings
        self.strict = settings.strict
        self._appender = appender
        self._append = appender.append
        self._logger = logger
        self._root: Path = settings.root
        self._sid = settings.strategy_id
        self._sv = settings.schema_version
        # where a record's fields start in its line, at the earliest (escaping only
        # lengthens): a NaN written as null can only be found from there
        self._fields_at = len(_dumps({"ts": "0" * 27, "event": "", "strategy_id": self._sid,
                                      "schema_version": self._sv})) - 1
        self.active = True  # False in a forked child that must not write the parent's files
        self.refused = 0
        self._refusals = RateLimitedLog(_log, _REFUSAL_LOG_INTERVAL)
        self._names: set[str] = set()
        # the wall-clock second of the last event: (its first microsecond, its date and time
        # as "YYYY-MM-DDTHH:MM:SS.", the day's file), replaced whole once a second
        self._clock: tuple[int, str, Path] = (-(10**18), "", settings.root)
        if meter is not None:
            spec = METRICS_BY_NAME[EVENTS_REFUSED]
            meter.create_observable_counter(
                spec.name, callbacks=[self._refused_callback], unit=spec.unit,
                description=spec.description)

    def _refused_callback(self, options: CallbackOptions) -> Iterable[Observation]:
        return (Observation(self.refused),)

    def emit(self, event: str, /, **fields: Any) -> dict[str, Any]:
        """Write one event; return the record written.

        A bad event returns a :class:`Refused` (empty, falsy) and writes nothing; in strict
        mode it raises :class:`EventError` instead.
        """
        try:
            return self._emit(event, fields)
        except EventError as exc:
            if self.strict:
                raise
            return self._refuse(exc.field, exc.value, exc.rule)
        except Exception as exc:  # anything a value can raise (a __float__, a tzinfo, ...)
            if self.strict:
                raise EventError("fields", None, f"cannot be written: {_describe(exc)}") from exc
            return self._refuse("fields", None, f"cannot be written: {_describe(exc)}")

    def _emit(self, event: str, fields: dict[str, Any]) -> dict[str, Any]:
        if type(event) is not str or event not in self._names:
            self._check_name(event)
        ns = time.time_ns()
        start, prefix, path = self._clock
        micros = ns // 1000 - start
        if not 0 <= micros < 1_000_000:  # a new second: format the date and time once
            start, prefix, path = self._clock = self._second(ns // 1000)
            micros = ns // 1000 - start
        record = {"ts": prefix + _D3[micros // 1000] + _D3Z[micros % 1000], "event": event,
                  "strategy_id": self._sid, "schema_version": self._sv, **fields}
        if len(record) != len(fields) + 4:  # a field named like the metadata replaced it
            key = next(k for k in RESERVED if k in fields)
            raise EventError(key, fields[key], "is set by ensemble-otel; use another name")
        try:
            line = _dumps(record, option=_OPTS)
        except TypeError as exc:
            bad = _first_unserialisable(fields)
            raise EventError(bad, fields.get(bad), f"must be JSON-serialisable ({exc})") from None
        if line.find(_NULL, self._fields_at) >= 0:  # None, or NaN/infinity written as null
            self._refuse_non_finite(fields)
        if len(line) > MAX_RECORD_BYTES:
            raise EventError("event", event, f"record of {len(line)} bytes is over the "
                                             f"{MAX_RECORD_BYTES}-byte limit of one event")
        if not self.active:
            return record
        body = None
        if self._logger is not None:  # before the append: nothing is written if it fails
            body = _otel_value(fields)
            if len(line) > MAX_FIELD_BYTES:  # only then can a string be over the limit
                body = _bounded(body, line)
        self._append(path, line)
        if self._logger is not None:
            try:
                self._logger.emit(
                    timestamp=ns,
                    severity_number=SeverityNumber.INFO,
                    severity_text="INFO",
                    body=body,
                    attributes={"event.name": event},
                    event_name=event,
                )
            except Exception as exc:  # the line is written; OTLP is best effort
                self._log_refusal("the OTel log record", event, f"was not sent: {exc}")
        return record

    def _refuse(self, field: str, value: object, rule: str) -> Refused:
        self.refused += 1
        self._log_refusal(field, value, rule)
        return Refused(field, value, rule)

    def _log_refusal(self, field: str, value: object, rule: str) -> None:
        """At most one line a minute; it says how many were held back since the last."""
        held = self._refusals.take()
        if held is None:
            return
        _log.warning("ensemble-otel events: event refused, nothing written: %s=%s: %s "
                     "(%d more held back; one such message a minute; strict mode raises)",
                     field, _short_repr(value), rule, held)

    def _second(self, micros: int) -> tuple[int, str, Path]:
        second = micros // 1_000_000
        when = datetime.fromtimestamp(second, tz=timezone.utc)
        prefix = iso_micro(second)[:-7]  # "YYYY-MM-DDTHH:MM:SS."
        return second * 1_000_000, prefix, record_path(self._root, EVENT, self._sid, when)

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


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"[:200]
    except Exception:  # an exception whose __str__ raises
        return type(exc).__name__


def _short_repr(value: object) -> str:
    """A repr for a log line: bounded, and never raising."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} whose repr raises>"
    return text if len(text) <= 200 else text[:200] + "..."


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes with the marker, or as it is when it fits."""
    if len(text) <= limit // 4:
        return text
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    kept = raw[:limit].decode("utf-8", "ignore")
    return kept + TRUNCATED_MARKER.format(n=len(raw) - len(kept.encode()))


def _strings_cut(value: Any) -> Any:
    if isinstance(value, str):
        return _cut(value, MAX_FIELD_BYTES)
    if isinstance(value, dict):
        return {k: _strings_cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings_cut(v) for v in value]
    return value


def _bounded(body: Any, line: bytes) -> Any:
    """The OTel body of a large record: every string over MAX_FIELD_BYTES cut, and the
    whole over MAX_OTEL_RECORD_BYTES replaced by the record's JSON cut there."""
    cut = _strings_cut(body)
    if len(_dumps(cut)) <= MAX_OTEL_RECORD_BYTES:
        return cut
    return _cut(line.decode(), MAX_OTEL_RECORD_BYTES)


def _finite(value: Any) -> bool:
    """False when ``value`` holds a NaN or an infinity anywhere orjson would write it."""
    if isinstance(value, float):
        return value - value == 0.0
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, enum.Enum):
        return _finite(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(_finite(getattr(value, f.name)) for f in dataclasses.fields(value))
    return True


def _first_unserialisable(fields: dict[str, Any]) -> str:
    for key, value in fields.items():
        try:
            _dumps(value)
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
    return _dumps(value).decode()


_SEVERITY_BANDS = (SeverityNumber.DEBUG, SeverityNumber.INFO, SeverityNumber.WARN,
                   SeverityNumber.ERROR, SeverityNumber.FATAL)
_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}  # the OTel names of these two
_ATTRIBUTE_TYPES = (str, bool, int, float)
# what a logging.LogRecord always carries; anything else came from ``extra=``
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


def severity(levelno: int) -> SeverityNumber:
    """The OTel severity of a stdlib level: DEBUG 10 -> DEBUG, INFO 20 -> INFO, WARNING 30 ->
    WARN, ERROR 40 -> ERROR, CRITICAL 50 -> FATAL; levels in between take the band's 2-4."""
    if levelno < logging.DEBUG:
        return SeverityNumber.UNSPECIFIED
    band = min(levelno // 10, 5) - 1
    return SeverityNumber(_SEVERITY_BANDS[band].value + min(levelno - (band + 1) * 10, 3))


class OtelLoggingHandler(logging.Handler):
    """Sends stdlib ``logging`` records to OTel logs through ``logger_provider``.

    One OTel logger per stdlib logger name (the instrumentation scope); body = the formatted
    message (the handler's formatter when one is set, else the message with its arguments);
    severity from the level; attributes ``code.file.path``, ``code.function.name``,
    ``code.line.number``, ``exception.type``/``message``/``stacktrace`` when the record has
    exception info, and the record's ``extra`` fields. Records of the ``opentelemetry``
    loggers are not sent (an exporter failing to send would feed itself).
    """

    def __init__(self, logger_provider: Any, level: int = logging.NOTSET) -> None:
        super().__init__(level=level)
        self._provider = logger_provider
        self._loggers: dict[str, Logger] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("opentelemetry"):
            return
        try:
            logger = self._loggers.get(record.name)
            if logger is None:
                logger = self._loggers[record.name] = self._provider.get_logger(record.name)
            body = self.format(record) if self.formatter is not None else record.getMessage()
            logger.emit(
                timestamp=int(record.created * 1e9),
                observed_timestamp=time.time_ns(),
                context=get_current(),
                severity_number=severity(record.levelno),
                severity_text=_SEVERITY_TEXT.get(record.levelname, record.levelname),
                body=body,
                attributes=_log_attributes(record),
            )
        except Exception:
            self.handleError(record)


def _log_attributes(record: logging.LogRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "code.file.path": record.pathname,
        "code.function.name": record.funcName,
        "code.line.number": record.lineno,
    }
    for key, value in vars(record).items():
        if key not in _RECORD_FIELDS:
            attributes[key] = value if isinstance(value, _ATTRIBUTE_TYPES) else repr(value)
    if record.exc_info and record.exc_info[0] is not None:
        kind, exc, tb = record.exc_info
        attributes["exception.type"] = kind.__qualname__
        attributes["exception.message"] = str(exc)
        attributes["exception.stacktrace"] = "".join(
            traceback.format_exception(kind, exc, tb))
    return attributes


def bridge_stdlib_logging(logger_provider: Any, level: int = logging.INFO) -> logging.Handler:
    """Send the bot's stdlib ``logging`` records to OTel logs (opt-in)."""
    handler = OtelLoggingHandler(logger_provider, level=level)
    logging.getLogger().addHandler(handler)
    return handler
