"""Bad input: skipped, counted and listed with file:line and the reason; never a crash."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from report_synthetic import write_strategy
from test_report_data import file_records, page_data

from ensemble_otel.contract.registry import HEALTH_1H, HEARTBEAT
from ensemble_otel.report import write_report
from ensemble_otel.report.checks import permissive_check

START = datetime(2024, 3, 1, tzinfo=timezone.utc)


def good_record() -> dict[str, Any]:
    return {
        "ts": "2024-03-01T00:00:00Z", "period": "1h", "strategy_id": "s1",
        "schema_version": "1.0", "equity": 100.0, "peak_equity": 100.0, "drawdown": 0.0,
        "max_drawdown": 0.0, "pnl": 0.0, "turnover": 0.0, "traded_notional": 0.0,
        "realized_pnl": None, "unrealized_pnl": None, "open_positions": None,
        "risk_breaches": 0, "risk_warnings": 0, "bars": 1,
        "first_bar_ts": "2024-03-01T00:00:00Z", "last_bar_ts": "2024-03-01T00:00:00Z",
    }


def test_a_good_record_passes_and_extra_fields_are_allowed() -> None:
    assert permissive_check(HEALTH_1H, good_record()) == []
    assert permissive_check(HEALTH_1H, {**good_record(), "new_field": 1}) == []


@pytest.mark.parametrize(("change", "field", "rule"), [
    ({"equity": None}, "equity", "must be a finite number (got null)"),
    ({"equity": "100"}, "equity", "must be a finite number (got string"),
    ({"bars": True}, "bars", "must be an integer (got boolean"),
    ({"bars": 1.5}, "bars", "must be an integer (got number"),
    ({"bars": 0}, "bars", "must be >= 1"),
    ({"drawdown": -0.1}, "drawdown", "must be >= 0"),
    ({"period": "5m"}, "period", "must be one of 1h"),
    ({"ts": "2024-03-01 00:00"}, "ts", "must be ISO-8601 UTC"),
    ({"ts": "2024-03-01T00:00:00+02:00"}, "ts", "must be ISO-8601 UTC"),
    ({"strategy_id": "../x"}, "strategy_id", "must match"),
    ({"schema_version": "v1"}, "schema_version", "must match"),
])
def test_each_rule_names_the_field(change: dict[str, Any], field: str, rule: str) -> None:
    (reason,) = permissive_check(HEALTH_1H, {**good_record(), **change})
    assert reason.startswith(f"{field}: ")
    assert rule in reason


def test_a_missing_field_is_named() -> None:
    record = good_record()
    del record["max_drawdown"]
    assert permissive_check(HEALTH_1H, record) == ["max_drawdown: required field is missing"]


def _corrupt(root: Path) -> Path:
    """Append bad lines to the first 1h file of s1; returns that file."""
    path = sorted((root / "logs/1h/health_snapshot/s1").glob("*.jsonl"))[0]
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    bad = [
        "this is not json",
        "",
        json.dumps([1, 2]),
        json.dumps({**first, "ts": "2024-03-01T23:59:00Z", "equity": "lots"}),
        json.dumps({**first, "ts": "2024-03-01T23:58:00Z", "strategy_id": "other"}),
        json.dumps({k: v for k, v in first.items() if k != "bars"}),
        '{"ts": "2024-03-01T23:00:00Z", "equity": 1',  # a torn last line
    ]
    path.write_text("\n".join(lines + bad))
    return path


@pytest.fixture
def corrupt_root(tmp_path: Path) -> tuple[Path, Path]:
    write_strategy(tmp_path, "s1", start=START, hours=48, seed=2)
    bad_file = _corrupt(tmp_path)
    # an unusable heartbeat too
    (tmp_path / HEARTBEAT.path.format(strategy_id="s1")).write_text('{"state": "running"}')
    return tmp_path, bad_file


def _check_bad_lines(data: dict[str, Any], root: Path, bad_file: Path) -> list[str]:
    v = data["validation"]
    rel = bad_file.relative_to(root).as_posix()
    n_good = 24  # the file holds one day of hourly records
    listed = {(b["path"], b["line"]): b["reason"] for b in v["bad_lines"]}
    assert v["bad"] == len(v["bad_lines"]) == 8  # 7 bad lines + the heartbeat
    assert set(listed) == {(rel, n_good + i) for i in range(1, 8)} | {
        ("logs/heartbeat/s1.json", 1)}
    per_file = {f["path"]: f for f in v["per_file"]}
    assert per_file[rel]["lines"] == n_good + 7
    assert per_file[rel]["bad"] == 7
    assert v["lines"] == sum(f["lines"] for f in v["per_file"])
    return [listed[(rel, n_good + i)] for i in range(1, 8)]


def test_bad_lines_are_skipped_and_listed(corrupt_root: tuple[Path, Path]) -> None:
    root, bad_file = corrupt_root
    result = write_report(root)
    data = page_data(result.path)
    reasons = _check_bad_lines(data, root, bad_file)
    assert "JSON" in reasons[0]
    assert "equity" in reasons[3]
    assert "strategy_id" in reasons[4]
    assert "duplicate bucket" in reasons[5]  # it lacks bars too: a note alone would keep it
    assert data["validation"]["checked_with"] == "ensemble-otel validate --strict"
    # the good records are all there, the bad ones are not
    s = data["strategies"][0]
    assert s["summary"]["buckets"] == 48
    assert len(s["columns"]["t"]) == 48
    assert s["heartbeat"] is None
    assert any("heartbeat" in n for n in s["notes"])
    assert result.bad_lines == 8 and result.ok
    html = result.path.read_text()
    assert f"{bad_file.relative_to(root).as_posix()}:25" in html


def test_without_the_contract_validator_the_own_check_decides(
        corrupt_root: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, bad_file = corrupt_root
    monkeypatch.setitem(sys.modules, "ensemble_otel.validate", None)  # import fails
    data = page_data(write_report(root).path)
    reasons = _check_bad_lines(data, root, bad_file)
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1] == "empty line"
    assert reasons[2] == "expected a JSON object, got list"
    assert reasons[3].startswith("equity: must be a finite number (got string")
    assert reasons[4] == "strategy_id: 'other' does not match the file's 's1'"
    assert reasons[5].startswith("duplicate bucket: ts 2024-03-01T00:00:00Z is already at ")
    v = data["validation"]
    assert v["checked_with"] == "the report's own permissive rules"
    assert "not importable" in v["validator_unavailable"]
    assert data["strategies"][0]["summary"]["buckets"] == 48


def test_a_failing_validator_does_not_break_the_report(
        corrupt_root: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import ensemble_otel.validate as validate_module

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(validate_module, "validate", broken)
    root, bad_file = corrupt_root
    data = page_data(write_report(root).path)
    _check_bad_lines(data, root, bad_file)
    assert "boom" in data["validation"]["validator_unavailable"]


def test_only_bad_lines_gives_a_page_and_not_ok(tmp_path: Path) -> None:
    d = tmp_path / "logs/1h/health_snapshot/s1"
    d.mkdir(parents=True)
    (d / "2024-03-01.jsonl").write_text("nope\n{}\n")
    result = write_report(tmp_path)
    assert not result.ok
    data = page_data(result.path)
    assert data["validation"]["bad"] == 2
    assert any("no 1h health snapshots to chart" in p for p in data["problems"])
    assert data["strategies"][0]["notes"] == [
        "no usable 1h health snapshots in the selection (logs/1h/health_snapshot/s1/)",
        "no heartbeat file (logs/heartbeat/s1.json)",
    ]


def test_a_file_with_an_impossible_date_is_still_read(tmp_path: Path) -> None:
    write_strategy(tmp_path, "s1", start=START, hours=2)
    src = tmp_path / "logs/1h/health_snapshot/s1/2024-03-01.jsonl"
    src.rename(src.with_name("2024-02-31.jsonl"))
    data = page_data(write_report(tmp_path, start=START.timestamp()).path)
    v = data["validation"]
    assert [f["path"] for f in v["per_file"]] == [
        "logs/1h/health_snapshot/s1/2024-02-31.jsonl", "logs/heartbeat/s1.json"]
    (note,) = v["notes"]  # the validator's finding about the file name, lines kept
    assert note.startswith("logs/1h/health_snapshot/s1/2024-02-31.jsonl: ")
    assert "2024-02-31" in note.split(": ", 1)[1]
    assert data["strategies"][0]["summary"]["buckets"] == 2


def test_duplicate_records_are_not_counted_twice(tmp_path: Path) -> None:
    write_strategy(tmp_path, "s1", start=START, hours=3)
    path = tmp_path / "logs/1h/health_snapshot/s1/2024-03-01.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    data = page_data(write_report(tmp_path).path)
    assert data["strategies"][0]["summary"]["buckets"] == len(
        file_records(tmp_path, "1h", "s1")) - 1
    (bad,) = data["validation"]["bad_lines"]
    assert bad["line"] == 4 and "duplicate" in bad["reason"]


def test_record_missing_a_field_is_charted_and_noted(tmp_path: Path) -> None:
    """An older or partial record: drawn with what it has, the notes say what it lacks."""
    write_strategy(tmp_path, "s1", start=START, hours=6, seed=3)
    path = sorted((tmp_path / "logs/1h/health_snapshot/s1").glob("*.jsonl"))[0]
    lines = path.read_text().splitlines()
    older = json.loads(lines[2])
    del older["turnover"], older["risk_warnings"]
    older["added_later"] = True
    lines[2] = json.dumps(older)
    path.write_text("\n".join(lines) + "\n")
    result = write_report(tmp_path)
    data = page_data(result.path)
    s = data["strategies"][0]
    assert len(s["columns"]["t"]) == 6 and result.bad_lines == 0
    assert s["columns"]["turnover"][2] is None
    assert s["columns"]["equity"][2] == older["equity"]
    notes = " ".join(data["validation"]["notes"])
    assert "records without risk_warnings (1), turnover (1)" in notes
    assert "added_later (1)" in notes


def test_values_near_the_float_limits_do_not_crash(tmp_path: Path) -> None:
    write_strategy(tmp_path, "s1", start=START, hours=4, seed=4)
    path = sorted((tmp_path / "logs/1h/health_snapshot/s1").glob("*.jsonl"))[0]
    records = [json.loads(x) for x in path.read_text().splitlines()]
    for r in records:
        r.update(pnl=1e308, equity=1.7e308, traded_notional=1e308, turnover=1e308)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = write_report(tmp_path)
    s = page_data(result.path)["strategies"][0]
    assert result.ok and len(s["columns"]["t"]) == 4
    assert s["summary"]["total_pnl"] is None or s["summary"]["total_pnl"] > 1e308


def test_report_lines_longer_than_the_limit_are_listed(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from ensemble_otel import readers

    write_strategy(tmp_path, "s1", start=START, hours=3, seed=5)
    path = sorted((tmp_path / "logs/1h/health_snapshot/s1").glob("*.jsonl"))[0]
    with open(path, "ab") as fh:
        fh.write(b'{"ts": "' + b"9" * (readers.MAX_LINE_BYTES + 1) + b'"}\n')
    data = page_data(write_report(tmp_path).path)
    reasons = [b["reason"] for b in data["validation"]["bad_lines"]]
    assert any(r.startswith(f"line longer than {readers.MAX_LINE_BYTES} bytes") for r in reasons)
    assert data["strategies"][0]["summary"]["buckets"] == 3


def test_symlinked_record_file_is_not_followed(tmp_path: Path) -> None:
    write_strategy(tmp_path, "s1", start=START, hours=3, seed=6)
    secret = tmp_path.parent / f"{tmp_path.name}-secret.txt"
    secret.write_text('{"ts": "2024-03-01T05:00:00Z", "strategy_id": "s1", "password": 1}\n')
    link = tmp_path / "logs/events/s1/2024-03-05.jsonl"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    hb = tmp_path / HEARTBEAT.path.format(strategy_id="s1")
    hb.unlink()
    hb.symlink_to("/dev/zero")
    path = write_report(tmp_path).path
    html = path.read_text()
    assert "password" not in html
    notes = " ".join(page_data(path)["validation"]["notes"])
    assert "logs/events/s1/2024-03-05.jsonl: not read: it is a symbolic link" in notes
    assert "logs/heartbeat/s1.json: not read: it is a symbolic link" in notes


@pytest.mark.parametrize("change", [
    {"equity": None}, {"equity": "100"}, {"bars": True}, {"bars": 1.5}, {"bars": 0},
    {"period": "5m"}, {"ts": "2024-02-30T00:00:00Z"}, {"first_bar_ts": ""},
    {"strategy_id": ""}, {"schema_version": "v1"}, {"realized_pnl": "x"},
])
def test_the_report_and_the_validator_judge_a_field_alike(change: dict[str, Any]) -> None:
    """One field checker: the report's reasons are the validator's, word for word (a
    calendar date, an empty string: the report took them before)."""
    from ensemble_otel._validate_rules import check_record

    record = {**good_record(), **change}
    validator = [p.message for p in check_record(record, HEALTH_1H)]
    assert validator and permissive_check(HEALTH_1H, record) == validator


@pytest.mark.parametrize("with_validator", [True, False])
def test_a_record_the_permissive_validator_accepts_is_charted_and_its_gaps_noted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_validator: bool) -> None:
    from ensemble_otel.validate import validate

    path = tmp_path / "logs/1h/health_snapshot/s1/2024-03-01.jsonl"
    path.parent.mkdir(parents=True)
    minimal = {"ts": "2024-03-01T00:00:00Z", "strategy_id": "s1", "schema_version": "1.0",
               "equity": 101.5}
    path.write_text(json.dumps(minimal) + "\n")
    assert validate([str(tmp_path)]).exit_code == 0  # permissive: accepted
    if not with_validator:
        monkeypatch.setitem(sys.modules, "ensemble_otel.validate", None)
    result = write_report(tmp_path)
    data = page_data(result.path)
    s = data["strategies"][0]
    assert result.bad_lines == 0
    assert s["columns"]["equity"] == [101.5]
    notes = " ".join(data["validation"]["notes"])
    assert "records without bars (1), drawdown (1)" in notes
    assert "charted with the fields they have" in notes
