"""Checking one range of lines: per-line problems, plus what the cross-line rules need
(bucket keys, schema versions), in a :class:`RangeResult` the merge puts in file order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import filterfalse, repeat
from operator import attrgetter, itemgetter
from typing import Any

import msgspec

from ensemble_otel import _validate_rules as rules
from ensemble_otel._validate_decode import bad_lines, decode_all, decode_sniffed, is_utf8
from ensemble_otel._validate_inputs import Source
from ensemble_otel.contract.registry import RECORD_KINDS_BY_NAME
from ensemble_otel.readers import HEARTBEAT_MAX_BYTES, Batch, too_long


@dataclass(slots=True)
class RangeResult:
    """What one byte range gave. Line numbers are 0-based within the range."""

    lines: int = 0
    records: int = 0
    problems: list[tuple[int, rules.Problem]] = field(default_factory=list)
    problem_count: int = 0
    # (strategy_id, period, canonical ts) of bucket records, and their lines
    buckets: list[tuple[str, str, str]] = field(default_factory=list)
    bucket_lines: list[int] = field(default_factory=list)
    # (strategy_id, schema_version) -> its first line
    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    read_error: str | None = None
    kinds: dict[str, int] = field(default_factory=dict)  # good records by kind ("": unknown)

    def add(self, line: int, problem: rules.Problem, cap: int) -> None:
        self.problem_count += 1
        if cap <= 0 or len(self.problems) < cap:
            self.problems.append((line, problem))


_TS = attrgetter("ts")
_SID = attrgetter("strategy_id")
_VERSION = attrgetter("schema_version")
_DATE = itemgetter(slice(10))


def check_bytes(data: bytes, source: Source, strict: bool, last: bool, cap: int) -> RangeResult:
    """Check one range of complete lines (the last range may end without a newline)."""
    result = RangeResult()
    if source.document:
        lines = [data]
        unterminated = False
    else:
        lines = data.split(b"\n")
        unterminated = lines[-1] != b""
        if not unterminated:
            lines.pop()
    result.lines = len(lines)
    utf8_ok = is_utf8(data)

    expect = source.expect
    by_kind: dict[str, tuple[list[Any], list[int]]]
    if not strict:
        by_kind = {"": decode_all(lines, rules.meta_decoder.decode, utf8_ok)}
    elif expect.kind is not None:
        decode = rules.record_decoder(expect.kind).decode
        by_kind = {expect.kind: decode_all(lines, decode, utf8_ok)}
    else:
        by_kind = decode_sniffed(lines, utf8_ok)
    bad = bad_lines(len(lines), [idx for _, idx in by_kind.values()])
    result.records = sum(len(idx) for _, idx in by_kind.values())
    for kind_name, (_, idx) in by_kind.items():
        name = kind_name or expect.kind or ""
        result.kinds[name] = result.kinds.get(name, 0) + len(idx)

    last_index = len(lines) - 1
    for i in bad:
        line = lines[i]
        if last and unterminated and i == last_index and _is_torn(line):
            result.add(i, _torn(line), cap)
            continue
        for problem in rules.diagnose(line, strict, expect, _fallback(line, source, strict)):
            result.add(i, problem, cap)
    if strict and last and unterminated and last_index not in bad:
        result.add(last_index, rules.Problem(
            "no-newline", "no newline at the end of the file: a complete record, but the "
            "next append would join it"), cap)

    if strict:
        for kind_name, (recs, idx) in by_kind.items():
            _cross_line(kind_name, recs, idx, expect, result, cap)
    return result


def _is_torn(line: bytes) -> bool:
    problem = rules.parse(line)[1]
    return problem is not None and problem.rule in ("json", "utf-8")


def _torn(line: bytes) -> rules.Problem:
    return rules.Problem(
        "torn-line", f"torn last line: {len(line)} bytes without a newline that are not a "
        "complete JSON object (the writer was interrupted mid-line)")


def _fallback(line: bytes, source: Source, strict: bool) -> Callable[[], str]:
    def describe() -> str:
        try:
            if not strict:
                rules.meta_decoder.decode(line)
            else:
                decoder = (rules.record_decoder(source.expect.kind) if source.expect.kind
                           else None)
                if decoder is None:
                    return "the record matches no kind"
                decoder.decode(line)
        except (msgspec.MsgspecError, UnicodeDecodeError) as exc:
            return str(exc)
        return "the record breaks a rule"
    return describe


def _wrong_values(values: set[str], regex: re.Pattern[str], is_ts: bool) -> set[str]:
    """The values that break a field's pattern (and, for timestamps, the calendar)."""
    if is_ts and rules.timestamps_ok(values):
        return set()
    wrong = set(filterfalse(regex.search, values))
    if is_ts:
        no_date = set(filterfalse(rules.valid_date, set(map(_DATE, values))))
        if no_date:
            wrong.update(v for v in values if v[:10] in no_date)
    return wrong


