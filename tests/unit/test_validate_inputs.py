"""`ensemble-otel validate` never passes on nothing, and a hostile input cannot hang it,
grow it without bound, or forge its output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from unit_support import run_bounded
from validate_support import EV, H1, HB, event, good_tree, heartbeat, line, run, write

from ensemble_otel.readers import MAX_LINE_BYTES
from ensemble_otel.validate import validate

STRICT = "--strict"
MB = 1024  # ru_maxrss is in kB


def _validate_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ensemble_otel.validate", *args]


# --- nothing to validate -----------------------------------------------------------------


@pytest.mark.parametrize("mode", [[STRICT], []])
def test_empty_directory_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               mode: list[str]) -> None:
    code, out, _ = run(capsys, *mode, str(tmp_path))
    assert code == 1
    assert f"nothing to validate under {tmp_path}" in out
    assert out.splitlines()[-1].startswith("FAILED")
    code, out, _ = run(capsys, *mode, "--allow-empty", str(tmp_path))
    assert code == 0 and out.startswith("OK")


def test_tree_without_records_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    write(tmp_path, EV, b"")  # an empty record file: no record
    code, out, _ = run(capsys, STRICT, str(tmp_path))
    assert code == 1 and "nothing to validate" in out


def test_empty_stdin_fails_in_json_too(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run(_validate_cmd("--format", "json", "-"), input=b"",
                          capture_output=True, timeout=60)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["exit_code"] == 1 and not doc["ok"]
    assert doc["unmet"] and doc["unmet"][0].startswith("nothing to validate under -")


def test_expect_kinds_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = good_tree(tmp_path / "root")  # 3 hourly snapshots, 1 daily, 3 events, 1 heartbeat
    code, out, _ = run(capsys, STRICT, "--expect", "heartbeat", "--expect",
                       "health_snapshot_1h:3", "--expect", "event:3", str(tree))
    assert code == 0, out
    code, out, _ = run(capsys, STRICT, "--expect", "heartbeat", "--expect",
                       "health_snapshot_1h:24", "--expect", "health_snapshot_24h:2", str(tree))
    assert code == 1
    lines = out.splitlines()
    assert "expected at least 24 health_snapshot_1h records, found 3" in lines
    assert "expected at least 2 health_snapshot_24h records, found 1" in lines
    assert not any("heartbeat" in x for x in lines[:-1])
    (tree / HB).unlink()
    code, out, _ = run(capsys, "--expect", "heartbeat", str(tree))  # permissive: by location
    assert code == 1 and "expected at least 1 heartbeat record, found 0" in out


@pytest.mark.parametrize("value", ["heartbeats", "event:0", "event:x", ":3"])
def test_bad_expect_is_a_usage_error(capsys: pytest.CaptureFixture[str], value: str) -> None:
    code, _, err = run(capsys, "--expect", value, ".")
    assert code == 2 and "--expect" in err


# --- bounded reads -----------------------------------------------------------------------


def test_line_over_the_limit_is_reported_and_skipped(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as fh:
        fh.write(line(event(1)))
        fh.write(b'{"pad": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n')
        fh.write(b"{bad\n")
    code, out, _ = run(capsys, STRICT, str(path))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (f"{path}:2: line longer than {MAX_LINE_BYTES} bytes "
                        f"({MAX_LINE_BYTES + 21} bytes skipped)")
    assert lines[1].startswith(f"{path}:3: invalid JSON")


@pytest.mark.parametrize("workers", [1, 2])
def test_long_lines_in_ranges_and_workers(tmp_path: Path, workers: int) -> None:
    """Ranges cut at newlines, long lines inside them, in the parent and in workers."""
    path = tmp_path / "x.jsonl"
    good = line(event(1))
    body = good * 50 + b"y" * 5000 + b"\n" + good * 50 + b"z" * 300 + b"\n" + good * 3
    path.write_bytes(body + b"w" * 900)  # ends in a long torn line
    report = validate([str(path)], strict=True, cap=0, workers=workers, chunk_bytes=2048,
                      parallel_min_bytes=0, max_line=1000)
    got = [(v.line, v.rule) for v in report.violations]
    assert got == [(51, "line-too-long"), (102, "json"), (106, "torn-line")], got
    assert report.lines == 106 and report.records == 103


def test_dev_zero_named_is_refused(tmp_path: Path) -> None:
    result, rss = run_bounded(_validate_cmd("/dev/zero"))
    assert result is not None and result.returncode == 2
    assert b"character device" in result.stdout
    assert rss < 100 * MB


def test_dev_zero_on_stdin_stays_small(tmp_path: Path) -> None:
    with open("/dev/zero", "rb") as zero:
        result, rss = run_bounded(_validate_cmd("-"), stdin=zero, timeout=5)
    assert result is None  # an endless line: still reading when stopped
    assert rss < 100 * MB


def test_huge_line_on_stdin_is_skipped_in_small_memory(tmp_path: Path) -> None:
    data = tmp_path / "zeros"
    with open(data, "wb") as fh:
        fh.truncate(3 * MAX_LINE_BYTES)  # 48 MiB of zero bytes, no newline
    with open(data, "rb") as stdin:
        result, rss = run_bounded(_validate_cmd("-"), stdin=stdin, timeout=60)
    assert result is not None and result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        f"<stdin>:1: line longer than {MAX_LINE_BYTES} bytes "
        f"({3 * MAX_LINE_BYTES} bytes skipped)").encode()
    assert rss < 100 * MB


def test_symlink_in_a_tree_is_not_followed(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    tree = good_tree(tmp_path / "root")
    secret = tmp_path / "secret.jsonl"
    secret.write_bytes(b'{"password": "hunter2"}\n')
    link = tree / "logs/events/s1/2024-03-02.jsonl"
    link.symlink_to(secret)
    (tree / "logs/1h/health_snapshot/s2").symlink_to(tmp_path, target_is_directory=True)
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 2
    assert f"{link}: cannot read: symbolic link to {secret} (not followed)" in out
    assert "s2: cannot read: symbolic link to" in out
    assert "hunter2" not in out and "password" not in out


def test_oversized_heartbeat_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = heartbeat()
    record["state"] = "x" * (70 << 10)
    path = write(tmp_path, HB, line(record))
    code, out, _ = run(capsys, STRICT, str(tmp_path))
    assert code == 1 and f"{path}:1: file larger than 65536 bytes" in out


# --- output that cannot be forged --------------------------------------------------------

FORGED = "x\nOK (strict): 0 violations in 1 file, 1 line, 1 record\x1b[8m.jsonl"


def test_forged_file_name_is_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / FORGED
    path.write_bytes(b"{bad\n" + line(event(2)))
    code, out, _ = run(capsys, STRICT, str(tmp_path))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2 and lines[-1].startswith("FAILED")
    assert "\x1b" not in out
    assert lines[0].startswith(f"{tmp_path}/x\\nOK (strict): 0 violations") and "\\x1b[8m" in out


def test_non_utf8_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = os.fsdecode(b"bad-\xff\xfe.jsonl")
    (tmp_path / name).write_bytes(b"{bad\n" + line(event(2)))
    code, out, _ = run(capsys, STRICT, str(tmp_path))
    assert code == 1 and "bad-\\xff\\xfe.jsonl:1: invalid JSON" in out
    code, out, err = run(capsys, STRICT, "--format", "json", str(tmp_path))
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert doc["exit_code"] == 1
    assert doc["violations"][0]["file"] == f"{tmp_path}/bad-\\xff\\xfe.jsonl"


def test_json_keeps_exit_2_for_its_own_failures(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    name = os.fsdecode(b"gone-\xff.jsonl")
    (tmp_path / name).symlink_to(tmp_path / "nowhere")
    write(tmp_path, H1, b"")
    code, out, _ = run(capsys, "--format", "json", str(tmp_path))
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2
    assert doc["unreadable"] == [f"{tmp_path}/gone-\\xff.jsonl"]
