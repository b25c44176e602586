"""The telemetry contract: schemas derived from the registry, and code that keeps to it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from unit_support import at

from ensemble_otel import settings
from ensemble_otel.contract import registry, schemas
from ensemble_otel.testing import capture
from ensemble_otel.validate import validate

KINDS = registry.RECORD_KINDS_BY_NAME


def _validator(kind_name: str) -> Draft202012Validator:
    schema = schemas.load(kind_name)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _errors(kind_name: str, record: dict[str, Any]) -> list[str]:
    return [e.message for e in _validator(kind_name).iter_errors(record)]


# --- the committed files -------------------------------------------------------------------


def test_committed_schema_files_equal_the_generated_ones() -> None:
    stale = schemas.stale()
    assert stale == [], (
        f"stale schema files {stale}: run `python -m ensemble_otel.contract.schemas`")


def test_stale_detects_an_edited_and_an_extra_file(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    assert schemas.stale(tmp_path) == []
    target = tmp_path / schemas.file_name(registry.EVENT)
    target.write_text(target.read_text().replace('"minLength": 1', '"minLength": 0', 1))
    (tmp_path / "old.schema.json").write_text("{}")
    assert schemas.stale(tmp_path) == [schemas.file_name(registry.EVENT), "old.schema.json"]
    assert schemas.main(["--check", "--dir", str(tmp_path)]) == 1


def test_every_kind_has_a_schema_file_shipped_as_package_data() -> None:
    names = {p.name for p in schemas.SCHEMA_DIR.glob("*.json")}
    assert names == {schemas.file_name(k) for k in registry.RECORD_KINDS}
    for kind in registry.RECORD_KINDS:
        assert schemas.load(kind.name)["title"] == kind.name


@pytest.mark.parametrize("kind", registry.RECORD_KINDS, ids=lambda k: k.name)
def test_schema_is_valid_draft_2020_12(kind: registry.RecordKind) -> None:
    schema = schemas.load(kind.name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("kind", registry.RECORD_KINDS, ids=lambda k: k.name)
def test_schema_follows_the_registry(kind: registry.RecordKind) -> None:
    schema = schemas.load(kind.name)
    assert list(schema["properties"]) == list(kind.field_names())
    assert schema["required"] == [f.name for f in kind.fields if f.required]
    assert schema["additionalProperties"] is kind.additional_fields
    for f in kind.fields:
        prop = schema["properties"][f.name]
        assert (prop["type"] == [f.type, "null"]) if f.nullable else (prop["type"] == f.type)
        if f.format == "date-time":
            assert prop["format"] == "date-time"
            assert prop["pattern"] == registry.UTC_TIMESTAMP_PATTERN
        if f.minimum is not None:
            assert prop["minimum"] == f.minimum


def test_only_events_take_extra_fields() -> None:
    assert [k.name for k in registry.RECORD_KINDS if k.additional_fields] == ["event"]


def test_snapshot_period_is_the_one_its_directory_names() -> None:
    assert schemas.load("health_snapshot_1h")["properties"]["period"]["enum"] == ["1h"]
    assert schemas.load("health_snapshot_24h")["properties"]["period"]["enum"] == ["24h"]


# --- what the schemas accept and reject ----------------------------------------------------

GOOD_EVENT = {"ts": "2024-03-01T10:00:00.123456Z", "event": "order_filled",
              "strategy_id": "s1", "schema_version": "1.1", "qty": 3, "nested": {"a": [1]}}


def test_event_extra_fields_are_free_but_metadata_is_typed() -> None:
    assert _errors("event", GOOD_EVENT) == []
    assert _errors("event", {**GOOD_EVENT, "strategy_id": 5})
    assert _errors("event", {**GOOD_EVENT, "schema_version": ""})
    missing = dict(GOOD_EVENT)
    del missing["strategy_id"]
    assert any("strategy_id" in m for m in _errors("event", missing))


@pytest.mark.parametrize("ts", [
    "2024-03-01T10:00:00Z", "2024-03-01T10:00:00+00:00", "2024-03-01T10:00:00.5Z",
    "2024-03-01T23:59:59.123456789Z",
])
def test_utc_timestamps_accepted(ts: str) -> None:
    assert _errors("event", {**GOOD_EVENT, "ts": ts}) == []


@pytest.mark.parametrize("ts", [
    "2024-03-01T10:00:00+02:00", "2024-03-01T10:00:00", "2024-03-01 10:00:00Z",
    "2024-03-01t10:00:00z", "2024-13-01T10:00:00Z", "2024-03-01T24:00:00Z", "1709287200", "",
])
def test_non_utc_or_malformed_timestamps_rejected(ts: str) -> None:
    assert _errors("event", {**GOOD_EVENT, "ts": ts}), ts
    assert _strict_rules("event", {**GOOD_EVENT, "ts": ts}), ts


@pytest.mark.parametrize("ts", ["2024-03-01T10:00:00Z\n", "2024-02-30T10:00:00Z"])
def test_validator_is_stricter_than_python_jsonschema_on_timestamps(ts: str) -> None:
    """Python's ``re`` lets ``$`` match before a final newline (ECMA-262 does not), and
    the pattern cannot know February has no 30th: the validator rejects both."""
    assert _errors("event", {**GOOD_EVENT, "ts": ts}) == []
    assert [p.rule for p in _strict_rules("event", {**GOOD_EVENT, "ts": ts})] == ["timestamp"]


def _strict_rules(kind_name: str, record: dict[str, Any]) -> list[Any]:
    from ensemble_otel._validate_rules import check_record

    return check_record(record, KINDS[kind_name])


def test_strict_schema_rejects_an_unknown_field() -> None:
    record = _snapshot_like()
    assert _errors("health_snapshot_1h", record) == []
    errors = _errors("health_snapshot_1h", {**record, "colour": "red"})
    assert any("colour" in m for m in errors)


def test_python_json_nan_and_infinity_are_not_records() -> None:
    """Python's json reads NaN/Infinity; the validator does not (JSON has neither)."""
    line = json.dumps({**GOOD_EVENT, "x": float("nan")}).encode() + b"\n"
    assert b"NaN" in line
    from ensemble_otel._validate_rules import diagnose

    for text in (line, line.replace(b"NaN", b"Infinity"), line.replace(b"NaN", b"-Infinity")):
        problems = diagnose(text.rstrip(b"\n"), strict=True)
        assert [p.rule for p in problems] == ["json"], problems


