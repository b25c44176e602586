"""`ensemble-otel validate`: injected faults, output, exit codes."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from validate_support import (
    EV,
    H1,
    H24,
    HB,
    append,
    event,
    good_tree,
    heartbeat,
    line,
    run,
    snapshot,
    write,
)

from ensemble_otel import cli
from ensemble_otel.validate import validate

STRICT = "--strict"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return good_tree(tmp_path / "root")


def _lines(out: str) -> list[str]:
    return out.splitlines()


# --- clean input ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [[], [STRICT]], ids=["permissive", "strict"])
def test_good_tree_is_clean(tree: Path, capsys: pytest.CaptureFixture[str],
                            mode: list[str]) -> None:
    code, out, err = run(capsys, *mode, str(tree))
    name = "strict" if mode else "permissive"
    assert (code, err) == (0, "")
    assert _lines(out) == [f"OK ({name}): 0 violations in 4 files, 8 lines, 8 records"]


def test_cli_dispatches_to_validate(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", STRICT, str(tree)]) == 0
    assert capsys.readouterr().out.startswith("OK (strict)")
    append(tree, EV, b"{oops\n")
    assert cli.main(["validate", str(tree)]) == 1


# --- one fault at a time -------------------------------------------------------------------


def test_bad_json(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, EV, b'{"ts": oops}\n')
    for mode in ([], [STRICT]):
        code, out, _ = run(capsys, *mode, str(tree))
        assert code == 1
        assert _lines(out)[0] == (f"{path}:4: invalid JSON: unexpected character, expected a "
                                  "JSON value at column 8")


def test_missing_strategy_id(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = event(9)
    del record["strategy_id"]
    path = append(tree, EV, line(record))
    for mode in ([], [STRICT]):
        code, out, _ = run(capsys, *mode, str(tree))
        assert code == 1
        assert _lines(out)[:-1] == [f"{path}:4: strategy_id: required field is missing"]


def test_empty_schema_version(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, EV, line(event(9, schema_version="")))
    for mode in ([], [STRICT]):
        code, out, _ = run(capsys, *mode, str(tree))
        assert code == 1
        assert _lines(out)[0] == f'{path}:4: schema_version: must be a non-empty string (got "")'


def test_strategy_id_of_the_wrong_type(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, EV, line(event(9, strategy_id=7)))
    code, out, _ = run(capsys, str(tree))
    assert code == 1
    assert _lines(out)[0] == f"{path}:4: strategy_id: must be a non-empty string (got integer 7)"


def test_unknown_field_only_fails_strict(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, H1, line(snapshot(12, colour="red")))
    assert run(capsys, str(tree))[0] == 0
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[:-1] == [
        f"{path}:4: colour: unknown field (the health_snapshot_1h schema allows no others)"]


def test_event_extra_fields_are_allowed_in_strict(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    append(tree, EV, line(event(9, anything={"nested": [1, 2.5, None]}, note="x")))
    assert run(capsys, STRICT, str(tree))[0] == 0


@pytest.mark.parametrize(("change", "expected"), [
    ({"equity": "1000"}, 'equity: must be a finite number (got string "1000")'),
    ({"bars": 0}, "bars: must be >= 1 (got 0)"),
    ({"bars": 4.0}, "bars: must be an integer (got number 4.0)"),
    ({"open_positions": -1}, "open_positions: must be >= 0 (got -1)"),
    ({"realized_pnl": True}, "realized_pnl: must be a finite number or null (got boolean true)"),
    ({"equity": None}, "equity: must be a finite number (got null)"),
    ({"strategy_id": "a..b"}, 'strategy_id: must match ^(?!.*\\.\\.)[A-Za-z0-9][A-Za-z0-9._-]'
                              '{0,63}$ (got "a..b")'),
])
def test_field_rules_in_strict(tree: Path, capsys: pytest.CaptureFixture[str],
                               change: dict[str, object], expected: str) -> None:
    path = append(tree, H1, line(snapshot(12, **change)))
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert f"{path}:4: {expected}" in _lines(out), out


def test_missing_fields_in_strict_are_named(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = snapshot(12)
    del record["pnl"], record["bars"]
    path = append(tree, H1, line(record))
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[0] == f"{path}:4: required fields are missing: pnl, bars"


@pytest.mark.parametrize("ts", ["2024-03-01T12:00:00+02:00", "2024-03-01T12:00:00",
                                "2024-03-01 12:00:00Z", "1709294400"])
def test_non_utc_timestamp(tree: Path, capsys: pytest.CaptureFixture[str], ts: str) -> None:
    path = append(tree, H1, line(snapshot(12, ts=ts)))
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[0] == (f"{path}:4: ts: must be ISO-8601 UTC, YYYY-MM-DDTHH:MM:SS[.f] "
                              f'ending in Z or +00:00 (got "{ts}")')


def test_timestamp_that_is_no_calendar_date(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, EV, line(event(9, ts="2024-02-30T10:00:00Z")))
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert f"{path}:4: ts: 2024-02-30 is not a calendar date" in _lines(out)


def test_timestamp_with_a_trailing_newline(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, EV, line(event(9, ts="2024-03-01T10:09:00Z\n")))
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[0].startswith(f"{path}:4: ts: must be ISO-8601 UTC")


def test_duplicate_bucket_in_one_file(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, H1, line(snapshot(10)))
    assert run(capsys, str(tree))[0] == 0
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[:-1] == [
        f"{path}:4: duplicate bucket: strategy_id=s1 period=1h ts=2024-03-01T10:00:00Z is "
        f"already at {path}:2"]


def test_duplicate_bucket_across_files(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same bucket spelled +00:00 in another file (kind told by its fields)."""
    other = write(tree, "stray/old.jsonl", line(snapshot(11, ts="2024-03-01T11:00:00+00:00")))
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[:-1] == [
        f"{other}:1: duplicate bucket: strategy_id=s1 period=1h ts=2024-03-01T11:00:00Z is "
        f"already at {tree / H1}:3"]


