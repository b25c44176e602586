"""Full disk and unwritable root: the bot keeps running, nothing is torn, writing resumes.

The full-disk tests mount a 256 KiB tmpfs as PAPER_TRADING_ROOT's file system (they need
root: without it they skip naming the reason, and fail under ENSEMBLE_REQUIRE_INTEGRATION=1)
and fill it with a filler file while a bot (``driven_bot.py``, bars and events on command)
runs. The filler is written when the open hourly file's last page has less room than one
record, so the next record is a short write (cut back) and later ones are refused
(ENOSPC). Then:

- the bot keeps answering (no exception reaches it) and its bars keep returning records;
- stderr carries one clear error per writer (the JSONL files, the state file, the
  heartbeat), each naming the path and "No space left on device", and nothing else;
- no torn line in any JSONL file, the heartbeat file is always valid JSON (its replacement
  fails before the rename), no temp file is left behind;
- once the filler is deleted, the heartbeat is fresh again, the held lines reach their
  files in order, later bars are appended, and every record equals an uninterrupted
  run's (nothing lost, nothing twice).

The unwritable-root tests need no privileges: a root under a regular file (mkdir fails
with ENOTDIR, whoever runs it) is a ConfigError from configure() naming the root; a
``logs`` directory replaced by a file while the bot runs fails soft and recovers.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from disk_support import DrivenBot, fill, settled_bytes, tiny_tmpfs
from reliability_support import STRATEGY, records

import ensemble_otel
from ensemble_otel import ConfigError

PAGE = 4096
RECORD_ROOM = 400  # less room than any hourly record takes (they are ~490 bytes)
WRITERS = {  # the three writers and how their error line starts
    "files": "ensemble-otel files: cannot write ",
    "state": "ensemble-otel health: cannot write state ",
    "heartbeat": "ensemble-otel heartbeat: cannot write ",
}
ENOSPC_TEXT = os.strerror(28)  # "No space left on device"
ENOTDIR_TEXT = os.strerror(20)  # "Not a directory"


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    with tiny_tmpfs(tmp_path / "tiny", "256k") as mount:
        yield mount


def _hour_file(root: Path, day: str = "2024-01-01") -> Path:
    return root / "logs" / "1h" / "health_snapshot" / STRATEGY / f"{day}.jsonl"


def _beat(root: Path) -> dict[str, object]:
    """The heartbeat file, which must parse whenever it is read."""
    data = (root / "logs" / "heartbeat" / f"{STRATEGY}.json").read_bytes()
    try:
        beat = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise AssertionError(f"heartbeat file is not JSON ({exc}): {data[:200]!r}") from None
    assert isinstance(beat, dict) and beat["strategy_id"] == STRATEGY, beat
    return beat


def _check_files(root: Path) -> None:
    """Every JSONL line parses, every file ends at a newline; no torn tail set aside."""
    for path in sorted(root.rglob("*.jsonl")):
        data = settled_bytes(path)
        assert data == b"" or data.endswith(b"\n"), f"{path}: torn last line {data[-200:]!r}"
        for n, line in enumerate(data.splitlines(), 1):
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                raise AssertionError(f"{path}:{n}: not JSON: {line[:200]!r}") from None
    assert not list(root.rglob("*.torn")), "a torn line was set aside"


def _event_bars(root: Path) -> list[int]:
    out: list[int] = []
    for path in sorted((root / "logs" / "events" / STRATEGY).glob("*.jsonl")):
        out.extend(orjson.loads(line)["bar"] for line in path.read_bytes().splitlines())
    return out


def _errors_by_writer(lines: list[str]) -> dict[str, list[str]]:
    return {w: [line for line in lines if line.startswith(prefix)]
            for w, prefix in WRITERS.items()}


def _wait(probe: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _reference(tmp_path: Path, bars: int) -> Path:
    """An uninterrupted run of the same bars on an ordinary file system."""
    root = tmp_path / "reference"
    with DrivenBot(root) as bot:
        bot.bars(bars)
        assert bot.quit() == 0
        assert bot.stderr() == ""
    return root


def _same_as_reference(root: Path, reference: Path, bars: int) -> None:
    for period in ("1h", "24h"):
        got = records(root, period)
        assert got == records(reference, period), f"{period}: lost, doubled or changed records"
    assert len(records(root, "1h")) == math.floor((bars - 1) * 600 / 3600)
    assert _event_bars(root) == _event_bars(reference) == list(range(0, bars, 5))


def test_full_disk_keeps_the_bot_running_and_writing_resumes(tiny: Path, tmp_path: Path) -> None:
    root = tiny / "root"
    with DrivenBot(root) as bot:
        done, _ = bot.bars(7)  # the first hour closes: the day's hourly file exists
        while (_hour_file(root).stat().st_size % PAGE) < PAGE - RECORD_ROOM:
            assert done < 24 * 6, "no hour left the last page nearly full"
            done, _ = bot.bars(6)
        hourly_before = len(records(root, "1h"))

        full_since = time.monotonic()
        filler = fill(tiny)
        beat_when_full = _beat(root)
        returned_at_fill = bot.bars(0)[1]
        for _ in range(40):  # 40 hours of bars: a new day's files, the day record
            done, returned = bot.bars(6)
            assert _beat(root)["seq"] == beat_when_full["seq"], "a beat was written on a full disk"
            _check_files(root)
        assert returned - returned_at_fill >= 40, "bars stopped returning records"
        assert len(records(root, "1h")) == hourly_before, "a record written on a full disk?"
        time.sleep(0.3)  # beats retry (and fail) meanwhile
        errors = bot.stderr_lines(full_since)
        by_writer = _errors_by_writer(errors)
        assert len(by_writer["files"]) == 1, errors
        for writer, lines in by_writer.items():
            assert len(lines) <= 1, f"{writer}: more than one error in a minute: {lines}"
            for line in lines:
                assert str(root) in line and ENOSPC_TEXT in line, line
        assert sum(map(len, by_writer.values())) == len(errors), f"other stderr: {errors}"
        assert bot.proc.poll() is None

        filler.unlink()
        freed_at = time.time()
        _wait(lambda: _beat(root)["unix"] > freed_at, "a fresh heartbeat")  # type: ignore[operator]
        _wait(lambda: len(records(root, "1h")) + len(records(root, "24h")) == returned,
              "the held records to reach their files")
        done, _ = bot.bars(60)
        assert bot.quit() == 0
        assert _errors_by_writer(bot.stderr_lines()) == by_writer, "errors after space returned"

    _check_files(root)
    assert not list(root.rglob("*.tmp")), "a temp file was left behind"
    assert _beat(root)["state"] == "stopped"
    _same_as_reference(root, _reference(tmp_path, done), done)


def test_start_on_a_full_disk_fails_soft(tiny: Path, tmp_path: Path) -> None:
    """configure() on a full file system: the bot starts (the files catch up later)."""
    root = tiny / "root"
    filler = fill(tiny)
    with DrivenBot(root) as bot:
        done, returned = bot.bars(60)
        time.sleep(0.2)
        errors = bot.stderr_lines()
        assert _errors_by_writer(errors)["files"], errors
        assert all(ENOSPC_TEXT in line for line in errors), errors
        filler.unlink()
        _wait(lambda: (root / "logs" / "heartbeat" / f"{STRATEGY}.json").exists(), "a beat")
        _wait(lambda: len(records(root, "1h")) + len(records(root, "24h")) == returned,
              "the held records to reach their files")
        done, _ = bot.bars(60)
        assert bot.quit() == 0
    _check_files(root)
    _same_as_reference(root, _reference(tmp_path, done), done)


@pytest.mark.parametrize("source", ["PAPER_TRADING_ROOT", "root"])
def test_unwritable_root_at_start_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a regular file where the root's parent directory should be")
    root = blocker / "root"
    monkeypatch.delenv("PAPER_TRADING_ROOT", raising=False)
    kwargs: dict[str, object] = {"strategy_id": "s1"}
    if source == "root":
        kwargs["root"] = root
    else:
        monkeypatch.setenv("PAPER_TRADING_ROOT", str(root))
    with pytest.raises(ConfigError) as info:
        ensemble_otel.configure(**kwargs)
    assert info.value.field == source
    assert str(root) in str(info.value) and ENOTDIR_TEXT in str(info.value), str(info.value)
    assert ensemble_otel.get_telemetry() is None
    assert blocker.read_text().startswith("a regular file")


def test_root_unwritable_later_fails_soft_and_recovers(tmp_path: Path) -> None:
    """``logs`` replaced by a regular file mid-run (mkdir and open fail with ENOTDIR)."""
    root = tmp_path / "root"
    logs, aside = root / "logs", root / "logs.aside"
    with DrivenBot(root) as bot:
        bot.bars(30)
        logs.rename(aside)
        logs.write_text("not a directory")
        broken_at = time.monotonic()
        done, returned = bot.bars(240)  # 40 hours: new day files, a day record
        time.sleep(0.3)
        errors = bot.stderr_lines(broken_at)
        by_writer = _errors_by_writer(errors)
        assert len(by_writer["files"]) == 1 and len(by_writer["heartbeat"]) == 1, errors
        for line in by_writer["files"] + by_writer["heartbeat"]:
            assert str(logs) in line and ENOTDIR_TEXT in line, line
        assert sum(map(len, by_writer.values())) == len(errors), f"other stderr: {errors}"
        logs.unlink()
        aside.rename(logs)
        repaired_at = time.time()
        _wait(lambda: _beat(root)["unix"] > repaired_at, "a fresh heartbeat")  # type: ignore[operator]
        _wait(lambda: len(records(root, "1h")) + len(records(root, "24h")) == returned,
              "the held records to reach their files")
        done, _ = bot.bars(30)
        assert bot.quit() == 0
    _check_files(root)
    _same_as_reference(root, _reference(tmp_path, done), done)
