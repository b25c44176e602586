"""`heartbeat check` in detail: the exact one-line reason of every verdict, the boundaries
(skew, ts/unix tolerance, max age, the pid's start time), the usage errors and the help."""

from __future__ import annotations

import errno
import io
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from ensemble_otel import cli, heartbeat_cli
from ensemble_otel._time import iso_micro
from ensemble_otel.heartbeat import Heartbeat, own_start
from ensemble_otel.heartbeat_cli import Verdict, _age_text, _not_running, assess, check
from ensemble_otel.jsonl import atomic_write_json
from ensemble_otel.settings import ConfigError, load_settings

U = 1_700_000_000.0
STRATEGY = "probe"


def _beat(root: Path, unix: float = U, **changes: Any) -> tuple[Path, dict[str, Any]]:
    heartbeat = Heartbeat(load_settings({}, root=root, strategy_id=STRATEGY), "instance")
    record = heartbeat.record(unix, "running")
    record.update(changes)
    path = root / "logs" / "heartbeat" / f"{STRATEGY}.json"
    atomic_write_json(path, record)
    return path, record


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# -- the verdicts, word for word ---------------------------------------------------------------


def test_ok_verdict(root: Path) -> None:
    path, record = _beat(root)
    verdict = assess(path, STRATEGY, now=U + 1.5)
    assert verdict == Verdict(
        "ok", f"ok: running, last beat 1.5s ago (seq 0, pid {os.getpid()})", record, 1.5)
    assert verdict.ok and verdict.code == 0
    assert check(path, now=U + 1.5) == (0, verdict.reason)


def test_a_beat_slightly_ahead_is_zero_seconds_old(root: Path) -> None:
    path, _ = _beat(root)
    verdict = assess(path, now=U - 10)
    assert verdict.reason.startswith("ok: running, last beat 0.0s ago (seq 0")
    assert verdict.age == -10


def test_missing_verdict(root: Path) -> None:
    path = root / "nothing.json"
    verdict = assess(path)
    assert verdict == Verdict("missing", f"missing: {path} does not exist")
    assert not verdict.ok and verdict.code == 1


def test_unreadable_verdict_joins_every_problem(root: Path) -> None:
    path, record = _beat(root, seq=1.5, host="", later_field=1)
    verdict = assess(path, now=U)
    assert verdict.status == "unreadable" and verdict.beat == record and verdict.age is None
    prefix = f"unreadable: {path}: not a heartbeat: "
    assert verdict.reason.startswith(prefix)
    problems = verdict.reason[len(prefix):].split("; ")
    assert len(problems) == 2, problems  # an unknown field is not one
    assert [p.split(":")[0] for p in problems] == ["seq", "host"]


def test_unreadable_file(root: Path) -> None:
    path = root / "beat.json"
    root.mkdir()
    path.write_bytes(b"{")
    verdict = assess(path)
    assert verdict.status == "unreadable" and verdict.reason.startswith(f"unreadable: {path}: ")
    assert verdict.beat is None


def test_mismatch_of_strategy(root: Path) -> None:
    path, record = _beat(root, strategy_id="other")
    assert assess(path, "probe", now=U) == Verdict(
        "mismatch", f"mismatch: strategy_id is 'other' in {path}, expected 'probe'", record)
    assert assess(path, None, now=U).ok  # no strategy asked: any


def test_future_verdict_and_its_boundary(root: Path) -> None:
    path, record = _beat(root)
    assert assess(path, now=U - 300).ok  # exactly the allowed skew
    verdict = assess(path, now=U - 400)
    assert verdict == Verdict(
        "future", f"future: heartbeat is from the future: unix {U} is 400.0s ahead of this "
        f"clock (allowed skew 300s; {path})", record, -400.0)
    assert assess(path, now=U - 31, max_skew=30.0).status == "future"
    assert assess(path, now=U - 30, max_skew=30.0).ok


def test_ts_and_unix_may_differ_by_one_second(root: Path) -> None:
    path, _ = _beat(root, ts=iso_micro(U + 1.0))
    assert assess(path, now=U).ok
    path, record = _beat(root, ts=iso_micro(U - 1.5))
    verdict = assess(path, now=U + 2)
    assert verdict == Verdict(
        "mismatch", f"mismatch: ts {record['ts']} and unix {U} disagree ({path})", record, 2.0)


