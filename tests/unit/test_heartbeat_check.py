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
from unit_support import run_bounded

from ensemble_otel import cli
from ensemble_otel._time import iso_micro
from ensemble_otel.heartbeat import Heartbeat, process_start, read_heartbeat
from ensemble_otel.heartbeat_cli import check
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


def test_default_max_age_is_three_intervals_of_the_file(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the interval written in the file decides, not the checker's environment
    monkeypatch.setenv("ENSEMBLE_HEARTBEAT_INTERVAL", "1000")
    _write_beat(root, age=25, interval_s=10)
    assert _check(root, capsys)[0] == 0
    _write_beat(root, age=35, interval_s=10)
    code, reason = _check(root, capsys)
    assert code == 1 and reason.startswith("stale") and "30" in reason


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


# -- a beat that does not prove life (issue: the heartbeat tells the truth) ------------------


def test_max_age_boundary_passes(root: Path) -> None:
    """A beat exactly max age old still passes; a microsecond more is stale."""
    path = _write_beat(root, interval_s=10)
    unix = read_heartbeat(path)["unix"]
    assert check(path, now=unix + 30.0)[0] == 0
    code, reason = check(path, now=unix + 30.000001)
    assert code == 1 and reason.startswith("stale")
    assert check(path, 5.0, now=unix + 5.0)[0] == 0
    assert check(path, 5.0, now=unix + 5.001)[0] == 1


@pytest.mark.parametrize("unix", [4102444800, 1e308])
def test_beat_from_the_future(root: Path, capsys: pytest.CaptureFixture[str],
                              unix: float) -> None:
    _write_beat(root, unix=unix)
    code, reason = _check(root, capsys)
    assert code == 1 and "heartbeat is from the future" in reason


def test_future_within_the_allowed_skew(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_beat(root, age=-60)  # a clock 1 min ahead: skew, not the future
    assert _check(root, capsys)[0] == 0
    code, reason = _check(root, capsys, "--max-skew", "30")
    assert code == 1 and "from the future" in reason
    assert _check(root, capsys, "--max-skew", "-1")[0] == 2


def test_beat_of_another_strategy(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_beat(root, strategy_id="other")
    code, reason = _check(root, capsys)
    assert code == 1 and "strategy_id" in reason and "'other'" in reason


def test_ts_and_unix_disagree(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_beat(root, ts="2020-01-01T00:00:00Z")
    code, reason = _check(root, capsys)
    assert code == 1 and "ts" in reason and "unix" in reason and "disagree" in reason


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"state": "alive"}, "state"), ({"pid": "12"}, "pid"), ({"interval_s": -1}, "interval_s"),
     ({"seq": 1.5}, "seq"), ({"host": ""}, "host"), ({"ts": "yesterday"}, "ts")],
)
def test_not_the_heartbeat_schema(root: Path, capsys: pytest.CaptureFixture[str],
                                  changes: dict[str, Any], field: str) -> None:
    _write_beat(root, **changes)
    code, reason = _check(root, capsys)
    assert code == 1 and f"{field}:" in reason


