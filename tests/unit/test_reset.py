"""Starting a strategy's files over: ``ensemble-otel reset``, ``configure(fresh=True)``,
``ENSEMBLE_FRESH=1``. Only that strategy's files go; no symlink is followed; a strategy a
live process holds is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import ensemble_otel
from ensemble_otel.cli import main
from ensemble_otel.reset import ResetError, reset

REPO = Path(__file__).resolve().parents[2]


def _run_bot(root: Path, sid: str, hours: int = 3) -> None:
    telemetry = ensemble_otel.configure(root=root, strategy_id=sid, heartbeat_interval=3600)
    for h in range(hours):
        telemetry.health.maybe_emit(1_700_000_000 + 3600 * h, equity=100.0 + h)
    telemetry.events.emit("hello")
    ensemble_otel.shutdown()


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _of(files: set[str], sid: str) -> set[str]:
    return {f for f in files if f"/{sid}/" in f or Path(f).name.startswith(f"{sid}.")}


def test_reset_removes_only_that_strategys_files(root: Path) -> None:
    for sid in ("a", "a.json", "ab", "b"):  # names that share a prefix with "a"
        _run_bot(root, sid)
    before = _files(root)
    removed = reset(root, "a")
    after = _files(root)
    gone = before - after
    assert gone == {
        "state/health/a.json", "logs/heartbeat/a.json",
        *(f for f in before if f.startswith(("logs/1h/health_snapshot/a/",
                                             "logs/24h/health_snapshot/a/",
                                             "logs/events/a/"))),
    }
    assert "state/a.lock" in after  # the lock file stays (it holds nothing)
    assert {p.name for p in removed} >= {"a.json", "a"}
    for other in ("a.json", "ab", "b"):
        assert f"logs/heartbeat/{other}.json" in after
        assert f"state/health/{other}.json" in after


def test_after_a_reset_the_same_bars_are_recorded_again(root: Path) -> None:
    _run_bot(root, "s1")
    reset(root, "s1")
    telemetry = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    assert telemetry.health.peak == 0.0  # nothing restored
    written = telemetry.health.maybe_emit(1_700_000_000, equity=100.0)
    written += telemetry.health.maybe_emit(1_700_003_600, equity=101.0)
    assert [r["equity"] for r in written] == [100.0]


def test_reset_refuses_while_a_live_process_holds_the_strategy(root: Path) -> None:
    _run_bot(root, "s1")
    ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    before = _files(root)
    with pytest.raises(ResetError, match=f"pid {os.getpid()}"):
        reset(root, "s1")
    assert _files(root) == before


def test_cli_reset_exit_codes(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run_bot(root, "s1")
    held = ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    assert main(["reset", "--root", str(root), "--strategy", "s1"]) == 1
    assert "live process" in capsys.readouterr().err
    held.shutdown()
    assert main(["reset", "--root", str(root), "--strategy", "s1"]) == 0
    assert "removed" in capsys.readouterr().out
    assert not (root / "logs" / "heartbeat" / "s1.json").exists()
    assert main(["reset", "--root", str(root), "--strategy", "../up"]) == 1
    assert "strategy_id" in capsys.readouterr().err


def test_cli_reset_as_a_subprocess_refuses_a_live_bot(root: Path) -> None:
    _run_bot(root, "s1")
    ensemble_otel.configure(root=root, strategy_id="s1", heartbeat_interval=3600)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "ensemble_otel.cli", "reset", "--root",
                           str(root), "--strategy", "s1"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 1 and f"pid {os.getpid()}" in done.stderr


def test_reset_never_follows_a_symlinked_directory(root: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    (victim / "health_snapshot" / "s1").mkdir(parents=True)
    precious = victim / "health_snapshot" / "s1" / "2024-01-01.jsonl"
    precious.write_text("keep\n")
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "1h").symlink_to(victim, target_is_directory=True)
    with pytest.raises(ResetError, match="symlink"):
        reset(root, "s1")
    assert precious.read_text() == "keep\n"


def test_reset_removes_a_planted_link_not_its_target(root: Path, tmp_path: Path) -> None:
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    precious = victim_dir / "profile"
    precious.write_text("keep\n")
    (root / "logs" / "heartbeat").mkdir(parents=True)
    (root / "logs" / "heartbeat" / "s1.json").symlink_to(precious)
    (root / "logs" / "events").mkdir(parents=True)
    (root / "logs" / "events" / "s1").symlink_to(victim_dir, target_is_directory=True)
    reset(root, "s1")
    assert precious.read_text() == "keep\n" and victim_dir.is_dir()
    assert not (root / "logs" / "heartbeat" / "s1.json").is_symlink()
    assert not (root / "logs" / "events" / "s1").is_symlink()


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_fresh_starts_the_strategy_over(
    root: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    _run_bot(root, "s1")
    _run_bot(root, "s2")
    if how == "environment":
        monkeypatch.setenv("ENSEMBLE_FRESH", "1")
        telemetry = ensemble_otel.configure(root=root, strategy_id="s1")
    else:
        telemetry = ensemble_otel.configure(root=root, strategy_id="s1", fresh=True)
    assert telemetry.health.peak == 0.0
    assert not (root / "logs" / "1h" / "health_snapshot" / "s1").exists()
    assert (root / "logs" / "1h" / "health_snapshot" / "s2").is_dir()
    beat = orjson.loads((root / "logs" / "heartbeat" / "s1.json").read_bytes())
    assert beat["state"] == "starting" and beat["seq"] == 0


def test_fresh_is_refused_while_another_process_holds_the_strategy(root: Path) -> None:
    _run_bot(root, "s1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSEMBLE_", "OTEL_"))}
    env["PYTHONPATH"] = str(REPO)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, ensemble_otel; ensemble_otel.configure("
         "root=sys.argv[1], strategy_id='s1'); print('held', flush=True); sys.stdin.read()",
         str(root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        before = _files(root)
        with pytest.raises(ensemble_otel.ConfigError, match="another live process"):
            ensemble_otel.configure(root=root, strategy_id="s1", fresh=True)
        assert {f for f in _files(root) if not f.startswith("logs/heartbeat")} == {
            f for f in before if not f.startswith("logs/heartbeat")}
    finally:
        holder.communicate("", timeout=30)


def test_paths_of_a_strategy_come_from_the_contract_templates(tmp_path: Path) -> None:
    """The writers, reset and the demo build every path from the registry's templates."""
    from ensemble_otel.contract.registry import (
        EVENT,
        HEALTH_STATE_PATH,
        HEARTBEAT,
        STRATEGY_LOCK_PATH,
    )
    from ensemble_otel.demo.cli import strategy_paths
    from ensemble_otel.paths import strategy_dir_entries, strategy_entry
    from ensemble_otel.settings import Settings

    assert strategy_entry(EVENT, "s1") == (("logs", "events"), "s1")
    assert strategy_entry(HEARTBEAT, "s1") == (("logs", "heartbeat"), "s1.json")
    assert strategy_entry(STRATEGY_LOCK_PATH, "s1") == (("state",), "s1.lock")
    assert strategy_entry(HEALTH_STATE_PATH, "s1") == (("state", "health"), "s1.json")
    assert [(d, n, f) for d, n, f in strategy_dir_entries("s1") if f] == [
        (("logs", "heartbeat"), "s1.json", True), (("state", "health"), "s1.json", True)]
    settings = Settings(strategy_id="s1", root=tmp_path)
    assert settings.heartbeat_path == tmp_path / "logs/heartbeat/s1.json"
    assert settings.lock_path == tmp_path / "state/s1.lock"
    assert settings.state_dir == tmp_path / "state"
    assert settings.state_path == tmp_path / "state/health/s1.json"
    assert strategy_paths(tmp_path, "s1") == [
        tmp_path / "logs/heartbeat/s1.json", tmp_path / "logs/1h/health_snapshot/s1",
        tmp_path / "logs/24h/health_snapshot/s1", tmp_path / "logs/events/s1"]


