"""`ensemble-otel heartbeat check`: 0 fresh and alive, 1 with a one-line reason, 2 on usage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ensemble_otel import cli
from ensemble_otel.heartbeat import Heartbeat
from ensemble_otel.jsonl import atomic_write_json
from ensemble_otel.settings import load_settings

STRATEGY = "probe"


def _beat_path(root: Path, strategy: str = STRATEGY) -> Path:
    return root / "logs" / "heartbeat" / f"{strategy}.json"


def _write_beat(root: Path, *, age: float = 0.0, state: str = "running",
                strategy: str = STRATEGY, **changes: Any) -> Path:
    heartbeat = Heartbeat(load_settings({}, root=root, strategy_id=strategy), "instance")
    record = heartbeat.record(time.time() - age, state)
    record.update(changes)
    path = _beat_path(root, strategy)
    atomic_write_json(path, record)
    return path


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse reports usage errors this way
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _check(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code, out, err = _main(
        ["heartbeat", "check", "--root", str(root), "--strategy", STRATEGY, *extra], capsys)
    text = out if code == 0 else err
    assert text.endswith("\n") and text.count("\n") == 1, f"not one line: {text!r}"
    assert (out == "") != (err == ""), "the reason goes to exactly one stream"
    return code, text.strip()


@pytest.mark.parametrize("state", ["starting", "running"])
def test_fresh_and_alive(root: Path, capsys: pytest.CaptureFixture[str], state: str) -> None:
    _write_beat(root, state=state, age=1)
    code, reason = _check(root, capsys, "--max-age", "30")
    assert code == 0
    assert reason.startswith("ok") and state in reason


def test_stale(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_beat(root, age=120)
    code, reason = _check(root, capsys, "--max-age", "60")
    assert code == 1 and reason.startswith("stale") and "60" in reason


@pytest.mark.parametrize("state", ["stopped", "stopping"])
def test_not_alive(root: Path, capsys: pytest.CaptureFixture[str], state: str) -> None:
    _write_beat(root, state=state, age=0)
    code, reason = _check(root, capsys, "--max-age", "60")
    assert code == 1 and reason.startswith(state)


def test_missing(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, reason = _check(root, capsys)
    assert code == 1 and reason.startswith("missing") and str(_beat_path(root)) in reason


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"{\"unix\": 1", b"[]", b"42", b"\xff\xfe\x00", b"null",
     b'{"unix": "yesterday", "state": "running"}', b'{"state": "running"}',
     b'{"unix": true, "state": "running"}'],
)
def test_garbage(root: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    path = _beat_path(root)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    code, reason = _check(root, capsys, "--max-age", "60")
    assert code == 1 and reason.startswith("unreadable")


def test_unreadable_path(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _beat_path(root).mkdir(parents=True)  # a directory where the file should be
    code, reason = _check(root, capsys)
    assert code == 1 and reason.startswith("unreadable")


def test_default_max_age_is_three_intervals(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENSEMBLE_HEARTBEAT_INTERVAL", "10")
    _write_beat(root, age=25)
    assert _check(root, capsys)[0] == 0
    _write_beat(root, age=35)
    code, reason = _check(root, capsys)
    assert code == 1 and "30" in reason


def test_root_and_strategy_from_environment(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_beat(root, strategy="from-env")
    monkeypatch.setenv("PAPER_TRADING_ROOT", str(root))
    monkeypatch.setenv("ENSEMBLE_STRATEGY_ID", "from-env")
    code, out, _ = _main(["heartbeat", "check"], capsys)
    assert code == 0 and out.startswith("ok")
    monkeypatch.setenv("STRATEGY_ID", "other")
    monkeypatch.delenv("ENSEMBLE_STRATEGY_ID")
    code, _, err = _main(["heartbeat", "check"], capsys)
    assert code == 1 and "other.json" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--max-age", "abc"], "max-age"),
        (["--max-age", "0"], "--max-age"),
        (["--max-age", "-5"], "--max-age"),
        (["--max-age", "nan"], "--max-age"),
        (["--strategy", "../etc"], "strategy"),
        (["--bogus"], "--bogus"),
    ],
)
def test_usage_errors(root: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                      needle: str) -> None:
    _write_beat(root)
    base = ["heartbeat", "check", "--root", str(root)]
    if "--strategy" not in argv:
        base += ["--strategy", STRATEGY]
    code, _, err = _main(base + argv, capsys)
    assert code == 2
    assert needle in err


def test_usage_error_from_a_bad_variable(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENSEMBLE_HEARTBEAT_INTERVAL", "never")
    code, _, err = _main(["heartbeat", "check", "--root", str(root)], capsys)
    assert code == 2 and "ENSEMBLE_HEARTBEAT_INTERVAL" in err


@pytest.mark.parametrize("argv", [["heartbeat"], [], ["heartbeat", "nosuch"]])
def test_usage_errors_without_an_action(capsys: pytest.CaptureFixture[str],
                                        argv: list[str]) -> None:
    assert _main(argv, capsys)[0] == 2


# -- the installed console script, as a liveness probe runs it --------------------------------


def _script() -> str:
    found = shutil.which("ensemble-otel", path=str(Path(sys.executable).parent))
    assert found, "the ensemble-otel console script is not installed next to this python"
    return found


def _run_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENSEMBLE_", "OTEL_")) and k != "PAPER_TRADING_ROOT"}
    return subprocess.run([_script(), "heartbeat", "check", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_console_script_exit_codes(root: Path) -> None:
    args = ("--root", str(root), "--strategy", STRATEGY, "--max-age", "60")
    missing = _run_script(*args)
    assert missing.returncode == 1 and missing.stderr.startswith("missing")

    _write_beat(root, age=1)
    fresh = _run_script(*args)
    assert fresh.returncode == 0 and fresh.stdout.startswith("ok"), fresh.stderr

    _write_beat(root, age=600)
    stale = _run_script(*args)
    assert stale.returncode == 1 and stale.stderr.startswith("stale")

    _write_beat(root, state="stopped")
    stopped = _run_script(*args)
    assert stopped.returncode == 1 and stopped.stderr.startswith("stopped")

    _beat_path(root).write_bytes(b"{garbage")
    garbage = _run_script(*args)
    assert garbage.returncode == 1 and garbage.stderr.startswith("unreadable")

    usage = _run_script("--root", str(root), "--max-age", "soon")
    assert usage.returncode == 2 and "max-age" in usage.stderr