def test_two_schema_versions_of_one_strategy(tree: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    newer = line(event(8, schema_version="1.2")) + line(event(9, schema_version="1.2"))
    path = append(tree, EV, newer)
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[:-1] == [
        f'{path}:4: schema_version: "1.2" differs from "1.1" that strategy "s1" used first '
        f"at {tree / H1}:1 (one schema_version per strategy; the first such line of this "
        "file)"]


def test_other_strategies_may_use_other_versions(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tree, "logs/events/s2/2024-03-01.jsonl",
          line(event(9, strategy_id="s2", schema_version="2.0")))
    assert run(capsys, STRICT, str(tree))[0] == 0


def test_period_must_match_the_directory(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, H1, line(snapshot(12, period="24h")))
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[:-1] == [
        f'{path}:4: period: "24h" does not match the directory: health_snapshot_1h records '
        "(logs/1h/health_snapshot/{strategy_id}/{YYYY-MM-DD}.jsonl) have period 1h"]


def test_file_name_date_must_match_ts(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, H1, line(snapshot(1, day=2)))
    daily = append(tree, H24, line(snapshot(0, "24h", day=1) | {"ts": "2024-04-01T00:00:00Z"}))
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[:-1] == [
        f'{path}:4: ts: "2024-03-02T01:00:00Z" is not in the file\'s date 2024-03-01 '
        "(2024-03-01.jsonl)",
        f'{daily}:2: ts: "2024-04-01T00:00:00Z" is not in the file\'s date 2024-03 '
        "(2024-03.jsonl)",
    ]


def test_file_name_that_is_no_date(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tree, "logs/events/s1/2024-02-30.jsonl", b"")
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[0] == f"{path}: file name: 2024-02-30 is not a calendar date"


def test_strategy_id_must_match_the_directory(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, EV, line(event(9, strategy_id="s2")))
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[:-1] == [
        f'{path}:4: strategy_id: "s2" does not match its location logs/events/s1/ '
        '(expected "s1")']


def test_heartbeat_file_is_checked(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tree, HB, line(heartbeat(state="dozing", seq=-1)))
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[:-1] == [
        f'{path}:1: state: must be one of starting, running, stopping, stopped (got "dozing")',
        f"{path}:1: seq: must be >= 0 (got -1)"]


def test_torn_last_line(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, EV, line(event(9))[:40])
    for mode in ([], [STRICT]):
        code, out, _ = run(capsys, *mode, str(tree))
        assert code == 1
        assert _lines(out)[:-1] == [
            f"{path}:4: torn last line: 40 bytes without a newline that are not a complete "
            "JSON object (the writer was interrupted mid-line)"]


def test_last_line_without_newline(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = append(tree, EV, line(event(9)).rstrip(b"\n"))
    assert run(capsys, str(tree))[0] == 0
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert _lines(out)[:-1] == [
        f"{path}:4: no newline at the end of the file: a complete record, but the next append "
        "would join it"]


def test_invalid_utf8(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Also inside an event's own field, which a typed decoder would skip unread."""
    path = append(tree, EV, line(event(9)).replace(b"EURUSD", b"EUR\xffUSD"))
    for mode in ([], [STRICT]):
        code, out, _ = run(capsys, *mode, str(tree))
        assert code == 1
        column = line(event(9)).index(b"EURUSD") + 4
        assert _lines(out)[:-1] == [f"{path}:4: invalid UTF-8: byte 0xff at column {column}"]


def test_binary_garbage(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # seeded: a random tail that happens to end in a newline has no torn last line
    tail = random.Random(20240302).randbytes(5000)
    garbage = bytes(range(256)) * 40 + b"\x00\n\x00\x00\n" + tail
    path = write(tree, "logs/events/s1/2024-03-02.jsonl", garbage)
    for mode in ([], [STRICT]):
        code, out, _ = run(capsys, *mode, "--max-errors", "0", str(tree))
        assert code == 1
        reported = [x for x in _lines(out) if x.startswith(f"{path}:")]
        assert reported and all(": invalid " in x or "torn last line" in x or "blank" in x
                                for x in reported)
        assert len(reported) == garbage.count(b"\n") + (not garbage.endswith(b"\n"))


def test_empty_file_and_blank_line(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tree, "logs/events/s1/2024-03-02.jsonl", b"")
    assert run(capsys, STRICT, str(tree)) == (
        0, "OK (strict): 0 violations in 5 files, 8 lines, 8 records\n", "")
    path = append(tree, EV, b"\n" + line(event(9)))
    code, out, _ = run(capsys, str(tree))
    assert code == 1
    assert _lines(out)[:-1] == [f"{path}:4: blank line: every line must be one JSON object"]


def test_very_long_lines(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = line(event(9, blob="x" * 5_000_000))
    path = append(tree, EV, big + b"[" * 3_000_000 + b"\n")
    code, out, _ = run(capsys, STRICT, str(tree))
    assert code == 1
    assert len(_lines(out)) == 2
    assert _lines(out)[0].startswith(f"{path}:5: invalid JSON: ")


# --- unreadable input ----------------------------------------------------------------------


def test_broken_symlink_is_unreadable(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tests run as root, where chmod 000 stops no read: a dangling link cannot be read by
    anyone, and a directory walk lists it like a file."""
    link = tree / "logs/events/s1/2024-03-02.jsonl"
    link.symlink_to(tree / "gone.jsonl")
    append(tree, EV, b"{bad\n")
    code, out, err = run(capsys, STRICT, str(tree))
    assert code == 2
    assert _lines(out)[0] == f"{link}: cannot read: broken symbolic link to {tree / 'gone.jsonl'}"
    assert f"{tree / EV}:4: invalid JSON" in out  # the rest is still checked
    assert err == f"ensemble-otel validate: cannot read {link}\n"


def test_fifo_in_a_tree_is_reported_not_opened(tree: Path) -> None:
    """A named pipe with no writer would block a reader forever: it is not opened."""
    fifo = tree / "logs/events/s1/2024-03-02.jsonl"
    os.mkfifo(fifo)
    proc = _module(STRICT, str(tree))
    assert proc.returncode == 2
    assert proc.stdout.decode().splitlines()[0] == (
        f"{fifo}: cannot read: not a regular file: it is a FIFO")


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_pipe_or_device_given_by_name_is_refused(tmp_path: Path, kind: str) -> None:
    """Only regular files are read (a FIFO with no writer would block; a device may never
    end): exit 2 naming what the path is. Standard input is the one stream taken."""
    path = tmp_path / "pipe"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    proc = _module(STRICT, str(path))
    assert proc.returncode == 2
    want = "a FIFO" if kind == "fifo" else "a character device"
    assert proc.stdout.decode().splitlines()[0] == (
        f"{path}: cannot read: not a regular file: it is {want}")


def test_missing_path_is_unreadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(tmp_path / "nope.jsonl"))
    assert code == 2
    assert _lines(out)[0] == f"{tmp_path / 'nope.jsonl'}: cannot read: no such file or directory"
    assert "nope.jsonl" in err


def test_permission_denied_is_unreadable(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """chmod 000 on a file. Root reads it anyway, so as root the check runs with the
    effective user id of ``nobody`` (seteuid; root's saved id takes it back after)."""
    base = Path("/tmp") if os.geteuid() == 0 else tmp_path
    work = Path(os.path.realpath(base)) / f"ensemble-validate-perm-{os.getpid()}"
    work.mkdir(mode=0o755)
    work.chmod(0o755)
    secret = work / "secret.jsonl"
    try:
        secret.write_bytes(line(event(1)))
        secret.chmod(0o000)
        as_root = os.geteuid() == 0
        if as_root:
            os.seteuid(65534)
        try:
            code, out, err = run(capsys, str(work))
        finally:
            if as_root:
                os.seteuid(0)
        assert code == 2
        assert _lines(out)[0] == f"{secret}: cannot read: Permission denied"
        assert err == f"ensemble-otel validate: cannot read {secret}\n"
    finally:
        secret.unlink(missing_ok=True)
        work.rmdir()


# --- output and exit codes -----------------------------------------------------------------


def _many_bad(tree: Path, n: int) -> Path:
    return append(tree, EV, b"".join(line(event(9, strategy_id="")) for _ in range(n)))


def test_cap_and_count_of_the_rest(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _many_bad(tree, 60)
    code, out, _ = run(capsys, str(tree))
    assert code == 1
    lines = _lines(out)
    assert len(lines) == 52
    assert lines[0] == f'{path}:4: strategy_id: must be a non-empty string (got "")'
    assert lines[49].startswith(f"{path}:53: ")
    assert lines[50] == "... and 10 more violations (--max-errors 0 shows all)"
    assert lines[51] == "FAILED (permissive): 60 violations in 4 files, 68 lines, 8 records"
    code, out, _ = run(capsys, "--max-errors", "3", str(tree))
    assert _lines(out)[3] == "... and 57 more violations (--max-errors 0 shows all)"
    code, out, _ = run(capsys, "--max-errors", "0", str(tree))
    assert len(_lines(out)) == 61


def test_json_output(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _many_bad(tree, 3)
    code, out, err = run(capsys, "--format", "json", "--max-errors", "2", STRICT, str(tree))
    assert (code, err) == (1, "")
    doc = json.loads(out)
    assert doc == {
        "ok": False, "exit_code": 1, "mode": "strict", "files": 4, "lines": 11, "records": 8,
        "bytes": doc["bytes"], "violation_count": 3, "violations_shown": 2,
        "violations_omitted": 1, "unreadable": [], "kinds": doc["kinds"], "unmet": [],
        "violations": [
            {"file": str(path), "line": n, "rule": "empty", "field": "strategy_id",
             "message": 'strategy_id: must be a non-empty string (got "")'}
            for n in (4, 5)
        ],
    }
    assert doc["bytes"] == sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())


def test_json_output_clean(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--format", "json", str(tree))
    doc = json.loads(out)
    assert (code, doc["ok"], doc["exit_code"], doc["violations"]) == (0, True, 0, [])
    assert doc["mode"] == "permissive"


@pytest.mark.parametrize("args", [[], ["--max-errors", "-1", "x"], ["--max-errors", "many", "x"],
                                  ["--format", "xml", "x"], ["--jobs", "0", "x"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert "usage:" in err


# --- entry points, stdin -------------------------------------------------------------------


def _module(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "ensemble_otel.validate", *args],
                          input=data, capture_output=True, timeout=120)


def test_stdin(tree: Path) -> None:
    mixed = line(snapshot(5)) + line(event(1)) + line(heartbeat()) + line(snapshot(0, "24h"))
    proc = _module(STRICT, "-", data=mixed)
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert proc.stdout == b"OK (strict): 0 violations in 1 file, 4 lines, 4 records\n"
    proc = _module(STRICT, "-", data=mixed + b'{"strategy_id":"s1","schema_version":"1.1"}\n')
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == (
        b"<stdin>:5: cannot tell the record kind: it has none of 'event', 'unix', 'period' "
        b"of 1h or 24h")
    proc = _module("-", data=b'{"strategy_id":"s1","schema_version":"1.1"}\n')
    assert proc.returncode == 0


def test_console_script(tree: Path) -> None:
    exe = Path(sys.executable).with_name("ensemble-otel")
    proc = subprocess.run([str(exe), "validate", STRICT, str(tree)], capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc


# --- large input: ranges and worker processes ----------------------------------------------


def test_ranges_and_workers_give_the_serial_answer(tmp_path: Path) -> None:
    """Faults around range boundaries, duplicates across ranges: exact line numbers."""
    root = tmp_path / "root"
    records = [line(snapshot(h % 24, day=1 + h // 24)) for h in range(24 * 28)]
    data = bytearray()
    for k, rec in enumerate(records):
        data += rec
        if k % 97 == 5:
            data += b"{broken\n"
        if k % 131 == 7:
            data += records[k // 2]  # a duplicate bucket from far back
    write(root, "mixed.jsonl", bytes(data))
    write(root, "more.jsonl", bytes(data[: len(data) // 3]) + b"\xff\n")
    serial = validate([str(root)], strict=True, cap=0, workers=1)
    parallel = validate([str(root)], strict=True, cap=0, workers=2, chunk_bytes=4096,
                        parallel_min_bytes=0)
    assert serial.violation_count > 100
    assert parallel.violations == serial.violations
    assert (parallel.lines, parallel.records) == (serial.lines, serial.records)
    lines = bytes(data).split(b"\n")
    for v in serial.violations:
        if v.file.endswith("mixed.jsonl") and v.rule == "json":
            assert lines[v.line - 1] == b"{broken"


# --- progress ------------------------------------------------------------------------------


def _big_file(tmp_path: Path) -> Path:
    from ensemble_otel.validate import PROGRESS_MIN_BYTES

    one = line(event(1))
    return write(tmp_path, "big.jsonl", one * (PROGRESS_MIN_BYTES // len(one) + 1))


def test_progress_on_a_terminal(tmp_path: Path) -> None:
    import pty

    big = _big_file(tmp_path)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "ensemble_otel.validate", str(big)],
                              stdout=subprocess.PIPE, stderr=follower, timeout=120)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    assert b"validating [" in shown and b"100%" in shown
    assert proc.stdout.startswith(b"OK (permissive)")


def test_no_progress_when_not_a_terminal(tmp_path: Path) -> None:
    proc = _module(str(_big_file(tmp_path)))
    assert (proc.returncode, proc.stderr) == (0, b"")


def test_first_version_is_the_first_line_whatever_its_kind() -> None:
    """In one range lines of several kinds are checked kind by kind; the earliest line
    still decides which schema_version a strategy uses."""
    data = line(event(1, schema_version="1.2")) + line(snapshot(5)) + line(snapshot(6))
    report = validate(["-"], strict=True, stdin=io.BytesIO(data).read)
    assert [(v.line, v.rule) for v in report.violations] == [(2, "schema-version")]
    assert report.violations[0].message.startswith(
        'schema_version: "1.1" differs from "1.2" that strategy "s1" used first at <stdin>:1')