def test_reset_removes_temp_files_cut_short_under_either_naming(tmp_path: Path) -> None:
    for directory in ("logs/heartbeat", "state/health"):
        (tmp_path / directory).mkdir(parents=True)
        for name in (".s1.json.0123456789abcdef.tmp", ".s1.json.12.3.tmp"):
            (tmp_path / directory / name).write_text("{}")
        (tmp_path / directory / ".s10.json.0123456789abcdef.tmp").write_text("{}")
    reset(tmp_path, "s1")
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.tmp"))
    assert left == ["logs/heartbeat/.s10.json.0123456789abcdef.tmp",
                    "state/health/.s10.json.0123456789abcdef.tmp"]


def test_a_start_clears_its_strategys_leftover_temp_files(tmp_path: Path) -> None:
    """A SIGKILL during an atomic replacement leaves `.<name>.<16 hex>.tmp`: the next
    writer of that strategy (it holds the lock) removes its own, never another's."""
    from ensemble_otel.testing import capture

    root = tmp_path / "root"
    leftovers = [root / "state" / "health" / ".s1.json.0123456789abcdef.tmp",
                 root / "logs" / "heartbeat" / ".s1.json.fedcba9876543210.tmp"]
    others = [root / "state" / "health" / ".s2.json.0123456789abcdef.tmp",
              root / "logs" / "heartbeat" / ".s1.json.notatemp.tmp",
              root / "state" / "health" / "s1.json.keep"]
    for path in leftovers + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{}")
    with capture(root=root, strategy_id="s1"):
        assert [p for p in leftovers if p.exists()] == []
        assert all(p.exists() for p in others)