def test_missing_field_is_named(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_beat(root)
    beat = read_heartbeat(path)
    del beat["interval_s"]
    atomic_write_json(path, beat)
    code, reason = _check(root, capsys)
    assert code == 1 and "interval_s" in reason


def test_older_file_without_pid_start_and_newer_fields_pass(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_beat(root)
    beat = read_heartbeat(path)
    del beat["pid_start"]
    beat["added_later"] = 1
    atomic_write_json(path, beat)
    assert _check(root, capsys)[0] == 0


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_pid_on_this_host(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pid = _dead_pid()
    _write_beat(root, pid=pid)
    code, reason = _check(root, capsys)
    assert code == 1 and f"pid {pid} is not running" in reason
    assert _check(root, capsys, "--no-pid")[0] == 0
    _write_beat(root, pid=pid, host="elsewhere.example")  # another host: not checked
    assert _check(root, capsys)[0] == 0


def test_pid_reused_by_another_program(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = process_start(other.pid)
        assert start is not None
        _write_beat(root, pid=other.pid, pid_start=start + 100)  # a different process
        code, reason = _check(root, capsys)
        assert code == 1 and f"pid {other.pid} is not running" in reason
        assert "another program" in reason
        _write_beat(root, pid=other.pid, pid_start=start)  # that very process: alive
        assert _check(root, capsys)[0] == 0

        # an older file (no pid_start): the start time the beat implies (unix - uptime_s)
        # is compared with the process's
        path = _write_beat(root, pid=other.pid, uptime_s=0.0)
        beat = read_heartbeat(path)
        del beat["pid_start"]
        atomic_write_json(path, beat)
        assert _check(root, capsys)[0] == 0  # the beat's process began after this one
        beat["unix"], beat["ts"] = _beat_times(time.time() - 3600)  # it began an hour ago
        atomic_write_json(path, beat)
        code, reason = _check(root, capsys, "--max-age", "7200")
        assert code == 1 and "another program" in reason
    finally:
        other.kill()
        other.wait()


def _beat_times(unix: float) -> tuple[float, str]:
    return round(unix, 6), iso_micro(unix)


def test_pid_zero_is_not_a_live_process(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_beat(root, pid=0)
    code, reason = _check(root, capsys)
    assert code == 1 and "pid 0 is not running" in reason


BOT = """
import os, sys, time
import ensemble_otel
ensemble_otel.configure()
print("ready", flush=True)
time.sleep(600)
"""


def test_killed_bot_is_not_alive_five_seconds_later(root: Path) -> None:
    """The reproduction: interval 1 s, SIGKILL, checked 5 s later with the default max age
    by a checker whose own environment says nothing of the interval."""
    env = {**os.environ, "PAPER_TRADING_ROOT": str(root), "ENSEMBLE_STRATEGY_ID": STRATEGY,
           "ENSEMBLE_HEARTBEAT_INTERVAL": "1", "OTEL_SDK_DISABLED": "false"}
    bot = subprocess.Popen([sys.executable, "-c", BOT], env=env, stdout=subprocess.PIPE,
                           text=True)
    try:
        assert bot.stdout is not None and bot.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while not _beat_path(root).exists():
            assert time.monotonic() < deadline, "no heartbeat file"
            time.sleep(0.05)
        assert _run_script("--root", str(root), "--strategy", STRATEGY).returncode == 0
    finally:
        bot.kill()
        bot.wait()
    time.sleep(5)
    dead = _run_script("--root", str(root), "--strategy", STRATEGY)
    assert dead.returncode == 1 and f"pid {bot.pid} is not running" in dead.stderr
    stale = _run_script("--root", str(root), "--strategy", STRATEGY, "--no-pid")
    assert stale.returncode == 1 and stale.stderr.startswith("stale"), stale.stderr


# -- a hostile root: bounded, non-blocking reads and escaped output ----------------------------


def test_symlink_to_dev_zero_is_refused_quickly_in_bounded_memory(root: Path) -> None:
    path = _beat_path(root)
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/zero")
    argv = [_script(), "heartbeat", "check", "--root", str(root), "--strategy", STRATEGY]
    result, rss_kb = run_bounded(argv)
    assert result is not None, "the check did not finish"
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "symbolic link" in lines[0]
    assert rss_kb < 100 * 1024


def test_fifo_does_not_block(root: Path) -> None:
    path = _beat_path(root)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    result, _ = run_bounded([_script(), "heartbeat", "check", "--root", str(root), "--strategy",
                              STRATEGY])
    assert result is not None, "the check blocked on a FIFO"
    assert result.returncode == 1 and b"FIFO" in result.stderr


def test_file_over_64_kib_is_refused(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_beat(root)
    path.write_bytes(path.read_bytes()[:-2] + b', "pad": "' + b"x" * (64 << 10) + b'"}\n')
    code, reason = _check(root, capsys)
    assert code == 1 and "65536" in reason


def test_state_is_printed_escaped(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_beat(root)
    beat = read_heartbeat(path)
    beat["state"] = "stopped\nok: running, last beat 0.1s ago\x1b[8m"
    atomic_write_json(path, beat)
    code, reason = _check(root, capsys)  # _check asserts a single line
    assert code == 1 and "state" in reason
    assert not any(ord(c) < 32 or ord(c) == 127 for c in reason)


def test_path_is_printed_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r\nok: running, last beat 0.1s ago\x1b[8m\udcff"
    code, reason = _check(root, capsys)  # _check asserts a single line
    assert code == 1 and reason.startswith("missing")
    assert "\\n" in reason and "\\x1b" in reason and "\\xff" in reason
    assert not any(ord(c) < 32 or ord(c) == 127 for c in reason)


def test_ts_with_nine_fraction_digits_agrees(root: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    path = _write_beat(root)
    beat = read_heartbeat(path)
    beat["ts"] = beat["ts"][:-1] + "123Z"  # nanoseconds, as another writer may put them
    atomic_write_json(path, beat)
    assert _check(root, capsys)[0] == 0


def test_linked_directory_under_the_root_is_not_followed(
        root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    _write_beat(elsewhere)  # a live-looking beat, outside the root
    root.mkdir()
    (root / "logs").symlink_to(elsewhere / "logs", target_is_directory=True)
    code, reason = _check(root, capsys)
    assert code == 1 and "symbolic link" in reason
