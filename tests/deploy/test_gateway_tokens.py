"""scripts/check-gateway-tokens.sh: the gateway's token file is refused unless the
collector's bearertokenauth extension can only read it as the operator meant (one token
per line, at least 16 characters, no '#', no whitespace).

Run with /bin/sh (dash on Debian, the collector image's shell).
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from pathlib import Path

import pytest
from deploy_support import REPO

CHECKER = REPO / "scripts" / "check-gateway-tokens.sh"
GOOD = secrets.token_urlsafe(24)
OTHER = secrets.token_hex(16)


def check(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(CHECKER), str(path), *extra], capture_output=True,
                          text=True, timeout=30, check=False)


def token_file(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "gateway-tokens"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "line", "rule"),
    [
        (f"# gateway tokens\n{GOOD}\n", 1, "'#' is not allowed"),
        (f"{GOOD}\n   # comment\n", 2, "'#' is not allowed"),
        (f"{GOOD}\nshort-token-1234\nshort\n", 3, "the token is 5 characters; at least 16"),
        (f"{GOOD}\nabcdefghij#klmnopqrs\n", 2, "'#' is not allowed"),
        (f"{GOOD}  agent one\n", 1, "whitespace is not allowed"),
        (f"  {GOOD}\n", 1, "whitespace is not allowed"),
        (f"{GOOD}\t\n", 1, "whitespace is not allowed"),
        (f"{GOOD}\r\n", 1, "whitespace is not allowed"),
        ("   \n", 1, "whitespace is not allowed"),
        (f"{GOOD}\nabcdefghijklmnop\"q\n", 2, "characters other than"),
        (f"{GOOD}\nab=cdefghijklmnopq\n", 2, "'=' is allowed only as padding"),
        ("tökenwithumlautsxyz\n", 1, "characters other than"),
    ],
    ids=["comment line", "indented comment", "short token", "token with #",
         "text after the token", "leading blank", "trailing tab", "CRLF", "blank line",
         "quote", "inner =", "non-ASCII"],
)
def test_refuses_what_the_collector_would_misread(
    tmp_path: Path, content: str, line: int, rule: str,
) -> None:
    path = token_file(tmp_path, content)
    result = check(path)
    assert result.returncode == 1, result.stderr
    assert f"{path}:{line}: {rule}" in result.stderr, result.stderr
    assert "refused" in result.stderr
    # A finding names the line, never the secret.
    assert GOOD not in result.stderr


def test_every_finding_is_reported(tmp_path: Path) -> None:
    path = token_file(tmp_path, f"# gateway tokens\n{GOOD}\n   # comment\nshort\n")
    result = check(path)
    assert result.returncode == 1
    assert [ln.split(": ")[1] for ln in result.stderr.splitlines() if ": refused" not in ln] \
        == [f"{path}:1", f"{path}:3", f"{path}:4"], result.stderr
    assert "refused (3 finding(s))" in result.stderr


@pytest.mark.parametrize("content", ["", "\n\n", b""], ids=["empty", "empty lines", "no bytes"])
def test_refuses_a_file_without_a_token(tmp_path: Path, content: str | bytes) -> None:
    result = check(token_file(tmp_path, content))
    assert result.returncode == 1
    assert "no token" in result.stderr


def test_refuses_nul_bytes_and_oversized_files(tmp_path: Path) -> None:
    result = check(token_file(tmp_path, f"{GOOD}\n".encode() + b"\0" + b"x" * 20 + b"\n"))
    assert result.returncode == 1 and "NUL" in result.stderr
    result = check(token_file(tmp_path, f"{GOOD}\n" * 3000))
    assert result.returncode == 1 and "at most 65536" in result.stderr


def test_unreadable_or_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert check(tmp_path / "nope").returncode == 2
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = check(fifo)
    assert result.returncode == 2 and "not a regular file" in result.stderr
    usage = subprocess.run(["/bin/sh", str(CHECKER)], capture_output=True, text=True,
                           timeout=30, check=False)
    assert usage.returncode == 2 and "usage" in usage.stderr


@pytest.mark.parametrize(
    "content",
    [f"{GOOD}\n{OTHER}\n", f"{GOOD}", f"{GOOD}\n\n{OTHER}\n", "AbCdEf0123456789+/~._-==\n"],
    ids=["two tokens", "no final newline", "empty line between", "every allowed character"],
)
def test_accepts_a_good_file(tmp_path: Path, content: str) -> None:
    result = check(token_file(tmp_path, content))
    assert result.returncode == 0, result.stderr
    assert "accepted" in result.stderr


def test_accepts_a_symlink_to_a_regular_file(tmp_path: Path) -> None:
    """A Kubernetes Secret volume presents each key as a symlink into ..data/."""
    target = token_file(tmp_path, f"{GOOD}\n")
    link = tmp_path / "tokens"
    link.symlink_to(target)
    assert check(link).returncode == 0


def test_copy_holds_only_the_checked_tokens_and_is_private(tmp_path: Path) -> None:
    source = token_file(tmp_path, f"{GOOD}\n\n{OTHER}")
    copy_dir = tmp_path / "run"
    copy_dir.mkdir()
    copy = copy_dir / "gateway-tokens"
    copy.write_text("stale\n")
    result = check(source, str(copy))
    assert result.returncode == 0, result.stderr
    assert copy.read_text() == f"{GOOD}\n{OTHER}\n"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert [p.name for p in copy_dir.iterdir()] == ["gateway-tokens"]  # no temp file left


def test_refused_file_leaves_the_copy_alone(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.write_text(f"{OTHER}\n")
    result = check(token_file(tmp_path, "# gateway tokens\n"), str(copy))
    assert result.returncode == 1
    assert copy.read_text() == f"{OTHER}\n"
