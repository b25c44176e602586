"""The health store: state file, journal, restore, and the exactly-once rules.

Files (under ``<root>/state/health/``): ``<strategy>.json`` holds a whole state (replaced
atomically by beats and shutdown); ``<strategy>.json.wal`` one line per bucket close since
(see :class:`~ensemble_otel.jsonl.JsonJournal`): the state view from before the close, as a
list, and the time of the bar that closed it (``close_line``); ``expand`` redoes the close
(closes.py) and makes the state document after it, the records it names included. Readers
also take a whole document, and the view after a close that earlier versions journalled
(view format 1). Each state carries a ``seq``: the newest of the file and the journal's
last whole line wins.

The rules that make every bucket's record reach its file exactly once:

1. write-ahead: a bucket close appends to the journal a line that gives the state after
   the close, its records (``unwritten``) included, before the records are appended;
2. on restore, a named record missing from its file (the file's last record starts
   earlier) is appended then;
3. a bucket whose start is not after the newest record on disk of its period is never
   written again, and a bar in an hour or a day already on disk is dropped;
4. with no readable state, the running levels (peak, max drawdown, last bar time, the
   previous close of each period) come from the newest record of each period.

``hook`` is called with the name of each step (``STEPS``) of a close and a save; tests set it
to stop the process at one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import operator
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ensemble_otel import paths, safe_fs
from ensemble_otel._ratelog import RateLimitedLog
from ensemble_otel._time import parse_iso
from ensemble_otel._validate_fields import check_field
from ensemble_otel.contract.registry import Field
from ensemble_otel.health.buckets import BUCKET_STATE, PERIODS
from ensemble_otel.health.checks import TS_MAX, TS_MIN
from ensemble_otel.health.closes import KINDS, Unwritten, file_name, redo
from ensemble_otel.health.views import AT, STATE_ATTRS, View
from ensemble_otel.jsonl import JsonJournal, JsonlAppender, dumps_line, last_line

_log = logging.getLogger("ensemble_otel")
_INF = math.inf
STATE_VERSION = 2  # 2: the day bucket and the totals exclude the open hour
JOURNAL_BYTES = 4 << 20
STEPS = ("close:before-journal", "close:after-journal", "close:between-appends",
         "close:after-appends", "save:before-replace", "save:after-replace")
_BUCKET_AT = {p: {k: AT[f"_{n}.{k}"] for k in BUCKET_STATE} for p, n in (("1h", "hour"),
                                                                          ("24h", "day"))}


def read_json_line(line: bytes) -> Any:
    return orjson.loads(line)


STATE_MAX_BYTES = 16 << 20  # a state file is kilobytes; a bigger one is not ours
AFTER_CLOSE, BEFORE_CLOSE = 1, 2  # view formats: the view after a close; before it, with t


def close_line(view: View, t: float, strategy_id: str, schema_version: str,
               seq: int) -> dict[str, Any]:
    """A bucket close's journal line: the view from before the close (a list in
    STATE_ATTRS order) and the time ``t`` of the bar that closed it, with what readers look
    at first beside them. Expanded by :func:`expand`."""
    return {"version": STATE_VERSION, "strategy_id": strategy_id, "seq": seq,
            "last_ts": view[_LAST_TS], "view_format": BEFORE_CLOSE, "close": t,
            "schema_version": schema_version, "view": view}


def expand(saved: Any) -> Any:
    """A saved state as the state document, whichever form it was saved in (a journalled
    close is redone). Raises ValueError naming what is wrong."""
    if not isinstance(saved, dict) or "view" not in saved:
        return saved
    values, form = saved["view"], saved.get("view_format")
    if (form not in (AFTER_CLOSE, BEFORE_CLOSE) or not isinstance(values, list)
            or len(values) != len(STATE_ATTRS)):
        raise ValueError(f"state view in an unknown form (view_format {form!r}, "
                         f"{len(values)} values)")
    values[_UNWRITTEN] = tuple(tuple(item) for item in values[_UNWRITTEN] or ())
    if values[_LAST_TS] is None:
        values[_LAST_TS] = -_INF
    strategy_id = saved.get("strategy_id")
    view = tuple(values)
    if form == BEFORE_CLOSE:
        view = _redo(view, saved, strategy_id)
    state = state_from(view, strategy_id)  # type: ignore[arg-type]
    state["seq"] = saved.get("seq", 0)
    return state


def _redo(view: View, saved: dict[str, Any], strategy_id: Any) -> View:
    """The view after the close a journal line names (its view checked first)."""
    t, schema_version = saved.get("close"), saved.get("schema_version")
    if type(t) not in (int, float) or not TS_MIN <= t < TS_MAX:
        raise ValueError(f"state close = {t!r} is not a bar time (unix seconds, "
                         f"{TS_MIN:g} <= t < {TS_MAX:g})")
    if not t > view[_LAST_TS]:
        raise ValueError(f"state close = {t!r} is not after the last bar of its view "
                         f"({view[_LAST_TS]!r})")
    if not isinstance(schema_version, str) or not isinstance(strategy_id, str):
        raise ValueError(f"state close: schema_version = {schema_version!r} and "
                         f"strategy_id = {strategy_id!r} must be text")
    check_state(state_from(view, strategy_id))
    return redo(view, float(t), strategy_id, schema_version)


_LAST_TS = AT["last_ts"]
_UNWRITTEN = AT["_unwritten"]
_HOUR_KEYS = tuple(_BUCKET_AT["1h"])
_HOUR_GET = operator.itemgetter(*_BUCKET_AT["1h"].values())
_DAY_KEYS = tuple(_BUCKET_AT["24h"])
_DAY_GET = operator.itemgetter(*_BUCKET_AT["24h"].values())
_TOP_GET = operator.itemgetter(*(AT[k] for k in (
    "equity", "first_equity", "peak", "peak", "max_drawdown", "realized", "unrealized",
    "positions", "last_ts", "_c_bars", "_c_notional", "_c_breaches", "_c_warnings",
    "dropped", "refused", "_h_bars", "_h_notional", "_h_breaches", "_h_warnings",
    "_unwritten")))


def state_from(v: View, strategy_id: str) -> dict[str, Any]:
    """The state document of a whole view."""
    (equity, first_equity, peak, _, max_dd, realized, unrealized, positions, last_ts,
     c_bars, c_notional, c_breaches, c_warnings, dropped, refused, h_bars, h_notional,
     h_breaches, h_warnings, unwritten) = _TOP_GET(v)
    hour = dict(zip(_HOUR_KEYS, _HOUR_GET(v)))  # noqa: B905 - same length by construction
    hour["bars"], hour["notional"] = h_bars, h_notional
    hour["breaches"], hour["warnings"] = h_breaches, h_warnings
    if h_bars:
        hour["last_ts"] = last_ts
    return {
        "version": STATE_VERSION,
        "strategy_id": strategy_id,
        "equity": equity,
        "first_equity": first_equity,
        "peak": peak,
        "drawdown": 0.0 if equity is None or peak <= 0.0 else 1.0 - equity / peak,
        "max_drawdown": max_dd,
        "realized": realized,
        "unrealized": unrealized,
        "positions": positions,
        "last_ts": None if last_ts == -_INF else last_ts,
        # totals and the day bucket: closed hours only; the open hour is "1h"
        "total_bars": c_bars,
        "total_notional": c_notional,
        "total_breaches": c_breaches,
        "total_warnings": c_warnings,
        "dropped": dropped,
        "refused": refused,
        "buckets": {"1h": hour, "24h": dict(zip(_DAY_KEYS, _DAY_GET(v)))},  # noqa: B905
        "unwritten": [list(item) for item in unwritten],
    }


def _fields(spec: str) -> tuple[Field, ...]:
    """``"name:i?"``: i an integer (else a finite number), ? nullable, - optional."""
    return tuple(Field(name, "integer" if "i" in how else "number", "", nullable="?" in how,
                       required="-" not in how, minimum=0 if "0" in how else None)
                 for name, how in (item.split(":") for item in spec.split()))


_OPTIONAL = " refused:i- refused_base:i-"  # newer than the files
_STATE_FIELDS = _fields(
    "equity:? first_equity:? realized:? unrealized:? positions:i? last_ts:? peak: "
    "max_drawdown: total_bars:i total_notional: total_breaches:i total_warnings:i dropped:i"
    + _OPTIONAL)
_BUCKET_FIELDS = _fields(
    "start:i bars:i notional: breaches:i warnings:i first_ts: last_ts: prev_close:? "
    "last_written:i last_pnl:? last_turnover:? last_start:i?" + _OPTIONAL)
_SEQ = _fields("seq:i0-")


def _check_fields(data: object, fields: tuple[Field, ...], where: str) -> None:
    """Raise ValueError naming the first field of ``data`` that breaks its rule."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} is not an object")
    for f in fields:
        if f.name not in data:
            if not f.required:
                continue
            raise ValueError(f"{where} has no {f.name!r}")
        if check_field(None, f, data[f.name]) is not None:
            rule = "whole number" if f.type == "integer" else "finite number"
            bound = "" if f.minimum is None else f" >= {f.minimum:g}"
            raise ValueError(f"{where}[{f.name!r}] = {data[f.name]!r} is not a {rule}{bound}")