def _cross_line(kind_name: str, recs: list[Any], idx: list[int], expect: rules.Expect,
                result: RangeResult, cap: int) -> None:
    """Rules over the decoded records of a range: string patterns and calendar dates, the
    file's location, then what the merge needs (schema versions, bucket keys)."""
    if not recs:
        return
    kind = RECORD_KINDS_BY_NAME[kind_name]
    fields = {f.name: f for f in kind.fields}
    columns = {"strategy_id": list(map(_SID, recs)), "schema_version": list(map(_VERSION, recs))}
    bad: dict[int, list[rules.Problem]] = {}
    for name, regex, is_ts in rules.pattern_fields(kind_name):
        column = columns.get(name)
        values = set(column) if column is not None else set(map(attrgetter(name), recs))
        wrong = _wrong_values(values, regex, is_ts)
        if wrong:
            get = attrgetter(name)
            for j, r in enumerate(recs):
                if get(r) in wrong:
                    problem = rules.check_field(kind, fields[name], get(r))
                    if problem is not None:
                        bad.setdefault(j, []).append(problem)
    sids = columns["strategy_id"]
    location_ok = (
        (expect.strategy_id is None or set(sids) == {expect.strategy_id})
        and (expect.date is None or set(map(itemgetter(slice(len(expect.date))),
                                            map(_TS, recs))) == {expect.date})
    )
    if not location_ok:
        for j, r in enumerate(recs):
            problems = rules.check_location(r, expect, kind_name)
            if problems:
                bad.setdefault(j, []).extend(problems)
    versions = columns["schema_version"]
    if bad:
        for j in sorted(bad):
            for problem in bad[j]:
                result.add(idx[j], problem, cap)
        keep = [j for j in range(len(recs)) if j not in bad]
        recs = [recs[j] for j in keep]
        idx = [idx[j] for j in keep]
        sids = [sids[j] for j in keep]
        versions = [versions[j] for j in keep]
        if not recs:
            return

    if len(set(versions)) == 1:  # the usual case: one version, the first line of each strategy
        version = versions[0]
        firsts = {(sid, version): idx[sids.index(sid)] for sid in dict.fromkeys(sids)}
    else:  # the earliest line of each (strategy, version) wins
        pairs = list(zip(sids, versions, strict=True))
        firsts = dict(zip(reversed(pairs), reversed(idx), strict=True))
    for pair, line in firsts.items():  # other kinds of this range may have been earlier
        if line < result.versions.get(pair, line + 1):
            result.versions[pair] = line
    if kind_name in rules.BUCKET_KINDS:
        stamps = list(map(_TS, recs))
        if set(map(len, stamps)) != {rules.CANONICAL_TS_LENGTH}:
            stamps = list(map(rules.bucket_ts, stamps))
        period = rules.kind_period_of(kind_name)
        result.buckets.extend(zip(sids, repeat(period), stamps, strict=False))
        result.bucket_lines.extend(idx)


def _long_line(skipped: int, max_line: int, cap: int) -> RangeResult:
    result = RangeResult(lines=1)
    result.add(0, rules.Problem("line-too-long", too_long(skipped, max_line)), cap)
    return result


def check_batches(batches: Iterable[Batch], source: Source, strict: bool, last: bool,
                  cap: int, max_line: int) -> Iterator[RangeResult]:
    """Check a stream of line batches; a skipped over-long line is one problem."""
    for batch in batches:
        if batch.skipped:
            yield _long_line(batch.skipped, max_line, cap)
        else:
            yield check_bytes(batch.data, source, strict, last and batch.last, cap)


def too_large(source: Source, cap: int) -> RangeResult:
    result = RangeResult(lines=1)
    result.add(0, rules.Problem("too-large", f"file larger than {HEARTBEAT_MAX_BYTES} bytes: "
                                "not a heartbeat (not read)"), cap)
    return result
