"""Merging range results, in file order, into one :class:`Report` with exact line numbers
and the cross-file rules (duplicate buckets, one schema_version per strategy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ensemble_otel import _validate_rules as rules
from ensemble_otel._validate_inputs import Source, Violation
from ensemble_otel._validate_range import RangeResult


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


_LINE_BITS = 40
_LINE_MASK = (1 << _LINE_BITS) - 1


class Merger:
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
