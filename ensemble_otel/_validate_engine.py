"""The validation engine: files (see _validate_inputs) -> byte ranges -> checked lines
(_validate_range) -> one report (_validate_merge).

A file is cut into ranges at newlines; each range is checked on its own (in worker
processes when the input is large), giving per-line problems plus what the cross-line
rules need (bucket keys, schema versions). The parent merges the ranges in file order, so
line numbers and "first seen at" references are exact.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ensemble_otel._validate_inputs import Source, discover, open_sources
from ensemble_otel._validate_merge import Merger, Report
from ensemble_otel._validate_range import (
    RangeResult,
    check_batches,
    check_bytes,
    too_large,
)
from ensemble_otel.readers import (
    HEARTBEAT_MAX_BYTES,
    MAX_LINE_BYTES,
    line_batches,
    open_regular,
)

__all__ = ["CHUNK_BYTES", "PARALLEL_MIN_BYTES", "RangeResult", "Report", "Source",
           "check_bytes", "ranges", "validate"]

CHUNK_BYTES = 8 << 20
PARALLEL_MIN_BYTES = 24 << 20


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


# --- running -------------------------------------------------------------------------------


# source index, path, start, end, last range of the file, strict, cap, longest line
Job = tuple[int, str, int, int, bool, bool, int, int]


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
                yield index, too_large(src, cap), src.size
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
    merger = Merger(report, sources, cap)
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