def _snapshot_like() -> dict[str, Any]:
    return {
        "ts": "2024-03-01T10:00:00Z", "period": "1h", "strategy_id": "s1",
        "schema_version": "1.1", "equity": 1000.0, "peak_equity": 1010.0, "drawdown": 0.0099,
        "max_drawdown": 0.02, "pnl": -3.5, "turnover": 0.1, "traded_notional": 100.0,
        "realized_pnl": None, "unrealized_pnl": 2.0, "open_positions": None,
        "risk_breaches": 0, "risk_warnings": 1, "bars": 4,
        "first_bar_ts": "2024-03-01T10:00:00Z", "last_bar_ts": "2024-03-01T10:45:00Z",
    }


# --- registry formats agree with the settings that produce the values ----------------------


@pytest.mark.parametrize("value", [
    "s1", "ens-01.eurusd", "A_b-c.d", "x" * 64, "", "x" * 65, "a..b", "-a", ".a", "a/b",
    "a b", "é",
])
def test_strategy_id_pattern_agrees_with_settings(value: str) -> None:
    by_settings = settings.STRATEGY_ID_RE.fullmatch(value) is not None and ".." not in value
    by_registry = re.search(registry.STRATEGY_ID_PATTERN, value) is not None
    assert by_registry == by_settings, value


@pytest.mark.parametrize("value", ["1.1", "0.0", "10.20", "1", "1.1.1", "01.1", "1.01",
                                   "v1.1", "", "1234567.1"])
def test_schema_version_pattern_agrees_with_settings(value: str) -> None:
    by_settings = settings.SCHEMA_VERSION_RE.fullmatch(value) is not None
    by_registry = re.search(registry.SCHEMA_VERSION_PATTERN, value) is not None
    assert by_registry == by_settings, value


# --- what the code emits -------------------------------------------------------------------


def _run_bot(root: Path) -> tuple[set[str], dict[str, str], list[dict[str, Any]]]:
    """Bars across hour and day boundaries, an event, shutdown. Returns the metric names
    collected, their units, and the records maybe_emit returned."""
    returned: list[dict[str, Any]] = []
    with capture(root=root, strategy_id="s1", schema_version="1.1") as cap:
        equity = 1000.0
        # 22:00 on day 0 to 02:00 on day 2: hour closes, two day closes
        for k in range(0, 28 * 4 + 1):
            minutes = 22 * 60 + 15 * k
            equity += (k % 7) - 3
            returned += cap.health.maybe_emit(
                at(minutes=minutes), equity=equity, realized_pnl=float(k),
                unrealized_pnl=-1.5, traded_notional=25.0, risk_breaches=k % 2,
                risk_warnings=1, open_positions=k % 3)
        cap.events.emit("order_filled", symbol="EURUSD", qty=1000, price=1.1)
        cap.events.emit("note", text="no extra numbers")
        points = cap.collect()
        names = {p.name for p in points}
        units = {p.name: p.unit for p in points}
    return names, units, returned


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Path, set[str], dict[str, str], list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("contract") / "root"
    names, units, returned = _run_bot(root)
    return root, names, units, returned