def test_ts_out_of_range_disagrees(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = _beat(root)

    def overflow(text: str) -> float:
        raise OverflowError(text)

    monkeypatch.setattr(heartbeat_cli, "parse_iso", overflow)
    assert assess(path, now=U).status == "mismatch"


def test_stopped_verdict(root: Path) -> None:
    path, record = _beat(root, state="stopped")
    assert assess(path, now=U + 1) == Verdict(
        "stopped", f"stopped: {path} says state='stopped' (pid {os.getpid()})", record, 1.0)


def test_stale_verdict_and_the_default_max_age(root: Path) -> None:
    path, record = _beat(root, interval_s=10)
    assert assess(path, now=U + 30).ok
    verdict = assess(path, now=U + 30.5)
    assert verdict == Verdict(
        "stale", f"stale: last beat 30.5s ago > max age 30s ({path})", record, 30.5)
    assert assess(path, max_age=60.0, now=U + 45).ok
    assert check(path, 40.0, now=U + 45) == (
        1, f"stale: last beat 45.0s ago > max age 40s ({path})")


def test_dead_verdict_names_pid_and_host(root: Path) -> None:
    path, record = _beat(root, pid=0)
    assert assess(path, now=U) == Verdict(
        "dead", f"dead: pid 0 is not running (host {socket.gethostname()}, {path}; --no-pid "
        "skips this)", record, 0.0)
    assert assess(path, now=U, check_pid=False).ok
    assert check(path, now=U, check_pid=False)[0] == 0


def test_age_text() -> None:
    assert _age_text(2.25) == "2.2s"
    assert _age_text(-2.25) == "-2.2s"
    assert _age_text(999e12) == "999000000000000.0s"
    assert _age_text(1e15) == "1e+15s"
    assert _age_text(-1e16) == "-1e+16s"


# -- is the pid the beat's process ----------------------------------------------------------------


def _own(**changes: Any) -> dict[str, Any]:
    beat = {"pid": os.getpid(), "pid_start": own_start(), "unix": U, "uptime_s": 0.0}
    beat.update(changes)
    return beat


def test_own_process_runs() -> None:
    assert _not_running(_own()) is None


@pytest.mark.parametrize("pid", [-1, 0, 2**70])
def test_impossible_pids_do_not_run(pid: int) -> None:
    assert _not_running(_own(pid=pid)) == ""


def test_a_pid_of_another_user_runs_and_any_other_error_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(pid: int, sig: int) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "kill", denied)
    assert _not_running(_own()) is None

    def gone(pid: int, sig: int) -> None:
        raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))

    monkeypatch.setattr(os, "kill", gone)
    assert _not_running(_own()) == ""


def test_a_process_gone_between_the_two_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeat_cli, "process_start", lambda pid: None)
    assert _not_running(_own()) == ""


def test_a_recorded_start_time_decides() -> None:
    start = own_start()
    assert start is not None
    assert _not_running(_own(pid_start=start + 1)) == " (the pid now belongs to another program)"


@pytest.fixture
def clock_of_boot(monkeypatch: pytest.MonkeyPatch) -> float:
    """The beat's pid started 10.0 s after a boot at U (1000 ticks of 100 Hz)."""
    monkeypatch.setattr(heartbeat_cli, "process_start", lambda pid: 1000)
    monkeypatch.setattr(heartbeat_cli, "_boot_time", lambda: U)
    real = os.sysconf
    monkeypatch.setattr(os, "sysconf",
                        lambda name: 100 if name == "SC_CLK_TCK" else real(name))
    return U + 10.0


@pytest.mark.parametrize("recorded", ["absent", True])
def test_without_a_recorded_start_the_beat_uptime_decides(
        clock_of_boot: float, recorded: Any) -> None:
    changes: dict[str, Any] = {"pid_start": recorded} if recorded is True else {}
    began = clock_of_boot
    # the telemetry began 5 s (the tolerance) before the process: still the same one
    beat = _own(unix=began - 5.0 + 20.0, uptime_s=20.0, **changes)
    if recorded == "absent":
        del beat["pid_start"]
    assert _not_running(beat) is None
    beat["unix"] = began - 5.5 + 20.0
    assert _not_running(beat) == (
        " (the pid now belongs to another program, started after the beat's)")
    beat["unix"] = began + 20.0  # began together
    assert _not_running(beat) is None


def test_without_a_boot_time_the_pid_is_taken_as_running(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heartbeat_cli, "_boot_time", lambda: None)
    beat = _own(unix=0.0, uptime_s=0.0)
    del beat["pid_start"]
    assert _not_running(beat) is None


def test_boot_time_is_read_from_proc() -> None:
    booted = heartbeat_cli._boot_time()
    assert booted is not None
    with open("/proc/uptime") as fh:
        uptime = float(fh.read().split()[0])
    assert abs(booted - (time.time() - uptime)) < 3.0


