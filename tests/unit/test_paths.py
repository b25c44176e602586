"""Record paths from the registry's templates: the partition of a time, the health store's
cached paths, and the span a partition covers, all through the one time formatter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble_otel import paths
from ensemble_otel.contract.registry import EVENT, HEALTH_1H, HEALTH_24H, HEARTBEAT
from ensemble_otel.health.store import Store
from ensemble_otel.jsonl import JsonlAppender

ROOT = Path("/r")
SECONDS = st.integers(-2208988800, 7258118400 - 1)  # 1900 to 2199


@settings(database=None, derandomize=True, max_examples=300, deadline=None)
@given(unix=SECONDS, fraction=st.sampled_from([0.0, 0.25, 0.999999]))
def test_partition_file_is_the_record_paths_name(unix: int, fraction: float) -> None:
    t = unix + fraction
    when = datetime.fromtimestamp(t, tz=timezone.utc)
    for kind, fmt in ((HEALTH_1H, "%Y-%m-%d"), (HEALTH_24H, "%Y-%m"), (EVENT, "%Y-%m-%d")):
        path = paths.record_path(ROOT, kind, "s1", when)
        assert path.name == f"{when.strftime(fmt)}.jsonl"  # the dates written until now
        assert path == paths.strategy_path(ROOT, kind, "s1") / paths.partition_file(kind, t)


def test_the_store_builds_its_record_paths_from_the_templates(tmp_path: Path) -> None:
    store = Store(tmp_path, tmp_path / "state.json", "s1", JsonlAppender())
    t = datetime(2024, 2, 29, 23, tzinfo=timezone.utc)
    for hours in range(0, 24 * 40, 5):
        when = t + timedelta(hours=hours)
        for period, kind in (("1h", HEALTH_1H), ("24h", HEALTH_24H)):
            assert store.path(period, when.timestamp()) == paths.record_path(
                tmp_path, kind, "s1", when)
    assert store.path("1h", t.timestamp()) is store.path("1h", t.timestamp() + 60)  # cached


def test_partition_file_needs_a_partitioned_template() -> None:
    with pytest.raises(ValueError):
        paths.partition_file(HEARTBEAT, 0.0)


@pytest.mark.parametrize(("partition", "span"), [
    ("2024-02-29", ("2024-02-29", "2024-03-01")),
    ("2024-12", ("2024-12-01", "2025-01-01")),
    ("2023-02-29", None),
    ("2024-13", None),
])
def test_span_of_a_partition(partition: str, span: tuple[str, str] | None) -> None:
    got = paths.RecordFile(ROOT / "x", "s1", partition).span()
    if span is None:
        assert got is None
        return
    assert got == tuple(datetime.fromisoformat(d).replace(tzinfo=timezone.utc).timestamp()
                        for d in span)