def check_state(state: dict[str, Any]) -> None:
    """Raise ValueError naming the first field of a state that has the wrong type."""
    _check_fields(state, _STATE_FIELDS, "state")
    buckets = state.get("buckets")
    if not isinstance(buckets, dict):
        raise ValueError("state has no 'buckets' object")
    for period, _ in PERIODS:
        _check_fields(buckets.get(period), _BUCKET_FIELDS, f"state bucket {period}")


def read_saved_state(state_path: Path) -> dict[str, Any] | None:
    """The newest state saved under ``state_path`` (``<root>/state/health/<strategy>.json``):
    the file's or the newest whole line of its journal (``<file>.wal``, written at bucket
    closes), whichever has the higher ``seq``; None when neither can be read."""
    found = []
    journal = JsonJournal(state_path)
    for read in (lambda: safe_fs.read_file(state_path, STATE_MAX_BYTES), journal.newest_entry):
        try:
            data = read()
            state = None if data is None else expand(read_json_line(data))
        except (OSError, ValueError, TypeError):
            continue
        if isinstance(state, dict):
            found.append(state)
    return max(found, key=lambda s: s.get("seq", 0), default=None)


class Store:
    """The state file and journal of one strategy, and its records' directories."""

    def __init__(self, root: Path, state_path: Path, strategy_id: str,
                 appender: JsonlAppender) -> None:
        self.root = root
        self.strategy_id = strategy_id
        self.dirs = {p: paths.strategy_path(root, k, strategy_id) for p, k in KINDS.items()}
        self.state_path = state_path
        # compacted (the file replaced, the journal emptied) past JOURNAL_BYTES: a rename
        # costs milliseconds on ext4, beats and shutdown replace the file anyway
        self.journal = JsonJournal(self.state_path, max_bytes=JOURNAL_BYTES)
        self.appender = appender
        self.lock = threading.Lock()  # the beat and a bucket close both save
        self.seq = 0  # saves so far (across restarts): the newest of file and journal wins
        self.hook: Callable[[str], None] | None = None
        self._errors = RateLimitedLog(_log, 60.0)
        self._files: dict[tuple[str, int], str] = {}  # (period, day) -> file name
        self._named: dict[tuple[str, str], Path] = {}  # (period, file name) -> file

    def step(self, name: str) -> None:
        if self.hook is not None:
            self.hook(name)

    def file_name(self, period: str, start: int) -> str:
        """The name of the file of a bucket's record (closes.file_name, remembered by day)."""
        key = (period, start // 86400)
        name = self._files.get(key)
        if name is None:
            if len(self._files) > 8:
                self._files.clear()
            name = self._files[key] = file_name(period, start)
        return name

    def path(self, period: str, start: float) -> Path:
        """The file of a bucket's record."""
        return self._path(period, self.file_name(period, int(start)))

    def _path(self, period: str, name: str) -> Path:
        """The file ``name`` of ``period`` (the same Path object for the same file: the
        appender's quick check is ``is``)."""
        path = self._named.get((period, name))
        if path is None:
            if len(self._named) > 8:
                self._named.clear()
            path = self._named[(period, name)] = self.dirs[period] / name
        return path

    # -- saving --------------------------------------------------------------------------------

    def save(self, state: dict[str, Any], *, journal: bool, fsync: bool = True) -> bool:
        """Save ``state`` (the caller holds ``lock``). Fails soft: returns False, logs.

        ``journal=True`` (a bucket close, ahead of its records): one line appended to the
        journal. Else (beats, shutdown) the state file is replaced atomically (temp file,
        fsync unless ``fsync=False``, rename) and the journal emptied.
        """
        try:
            self.seq += 1
            state["seq"] = self.seq
            if journal:
                self.step("close:before-journal")
                self.journal.append(state)
                self.step("close:after-journal")
            else:
                self.step("save:before-replace")
                self.journal.replace(state, fsync=fsync)
                self.step("save:after-replace")
        except OSError as exc:
            return self._write_failed(exc)
        return True

    def _write_failed(self, exc: Exception) -> bool:
        """A state or journal write failed: one error a minute; the bot keeps running."""
        self._errors.log(logging.ERROR, "ensemble-otel health: cannot write state %s: %s "
                         "(the bot keeps running; retried at every beat, reported at most "
                         "once a minute)", self.state_path, exc)
        return False

    def journal_close(self, before: View, t: float, schema_version: str) -> bool:
        """A bucket close's write-ahead line (the caller holds ``lock``): the view from before
        the close and the time of the bar that closed it (:func:`close_line`). Fails soft
        like :meth:`save`."""
        try:
            self.seq += 1
            hook = self.hook
            if hook is not None:
                hook("close:before-journal")
            self.journal.append(close_line(before, t, self.strategy_id, schema_version,
                                           self.seq))
            if hook is not None:
                hook("close:after-journal")
        except (OSError, TypeError, ValueError) as exc:  # TypeError: a value JSON cannot hold
            return self._write_failed(exc)
        return True

    def append(self, items: tuple[Unwritten, ...]) -> None:
        """Append closed buckets' records (period, file name, record) to their files."""
        hook, append = self.hook, self.appender.append
        for i, (period, name, record) in enumerate(items):
            if i and hook is not None:
                hook("close:between-appends")
            append(self._path(period, name), dumps_line(record))
        if hook is not None:
            hook("close:after-appends")

    def close(self) -> None:
        with self.lock, contextlib.suppress(OSError):
            self.journal.close()

    # -- reading back ----------------------------------------------------------------------------

    def saved_states(self) -> list[tuple[Path, dict[str, Any]]]:
        """The valid saved states: the state file's and the journal's newest whole line.

        One that cannot be read or checked is moved aside to ``<name>.corrupt`` (one error).
        """
        found: list[tuple[Path, dict[str, Any]]] = []
        for path in (self.state_path, self.journal.journal_path):
            try:
                if path == self.state_path:
                    if not path.exists():
                        continue
                    data = safe_fs.read_file(path, STATE_MAX_BYTES)
                else:
                    line = self.journal.newest_entry()
                    if line is None:
                        continue
                    data = line
                state = expand(read_json_line(data))
                if not isinstance(state, dict) or state.get("version") not in (1, STATE_VERSION):
                    raise ValueError("unknown state version")
                if state.get("strategy_id") != self.strategy_id:
                    raise ValueError("state belongs to another strategy")
                _check_fields(state, _SEQ, "state")
                check_state(state)
                found.append((path, state))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                self.set_aside(path, exc)
        return found

    def set_aside(self, path: Path, exc: BaseException) -> None:
        aside = path.with_name(path.name + ".corrupt")
        _log.error("ensemble-otel health: state file %s is unreadable (%s); moved to %s, "
                   "continuing from the records on disk", path, exc, aside.name)
        with contextlib.suppress(OSError):
            if path == self.journal.journal_path:
                self.journal.set_aside()
            else:
                path.replace(aside)

    def last_record(self, period: str) -> dict[str, Any] | None:
        """The newest whole record on disk of ``period`` (None when there is none)."""
        files = paths.record_files(self.root, KINDS[period], self.strategy_id)
        for path in reversed([f.path for f in files]):
            line = last_line(path)
            if line:
                try:
                    record = read_json_line(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and "ts" in record:
                    return record
        return None

    def append_unwritten(self, unwritten: list[Any]) -> None:
        """Append the records a crash kept from reaching their files (rule 2)."""
        for period, name, item in unwritten:
            record = read_json_line(item.encode()) if isinstance(item, str) else item
            if not isinstance(record, dict) or period not in self.dirs:
                raise ValueError(f"unwritten record for {period} in {name}")
            path = self.path(period, parse_iso(record["ts"]))
            # a file name (older versions: the path, maybe under a root since moved)
            if Path(name).name != path.name:
                raise ValueError(f"unwritten record for {period} in {name}")
            last = self.last_record(period)
            if last is None or last["ts"] < record["ts"]:
                self.appender.append(path, dumps_line(record))
                self.appender.flush_pending()

    def start_journal(self, path: Path, state: dict[str, Any]) -> None:
        """Start with an empty journal (a torn tail is never appended to)."""
        try:
            if path == self.journal.journal_path:
                self.journal.replace(state)
            else:
                self.journal.truncate()
        except OSError as exc:
            _log.error("ensemble-otel health: cannot write state %s: %s", path, exc)

    def drop_journal(self) -> None:
        if self.journal.has_entries():
            with contextlib.suppress(OSError):
                self.journal.truncate()
