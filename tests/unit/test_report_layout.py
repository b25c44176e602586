"""Where the report looks for files (the registry's path templates) and the test data."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from report_synthetic import write_strategy

from ensemble_otel.contract.registry import EVENT, HEALTH_1H, HEALTH_24H, HEARTBEAT
from ensemble_otel.paths import record_files
from ensemble_otel.paths import record_path as file_path
from ensemble_otel.validate import validate

WHEN = datetime(2024, 2, 29, 13, 5, tzinfo=timezone.utc)


def test_file_paths_follow_the_registry_templates(tmp_path: Path) -> None:
    assert file_path(tmp_path, HEALTH_1H, "s1", WHEN) == (
        tmp_path / "logs/1h/health_snapshot/s1/2024-02-29.jsonl")
    assert file_path(tmp_path, HEALTH_24H, "s1", WHEN) == (
        tmp_path / "logs/24h/health_snapshot/s1/2024-02.jsonl")
    assert file_path(tmp_path, HEARTBEAT, "s1", WHEN) == tmp_path / "logs/heartbeat/s1.json"
    assert file_path(tmp_path, EVENT, "s1", WHEN) == tmp_path / "logs/events/s1/2024-02-29.jsonl"


def test_record_files_find_strategies_and_partitions_and_skip_side_files(
        tmp_path: Path) -> None:
    for sid in ("a", "b[1]"):
        for kind in (HEALTH_1H, HEALTH_24H, HEARTBEAT):
            p = file_path(tmp_path, kind, sid, WHEN)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("{}\n")
    side = tmp_path / "logs/1h/health_snapshot/a"
    (side / "2024-02-29.jsonl.torn").write_text("x")
    (side / ".2024-02-29.jsonl.123.tmp").write_text("x")
    (side / "notes.txt").write_text("x")
    found = record_files(tmp_path, HEALTH_1H)
    assert [(f.strategy_id, f.partition) for f in found] == [
        ("a", "2024-02-29"), ("b[1]", "2024-02-29")]
    assert [f.strategy_id for f in record_files(tmp_path, HEALTH_1H, "b[1]")] == ["b[1]"]
    monthly = record_files(tmp_path, HEALTH_24H, "a")[0]
    start, end = monthly.span() or (0.0, 0.0)
    assert start == datetime(2024, 2, 1, tzinfo=timezone.utc).timestamp()
    assert end == datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp()
    assert record_files(tmp_path, HEARTBEAT)[0].span() is None


def test_synthetic_records_pass_the_strict_contract_validator(tmp_path: Path) -> None:
    run = write_strategy(tmp_path, "synthetic-1", start=WHEN, hours=24 * 40, bars_per_hour=2,
                         seed=11, skip_hours=frozenset({5, 6, 7}))
    report = validate([str(tmp_path)], strict=True, cap=0, workers=1)
    assert report.violation_count == 0, [str(v) for v in report.violations[:5]]
    assert report.files == len(run.files)
    assert len(run.snapshots["1h"]) == 24 * 40 - 3
    assert sum(r["bars"] for r in run.snapshots["24h"]) == 2 * (24 * 40 - 3)