def _records(root: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {k.name: [] for k in registry.RECORD_KINDS}
    for kind in registry.RECORD_KINDS:
        glob = re.sub(r"\{[^}]+\}", "*", kind.path)
        for path in sorted(root.glob(glob)):
            text = path.read_text(encoding="utf-8")
            found[kind.name] += [json.loads(line) for line in text.splitlines()]
    return found


def test_every_kind_is_emitted_and_valid_against_its_schema(emitted: Any) -> None:
    root, _, _, returned = emitted
    found = _records(root)
    for kind in registry.RECORD_KINDS:
        assert found[kind.name], f"no {kind.name} record under {root}"
        for record in found[kind.name]:
            assert _errors(kind.name, record) == [], (kind.name, record)
    assert len(found["health_snapshot_24h"]) >= 1 and len(found["health_snapshot_1h"]) >= 24
    assert returned, "maybe_emit returned no closed-bucket records"
    for record in returned:
        kind = "health_snapshot_1h" if record["period"] == "1h" else "health_snapshot_24h"
        assert _errors(kind, record) == [], record


def test_emitted_records_have_no_field_the_registry_lacks(emitted: Any) -> None:
    root, _, _, _ = emitted
    for kind_name, records in _records(root).items():
        kind = KINDS[kind_name]
        known = set(kind.field_names())
        for record in records:
            if kind.additional_fields:
                continue
            extra = set(record) - known
            assert not extra, f"{kind_name} record has fields the registry lacks: {extra}"
            missing = known - set(record)
            assert not missing, f"{kind_name} record lacks registry fields: {missing}"


def test_emitted_metrics_are_the_registry_metrics(emitted: Any) -> None:
    _, names, units, _ = emitted
    unknown = names - set(registry.METRICS_BY_NAME)
    assert not unknown, f"metrics emitted that the registry lacks: {sorted(unknown)}"
    never = set(registry.METRICS_BY_NAME) - names
    assert not never, f"registry metrics never emitted with every input given: {sorted(never)}"
    for name in names:
        assert units[name] == registry.METRICS_BY_NAME[name].unit, name


def test_emitted_tree_passes_strict_validation(emitted: Any) -> None:
    root, _, _, _ = emitted
    report = validate([str(root)], strict=True)
    assert report.violations == [] and report.exit_code == 0
    assert report.files >= 5 and report.records >= 30


def test_emitted_tree_with_a_foreign_field_fails_strict_validation(
        emitted: Any, tmp_path: Path) -> None:
    """The validator is the check a CI run relies on: a field the registry lacks fails it."""
    root, _, _, _ = emitted
    target = sorted(root.glob("logs/1h/health_snapshot/s1/*.jsonl"))[0]
    copy = tmp_path / target.relative_to(root)
    copy.parent.mkdir(parents=True)
    lines = target.read_bytes().splitlines()
    record = json.loads(lines[0])
    record["sharpe"] = 1.2
    copy.write_bytes(json.dumps(record).encode() + b"\n")
    report = validate([str(tmp_path)], strict=True)
    assert [(v.line, v.rule, v.field) for v in report.violations] == [
        (1, "unknown-field", "sharpe")]


# --- the generated reference ---------------------------------------------------------------


def _gen_reference() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "gen_reference.py"
    spec = importlib.util.spec_from_file_location("gen_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_reference_is_current() -> None:
    gen = _gen_reference()
    assert gen.TARGET.read_text(encoding="utf-8") == gen.render(), (
        "docs/reference.md is stale: run `python scripts/gen_reference.py`")
    readme = gen.README.read_text(encoding="utf-8")
    assert readme == gen.readme(readme), (
        "README.md's record formats are stale: run `python scripts/gen_reference.py`")
    assert gen.main(["--check"]) == 0


def test_reference_names_every_registry_entry() -> None:
    text = _gen_reference().render()
    for m in registry.METRICS:
        assert f"| `{m.name}` |" in text and f"`{m.prometheus}`" in text
    for attribute in registry.RESOURCE_ATTRIBUTES:
        assert f"| `{attribute}` |" in text
    for kind in registry.RECORD_KINDS:
        assert f"### {kind.name}" in text
        for f in kind.fields:
            assert f"| `{f.name}` |" in text
