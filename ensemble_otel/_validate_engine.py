"""The validation engine: files (see _validate_inputs) -> byte ranges -> checked lines ->
cross-line checks.

A file is cut into ranges at newlines; each range is checked on its own (in worker
processes when the input is large), giving per-line problems plus what the cross-line
rules need (bucket keys, schema versions). The parent merges the ranges in file order, so
line numbers and "first seen at" references are exact.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import compress, filterfalse, repeat
from operator import attrgetter, itemgetter, not_
from typing import Any

import msgspec

from ensemble_otel import _validate_rules as rules
from ensemble_otel._validate_inputs import (
    Source,
    Violation,
    discover,
    open_sources,
)
from ensemble_otel.contract.registry import RECORD_KINDS_BY_NAME
from ensemble_otel.readers import (
    HEARTBEAT_MAX_BYTES,
    MAX_LINE_BYTES,
    Batch,
    line_batches,
    open_regular,
    too_long,
)

CHUNK_BYTES = 8 << 20
PARALLEL_MIN_BYTES = 24 << 20


@dataclass(slots=True)
class Report:
    """The outcome of a validation run."""

    strict: bool
    files: int = 0
    lines: int = 0
    records: int = 0
    bytes: int = 0
    violations: list[Violation] = field(default_factory=list)  # the first ``cap``
    violation_count: int = 0
    unreadable: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)  # records read, by kind ("": unknown)
    unmet: list[str] = field(default_factory=list)  # expectations not met, in words

    @property
    def omitted(self) -> int:
        return self.violation_count - len(self.violations)

    @property
    def exit_code(self) -> int:
        if self.unreadable:
            return 2
        return 1 if self.violation_count or self.unmet else 0

    def expect(self, expectations: Sequence[tuple[str | None, int]], where: str) -> None:
        """Check what was read against ``(kind, minimum)`` pairs (kind None: any record);
        each unmet one is added to ``unmet``."""
        for kind, minimum in expectations:
            found = self.records if kind is None else self.kinds.get(kind, 0)
            if found >= minimum:
                continue
            if kind is None:
                self.unmet.append(f"nothing to validate under {where}: no "
                                  f"{'file' if not self.files else 'record'} found")
            else:
                self.unmet.append(f"expected at least {minimum} {kind} "
                                  f"record{'s' if minimum != 1 else ''}, found {found}")


# --- byte ranges ---------------------------------------------------------------------------


def ranges(path: str, size: int, chunk: int = CHUNK_BYTES, follow: bool = False
           ) -> list[tuple[int, int]]:
    """Cut ``[0, size)`` into ranges of about ``chunk`` bytes that end after a newline."""
    out: list[tuple[int, int]] = []
    start = 0
    with os.fdopen(open_regular(path, follow=follow), "rb") as fh:
        while size - start > chunk:
            pos = start + chunk
            fh.seek(pos)
            while True:
                block = fh.read(1 << 16)
                if not block:
                    pos = size
                    break
                nl = block.find(b"\n")
                if nl >= 0:
                    pos += nl + 1
                    break
                pos += len(block)
            out.append((start, pos))
            start = pos
    if start < size or not out:
        out.append((start, size))
    return out


# --- checking one range --------------------------------------------------------------------


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
    utf8_ok = _is_utf8(data)

    expect = source.expect
    by_kind: dict[str, tuple[list[Any], list[int]]]
    if not strict:
        by_kind = {"": _decode_all(lines, rules.meta_decoder.decode, utf8_ok)}
    elif expect.kind is not None:
        decode = rules.record_decoder(expect.kind).decode
        by_kind = {expect.kind: _decode_all(lines, decode, utf8_ok)}
    else:
        by_kind = _decode_sniffed(lines, utf8_ok)
    bad = _bad_lines(len(lines), [idx for _, idx in by_kind.values()])
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


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 (ASCII, the usual case, is checked several times faster)."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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


def _bad_lines(n: int, good_lists: list[list[int]]) -> list[int]:
    good = sum(len(g) for g in good_lists)
    if good == n:
        return []
    seen = set().union(*good_lists) if good_lists else set()
    return [i for i in range(n) if i not in seen]


def _decode_all(lines: list[bytes], decode: Callable[[bytes], Any], utf8_ok: bool
                ) -> tuple[list[Any], list[int]]:
    """Decode every line; (records, their line indices). Failing lines are left out."""
    n = len(lines)
    if utf8_ok:
        try:
            return list(map(decode, lines)), list(range(n))  # all good: the common case
        except Exception:  # some line is bad: go line by line below
            pass
    recs: list[Any] = []
    idx: list[int] = []
    add_rec, add_idx = recs.append, idx.append
    start = j = 0
    while start < n:
        try:
            if utf8_ok:
                for j in range(start, n):
                    add_rec(decode(lines[j]))
                    add_idx(j)
            else:
                for j in range(start, n):
                    line = lines[j]
                    line.decode("utf-8")
                    add_rec(decode(line))
                    add_idx(j)
            break
        except Exception:  # any failure is diagnosed later, line by line
            start = j + 1
    return recs, idx


SNIFF_WINDOW = 64  # bytes: where the package's writers put a record's kind marker


def _decode_sniffed(lines: list[bytes], utf8_ok: bool) -> dict[str, tuple[list[Any], list[int]]]:
    """Decode lines of any kind: grouped by the sniffed kind, else told by their fields.

    Sniffing looks for each kind's marker in the first SNIFF_WINDOW bytes of a line (the
    package writes it second, after ts), then anywhere in the lines still unclaimed.
    """
    out: dict[str, tuple[list[Any], list[int]]] = {}
    rest = list(range(len(lines)))
    failed: list[int] = []
    for window in (SNIFF_WINDOW, None):
        for needle, kind in rules.SNIFF:
            if not rest:
                break
            everything = len(rest) == len(lines)
            if window is not None:
                flags = ([line.find(needle, 0, window) >= 0 for line in lines] if everything
                         else [lines[i].find(needle, 0, window) >= 0 for i in rest])
            else:
                flags = [needle in lines[i] for i in rest]
            mine = list(compress(rest, flags))
            if not mine:
                continue
            rest = [] if len(mine) == len(rest) else list(compress(rest, map(not_, flags)))
            group = lines if everything and not rest else [lines[i] for i in mine]
            recs, local = _decode_all(group, rules.record_decoder(kind).decode, utf8_ok)
            if len(local) == len(mine):
                idx = mine
            else:
                idx = [mine[k] for k in local]
                failed.extend(set(mine).difference(idx))
            got = out.setdefault(kind, ([], []))
            got[0].extend(recs)
            got[1].extend(idx)
    failed.extend(rest)
    unsorted = {kind for kind, (_, idx) in out.items() if idx != sorted(idx)}
    for i in sorted(failed):
        unsorted.update(_decode_exact(lines[i], i, out))
    for kind in unsorted:
        recs, idx = out[kind]
        order = sorted(range(len(idx)), key=idx.__getitem__)
        out[kind] = ([recs[k] for k in order], [idx[k] for k in order])
    return out


def _decode_exact(line: bytes, i: int, out: dict[str, tuple[list[Any], list[int]]]
                  ) -> tuple[str, ...]:
    """Decode a line as the kind its fields tell; returns the kind it was added to."""
    obj, _ = rules.parse(line)
    if obj is None:
        return ()
    kind = rules.kind_of(obj)
    if kind is None:
        return ()
    try:
        rec = rules.record_decoder(kind).decode(line)
    except Exception:  # diagnosed later
        return ()
    recs, idx = out.setdefault(kind, ([], []))
    recs.append(rec)
    idx.append(i)
    return (kind,)


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


# --- running -------------------------------------------------------------------------------


# source index, path, start, end, last range of the file, strict, cap, longest line
Job = tuple[int, str, int, int, bool, bool, int, int]


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


def _run_job(job: Job, sources: Sequence[Source]) -> list[RangeResult]:
    index, path, start, end, last, strict, cap, max_line = job
    source = sources[index]
    try:
        with os.fdopen(open_regular(path, follow=source.follow), "rb") as fh:
            fh.seek(start)
            if source.document or end - start <= max_line:  # no line can be too long
                data = fh.read(end - start)
                if len(data) != end - start:
                    last = True  # the file shrank while being read
                return [check_bytes(data, source, strict, last, cap)]
            remaining = end - start

            def read(n: int) -> bytes:
                nonlocal remaining
                block = fh.read(min(n, remaining))
                remaining -= len(block)
                return block

            return list(check_batches(line_batches(read, max_line=max_line), source, strict,
                                      last, cap, max_line))
    except OSError as exc:
        return [RangeResult(read_error=exc.strerror or str(exc))]


_WORKER_SOURCES: Sequence[Source] = ()


def _worker_init(sources: Sequence[Source]) -> None:
    global _WORKER_SOURCES
    _WORKER_SOURCES = sources


def _worker_job(job: Job) -> list[RangeResult]:
    with _no_gc():
        return _run_job(job, _WORKER_SOURCES)


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic collector off while checking: what a range builds holds no cycles, and a
    collection pass over millions of live records costs more than the check itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _results(sources: Sequence[Source], stdin: Callable[[int], bytes], strict: bool, cap: int,
             workers: int, chunk_bytes: int, parallel_min_bytes: int, max_line: int,
             ) -> Iterator[tuple[int, RangeResult, int]]:
    """(source index, result, bytes) in source order, range order."""
    jobs: list[Job] = []
    for index, src in enumerate(sources):
        if src.path is None or (src.document and src.size > HEARTBEAT_MAX_BYTES):
            continue
        if src.document or src.size <= chunk_bytes:
            spans = [(0, src.size)]
        else:
            try:
                spans = ranges(src.path, src.size, chunk_bytes, src.follow)
            except OSError:
                spans = [(0, src.size)]
        for k, (start, end) in enumerate(spans):
            jobs.append((index, src.path, start, end, k == len(spans) - 1, strict, cap,
                         max_line))
    total = sum(s.size for s in sources)
    pool = None
    if workers > 1 and len(jobs) > 1 and total >= parallel_min_bytes:
        pool = _context().Pool(min(workers, len(jobs)), _worker_init, (list(sources),))
    try:
        stream: Iterator[list[RangeResult]] = (
            pool.imap(_worker_job, jobs) if pool is not None
            else (_run_job(job, sources) for job in jobs)
        )
        pending = iter(zip(jobs, stream, strict=True))
        for index, src in enumerate(sources):
            if src.path is None:
                batches = line_batches(stdin, max_line=max_line, batch_bytes=chunk_bytes)
                for result in check_batches(batches, src, strict, True, cap, max_line):
                    yield index, result, 0
                continue
            if src.document and src.size > HEARTBEAT_MAX_BYTES:
                yield index, _too_large(src, cap), src.size
                continue
            while True:
                job_and_result = next(pending, None)
                if job_and_result is None:
                    break
                job, results = job_and_result
                for k, result in enumerate(results):
                    yield job[0], result, job[3] - job[2] if k == 0 else 0
                if job[4]:
                    break
    finally:
        if pool is not None:
            pool.terminate()


def _too_large(source: Source, cap: int) -> RangeResult:
    result = RangeResult(lines=1)
    result.add(0, rules.Problem("too-large", f"file larger than {HEARTBEAT_MAX_BYTES} bytes: "
                                "not a heartbeat (not read)"), cap)
    return result


def validate(paths: Sequence[str], *, strict: bool = False, cap: int = 50,
             workers: int | None = None, stdin: Callable[[int], bytes] | None = None,
             progress: Callable[[int, int], None] | None = None,
             chunk_bytes: int = CHUNK_BYTES, parallel_min_bytes: int = PARALLEL_MIN_BYTES,
             max_line: int = MAX_LINE_BYTES, follow: bool = True,
             ) -> Report:
    """Validate files, directories (recursively) and ``-`` (standard input).

    ``cap`` bounds the violations kept (0: all); the count covers all of them.
    ``progress(done, total)`` is called with bytes after each range. Files are read in
    ranges of about ``chunk_bytes``, by ``workers`` processes when the input has at least
    ``parallel_min_bytes`` (default: the usable cores). ``stdin(n)`` reads up to n bytes of
    ``-`` (default: the process's standard input). A line longer than ``max_line`` bytes
    is a violation and is skipped unread. ``follow=False``: a symbolic link named in
    ``paths`` is refused too (walks never follow one).
    """
    stdin_bytes = 0

    def read_stdin(n: int) -> bytes:
        nonlocal stdin_bytes
        block = (stdin or sys.stdin.buffer.read)(n)
        stdin_bytes += len(block)
        return block

    files, errors = discover(paths)
    if not follow:
        files = [(path, False) for path, _ in files]
    sources, open_errors = open_sources(files)
    errors += open_errors
    report = Report(strict=strict, files=len(sources))
    report.bytes = sum(s.size for s in sources)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    merger = _Merger(report, sources, cap)
    for v in errors:
        merger.file_problem(v)
    done = 0
    with _no_gc():
        for index, result, nbytes in _results(sources, read_stdin, strict, cap, workers,
                                              chunk_bytes, parallel_min_bytes, max_line):
            merger.add(index, result)
            done += nbytes
            if progress is not None:
                progress(done, report.bytes)
        merger.finish()
    report.bytes += stdin_bytes
    return report


_LINE_BITS = 40
_LINE_MASK = (1 << _LINE_BITS) - 1


class _Merger:
    """Turns range results, in order, into a report with exact line numbers."""

    def __init__(self, report: Report, sources: Sequence[Source], cap: int) -> None:
        self.report = report
        self.sources = sources
        self.cap = cap
        self.collected: list[tuple[int, Violation]] = []  # (source order, violation)
        self.line_base: dict[int, int] = {}
        self.buckets: dict[tuple[str, str, str], int] = {}
        self.first_version: dict[str, tuple[str, str, int]] = {}
        self.other_versions: dict[tuple[int, str, str], int] = {}

    def _keep(self, order: int, v: Violation) -> None:
        self.report.violation_count += 1
        self.collected.append((order, v))

    def _trim(self) -> None:
        """Keep the first ``cap`` violations. Ranges arrive in order, so what is cut here
        could never be among the first ``cap`` later."""
        if self.cap > 0 and len(self.collected) > self.cap:
            self.collected.sort(key=lambda item: (item[0], item[1].line))
            del self.collected[self.cap:]

    def file_problem(self, v: Violation) -> None:
        if v.rule == "read-error":
            self.report.unreadable.append(v.file)
        self._keep(-1, v)

    def add(self, index: int, result: RangeResult) -> None:
        src = self.sources[index]
        base = self.line_base.get(index, 0)
        self.line_base[index] = base + result.lines
        if result.read_error is not None:
            self.file_problem(Violation(src.name, 0, "read-error",
                                        f"cannot read: {result.read_error}"))
            return
        self.report.lines += result.lines
        self.report.records += result.records
        for kind, count in result.kinds.items():
            self.report.kinds[kind] = self.report.kinds.get(kind, 0) + count
        for line, p in result.problems:
            self._keep(index, Violation(src.name, base + line + 1, p.rule, p.message, p.field))
        self.report.violation_count += result.problem_count - len(result.problems)
        self._add_buckets(index, base, result)
        for (sid, version), line in sorted(result.versions.items(), key=lambda item: item[1]):
            first_v = self.first_version.setdefault(sid, (version, src.name, base + line + 1))
            if first_v[0] != version:
                self.other_versions.setdefault((index, sid, version), base + line + 1)
        self._trim()

    def _add_buckets(self, index: int, base: int, result: RangeResult) -> None:
        """Record bucket keys; a key seen before (any file) is a duplicate bucket."""
        if not result.buckets:
            return
        # a key's first place, packed into one int: source index << 40 | line number
        where = (index << _LINE_BITS) + base + 1
        new = dict(zip(result.buckets, map(where.__add__, result.bucket_lines), strict=True))
        if len(new) == len(result.buckets) and not (new.keys() & self.buckets.keys()):
            self.buckets.update(new)
            return
        for key, line in zip(result.buckets, result.bucket_lines, strict=True):
            here = where + line
            first = self.buckets.setdefault(key, here)
            if first != here:
                sid, period, ts = key
                first_src = self.sources[first >> _LINE_BITS].name
                self._keep(index, Violation(
                    self.sources[index].name, here & _LINE_MASK, "duplicate-bucket",
                    f"duplicate bucket: strategy_id={sid} period={period} ts={ts} is already "
                    f"at {first_src}:{first & _LINE_MASK}", "ts"))

    def finish(self) -> None:
        for (index, sid, version), line in self.other_versions.items():
            first = self.first_version[sid]
            self._keep(index, Violation(
                self.sources[index].name, line, "schema-version",
                f"schema_version: {rules.excerpt(version)} differs from "
                f"{rules.excerpt(first[0])} that strategy {rules.excerpt(sid)} used first at "
                f"{first[1]}:{first[2]} (one schema_version per strategy; the first such line "
                "of this file)", "schema_version"))
        self._trim()
        self.collected.sort(key=lambda item: (item[0], item[1].line))
        self.report.violations = [v for _, v in self.collected]
