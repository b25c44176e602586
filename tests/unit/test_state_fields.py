"""The health state loader judges its fields with the one field checker
(``_validate_fields.check_field``): the same number, finite and whole-number rules as the
validator and the report, in the state loader's own words."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from unit_support import at

from ensemble_otel._validate_fields import check_field
from ensemble_otel.health import store
from ensemble_otel.testing import capture


@pytest.fixture
def state(tmp_path: Path) -> dict[str, Any]:
    with capture(root=tmp_path, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 1), equity=100.0)
        cap.health.maybe_emit(at(1, 1), equity=101.0)
    saved = store.read_saved_state(cap.telemetry.settings.state_path)
    assert saved is not None
    store.check_state(saved)
    return saved


@pytest.mark.parametrize(("key", "value", "message"), [
    ("peak", math.nan, "state['peak'] = nan is not a finite number"),
    ("peak", -math.inf, "state['peak'] = -inf is not a finite number"),
    ("peak", None, "state['peak'] = None is not a finite number"),
    ("positions", 1.0, "state['positions'] = 1.0 is not a whole number"),
    ("dropped", "3", "state['dropped'] = '3' is not a whole number"),
])
def test_number_rules(state: dict[str, Any], key: str, value: Any, message: str) -> None:
    state[key] = value
    with pytest.raises(ValueError) as info:
        store.check_state(state)
    assert str(info.value) == message


def test_nullable_fields_take_null_and_big_whole_numbers(state: dict[str, Any]) -> None:
    state["positions"] = None
    state["equity"] = None
    state["total_bars"] = 2**70
    state["buckets"]["1h"]["last_start"] = None
    store.check_state(state)


@pytest.mark.parametrize(("seq", "ok"), [(0, True), (7, True), (-1, False), (True, False),
                                         (1.0, False), (None, False)])
def test_seq_is_a_whole_number_at_least_zero(state: dict[str, Any], seq: Any, ok: bool) -> None:
    state["seq"] = seq
    if ok:
        store._check_fields(state, store._SEQ, "state")
        return
    with pytest.raises(ValueError) as info:
        store._check_fields(state, store._SEQ, "state")
    assert str(info.value) == f"state['seq'] = {seq!r} is not a whole number >= 0"


def test_a_state_with_a_negative_seq_is_set_aside(tmp_path: Path) -> None:
    with capture(root=tmp_path, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 1), equity=100.0)
        path = cap.telemetry.settings.state_path
    state = orjson.loads(path.read_bytes())
    state["seq"] = -1
    path.write_bytes(orjson.dumps(state))
    with capture(root=tmp_path, strategy_id="s1"):
        assert path.with_name("s1.json.corrupt").exists()


def test_the_rules_are_the_field_checkers() -> None:
    # every state field is a registry Field judged by check_field, as record fields are
    for f in (*store._STATE_FIELDS, *store._BUCKET_FIELDS, *store._SEQ):
        assert f.type in ("integer", "number")
        assert check_field(None, f, True) is not None
        assert check_field(None, f, math.nan) is not None
        assert (check_field(None, f, None) is None) == f.nullable
        assert (check_field(None, f, 1.5) is None) == (f.type == "number")