@pytest.mark.parametrize("content", [b"cpu 1 2 3\n", b"btime soon\n", b"btime\n"])
def test_boot_time_unknown(monkeypatch: pytest.MonkeyPatch, content: bytes) -> None:
    monkeypatch.setattr(heartbeat_cli, "open", lambda *a: io.BytesIO(content), raising=False)
    assert heartbeat_cli._boot_time() is None


def test_boot_time_after_other_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    stat = b"cpu 1 2 3\nxbtime 5\nbtime 1700000000\nprocesses 4\n"
    monkeypatch.setattr(heartbeat_cli, "open", lambda *a: io.BytesIO(stat), raising=False)
    assert heartbeat_cli._boot_time() == 1_700_000_000.0


# -- the command line -------------------------------------------------------------------------


def test_positive_rule() -> None:
    heartbeat_cli._positive("--max-age", None)
    heartbeat_cli._positive("--max-age", 0.001)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError) as info:
            heartbeat_cli._positive("--max-age", bad)
        assert info.value.field == "--max-age"
        assert info.value.rule == "must be a number of seconds > 0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--max-age", "0"], "--max-age=0.0: must be a number of seconds > 0"),
     (["--max-skew", "-1"], "--max-skew=-1.0: must be a number of seconds >= 0"),
     (["--max-skew", "inf"], "--max-skew=inf: must be a number of seconds >= 0"),
     (["--max-skew", "nan"], "--max-skew=nan: must be a number of seconds >= 0")],
)
def test_usage_error_text(root: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                          message: str) -> None:
    code, out, err = _main(["heartbeat", "check", "--root", str(root), *argv], capsys)
    assert (code, out, err) == (2, "", f"ensemble-otel heartbeat check: {message}\n")


def test_zero_skew_is_allowed(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _beat(root, unix=time.time() + 30)
    code, out, err = _main(["heartbeat", "check", "--root", str(root), "--strategy", STRATEGY,
                            "--max-skew", "0"], capsys)
    assert code == 1 and out == "" and err.startswith("future:")
    assert "allowed skew 0s" in err
    code, out, err = _main(["heartbeat", "check", "--root", str(root), "--strategy", STRATEGY,
                            "--max-skew", "60"], capsys)
    assert code == 0 and err == "" and out.startswith("ok: running")


def test_pid_option_reaches_the_check(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _beat(root, unix=time.time(), pid=0)
    argv = ["heartbeat", "check", "--root", str(root), "--strategy", STRATEGY]
    code, out, err = _main(argv, capsys)
    assert code == 1 and err.startswith("dead: pid 0 is not running")
    code, out, err = _main([*argv, "--no-pid"], capsys)
    assert code == 0 and out.startswith("ok")


def test_help_describes_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(["heartbeat", "check", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    for needle in (
        "usage: ensemble-otel heartbeat check [-h] [--root ROOT] [--strategy STRATEGY] "
        "[--max-age MAX_AGE] [--max-skew SECONDS] [--no-pid]",
        "--root ROOT PAPER_TRADING_ROOT (default: env or ./paper_trading_outputs)",
        "--strategy STRATEGY strategy id (default: ENSEMBLE_STRATEGY_ID or 'default')",
        "--max-age MAX_AGE seconds (default: 3 x the interval_s written in the file)",
        "--max-skew SECONDS how far in the future a beat may be (clock skew; default 300)",
        "--no-pid do not check that the beat's pid runs on this host (containers with "
        "their own pid namespace)",
    ):
        assert needle in text, needle
    doc = heartbeat_cli.__doc__
    assert doc is not None and doc.splitlines()[2] in out.splitlines()  # kept as written


def test_heartbeat_help_names_its_action(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _main(["heartbeat", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "usage: ensemble-otel heartbeat [-h] ACTION" in text
    assert "check exit 0 when the heartbeat proves a live bot, 1 otherwise" in text
    code, out, _ = _main(["--help"], capsys)
    assert " heartbeat heartbeat file tools " in " ".join(out.split())
    code, _, err = _main(["heartbeat"], capsys)
    assert code == 2 and "ACTION" in err


def test_pid_one_is_a_process_like_any_other() -> None:
    start = heartbeat_cli.process_start(1)
    assert start is not None
    assert _not_running(_own(pid=1, pid_start=start)) is None
    assert _not_running(_own(pid=1, pid_start=start + 1)) == (
        " (the pid now belongs to another program)")


def test_max_age_option_reaches_the_check(root: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    _beat(root, unix=time.time() - 10, interval_s=60)  # fresh by its own interval
    argv = ["heartbeat", "check", "--root", str(root), "--strategy", STRATEGY]
    assert _main(argv, capsys)[0] == 0
    code, _, err = _main([*argv, "--max-age", "5"], capsys)
    assert code == 1 and err.startswith("stale: last beat ") and "> max age 5s" in err
