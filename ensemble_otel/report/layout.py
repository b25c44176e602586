"""Where records live under PAPER_TRADING_ROOT, from the registry's path templates.

A template such as ``logs/1h/health_snapshot/{strategy_id}/{YYYY-MM-DD}.jsonl`` gives a
glob to find the files, a regex to read the strategy id and the partition back from a
path, and the time span a partition covers (used to skip files outside --from/--to).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ensemble_otel.contract.registry import RecordKind

_PLACEHOLDER = re.compile(r"\{([^}]+)\}")
_PARTITION_FORMATS: dict[str, tuple[str, str]] = {
    # placeholder -> (regex for the value, strptime format)
    "YYYY-MM-DD": (r"\d{4}-\d{2}-\d{2}", "%Y-%m-%d"),
    "YYYY-MM": (r"\d{4}-\d{2}", "%Y-%m"),
}


@dataclass(frozen=True, slots=True)
class RecordFile:
    """One file of a record kind: its path, strategy id and partition (if any)."""

    path: Path
    strategy_id: str
    partition: str | None  # e.g. "2024-03-01" or "2024-03"; None for one-file kinds

    def span(self) -> tuple[float, float] | None:
        """[start, end) in unix seconds the partition covers, or None if unknown."""
        if self.partition is None:
            return None
        for _name, (regex, fmt) in _PARTITION_FORMATS.items():
            if re.fullmatch(regex, self.partition):
                try:
                    start = datetime.strptime(self.partition, fmt).replace(tzinfo=timezone.utc)
                except ValueError:  # not a calendar date: read the file, let checks decide
                    return None
                if fmt == "%Y-%m":
                    nxt = (start + timedelta(days=32)).replace(day=1)
                else:
                    nxt = start + timedelta(days=1)
                return start.timestamp(), nxt.timestamp()
        return None


def _glob(kind: RecordKind, strategy_id: str | None) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "strategy_id" and strategy_id is not None:
            return glob_escape(strategy_id)
        return "*"

    return _PLACEHOLDER.sub(sub, kind.path)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _path_regex(kind: RecordKind) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(kind.path):
        out.append(re.escape(kind.path[pos:m.start()]))
        name = m.group(1)
        if name == "strategy_id":
            out.append(r"(?P<strategy_id>[^/]+)")
        else:
            value = _PARTITION_FORMATS.get(name, (r"[^/]+", ""))[0]
            out.append(rf"(?P<partition>{value})")
        pos = m.end()
    out.append(re.escape(kind.path[pos:]))
    return re.compile("".join(out))


def record_files(root: Path, kind: RecordKind, strategy_id: str | None = None) -> list[RecordFile]:
    """Files of `kind` under `root` (one strategy or all), sorted by strategy and partition."""
    regex = _path_regex(kind)
    found: list[RecordFile] = []
    for path in root.glob(_glob(kind, strategy_id)):
        rel = path.relative_to(root).as_posix()
        m = regex.fullmatch(rel)
        if m is None or not path.is_file():
            continue  # e.g. a temp file or a side file (.torn) next to the records
        groups = m.groupdict()
        found.append(RecordFile(path, groups["strategy_id"], groups.get("partition")))
    found.sort(key=lambda f: (f.strategy_id, f.partition or "", f.path.name))
    return found


def strategy_dir_hint(kind: RecordKind) -> str:
    """The directory a kind's files live in, for messages (e.g. ``logs/1h/health_snapshot/``)."""
    return kind.path.split("{", 1)[0]


def file_path(root: Path, kind: RecordKind, strategy_id: str, when: datetime) -> Path:
    """The file a record of `kind` for `strategy_id` at `when` (UTC) belongs in."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "strategy_id":
            return strategy_id
        return when.astimezone(timezone.utc).strftime(_PARTITION_FORMATS[name][1])

    return root / _PLACEHOLDER.sub(sub, kind.path)
