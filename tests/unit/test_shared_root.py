"""A hostile shared root: every file the package writes under PAPER_TRADING_ROOT, attacked
as another user with write access to the root would (issue 13, "Files under
PAPER_TRADING_ROOT").

Each planted symbolic link points at a victim file outside the root; the package must
neither write to it, nor truncate it, nor move a line of it. The cross-user cases run the
attacker's steps as another uid (``subprocess.run(user=...)``; root only, else they skip,
and fail under ENSEMBLE_REQUIRE_INTEGRATION=1); the process under test is the victim
writer, in directories the attacker owns, so ``fs.protected_symlinks`` (which only guards
sticky world-writable directories) plays no part.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from integration_gate import missing
from unit_support import at, read_jsonl, snapshot_records

from ensemble_otel import ConfigError
from ensemble_otel.testing import capture

VICTIM = b"export API_KEY=do-not-touch\nexport PATH=$HOME/bin:$PATH"  # no final newline
KEY = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDoNotTouch"  # one line, no newline at all


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "home" / ".profile"
    path.parent.mkdir()
    path.write_bytes(VICTIM)
    return path


def _untouched(victim: Path, content: bytes = VICTIM) -> None:
    assert victim.read_bytes() == content
    assert not victim.with_name(victim.name + ".torn").exists()


def _event_files(root: Path, strategy: str = "s1") -> list[Path]:
    """Today's (and, near midnight, tomorrow's) event file."""
    now = datetime.now(timezone.utc)
    days = sorted({(now + timedelta(seconds=s)).strftime("%Y-%m-%d") for s in (0, 30)})
    return [root / "logs" / "events" / strategy / f"{day}.jsonl" for day in days]


def _plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def _errors(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and str(path) in r.getMessage()]


# -- one user: a symbolic link planted where a file goes ---------------------------------------


def test_lock_file_symlink_gets_no_pid(tmp_path: Path, victim: Path) -> None:
    root = tmp_path / "root"
    _plant(root / "state" / "s1.lock", victim)
    with pytest.raises(ConfigError) as exc, capture(root=root, strategy_id="s1"):
        pass
    message = str(exc.value)
    assert str(root / "state" / "s1.lock") in message and "is a symbolic link" in message
    _untouched(victim)


def test_event_file_symlink_is_refused_and_the_bot_keeps_running(
    tmp_path: Path, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    root = tmp_path / "root"
    for link in _event_files(root):
        _plant(link, victim)
    with capture(root=root, strategy_id="s1") as cap:
        for i in range(5):
            cap.events.emit("tick", i=i)
        cap.health.maybe_emit(at(0, 1), equity=1.0)
        cap.health.maybe_emit(at(1, 1), equity=2.0)  # another sink: still written
        appender = cap.telemetry._appender
    _untouched(victim)
    assert appender.refused == 5 and appender.pending == 0
    assert not list(root.rglob("*.torn"))
    [error] = _errors(caplog, _event_files(root)[0].parent)
    assert "is a symbolic link" in error and "keeps running" in error
    assert [r["ts"][11:13] for r in snapshot_records(root, "1h", "s1")] == ["00"]


@pytest.mark.parametrize("period", ["1h", "24h"])
def test_snapshot_file_symlink_is_refused(
    tmp_path: Path, victim: Path, caplog: pytest.LogCaptureFixture, period: str
) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    root = tmp_path / "root"
    name = "2024-03-01.jsonl" if period == "1h" else "2024-03.jsonl"
    link = root / "logs" / period / "health_snapshot" / "s1" / name
    _plant(link, victim)
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 1), equity=1.0)
        cap.health.maybe_emit(at(1, 1), equity=2.0)
        cap.health.maybe_emit(at(0, 1, days=1), equity=3.0)  # closes the day too
        cap.events.emit("after")
    _untouched(victim)
    assert not list(root.rglob("*.torn"))
    assert len(_errors(caplog, link)) == 1
    other = "24h" if period == "1h" else "1h"
    assert snapshot_records(root, other, "s1")  # the other period's file is written
    [events] = [p for p in _event_files(root) if p.exists()]
    assert [e["event"] for e in read_jsonl(events)] == ["after"]


def test_state_journal_symlink_is_not_truncated_at_configure(
    tmp_path: Path, victim: Path
) -> None:
    root = tmp_path / "root"
    with capture(root=root, strategy_id="s1") as cap:  # a run before: a state file
        cap.health.maybe_emit(at(0, 1), equity=1.0)
    wal = root / "state" / "health" / "s1.json.wal"
    _plant(wal, victim)
    victim.write_bytes(KEY)  # no whole line: nothing to read, all to truncate
    with capture(root=root, strategy_id="s1") as cap:
        _untouched(victim, KEY)
        cap.health.maybe_emit(at(1, 1), equity=2.0)  # a bucket close: a journal line
        assert not wal.is_symlink() and wal.is_file()  # the link was moved aside
    _untouched(victim, KEY)
    aside = wal.with_name(wal.name + ".corrupt")
    assert aside.is_symlink() and aside.resolve() == victim
    assert [r["ts"][11:13] for r in snapshot_records(root, "1h", "s1")] == ["00"]


def test_symlinked_directory_under_the_root_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    root = tmp_path / "root"
    elsewhere = tmp_path / "victim-dir"
    elsewhere.mkdir()
    _plant(root / "logs", elsewhere)
    with capture(root=root, strategy_id="s1") as cap:
        cap.events.emit("tick")
        cap.health.maybe_emit(at(0, 1), equity=1.0)
        cap.health.maybe_emit(at(1, 1), equity=2.0)
    assert list(elsewhere.iterdir()) == []
    assert any("is a symbolic link" in m for m in _errors(caplog, root / "logs"))


def test_temp_files_at_the_old_predictable_names_are_not_followed(
    tmp_path: Path
) -> None:
    """The start-up beat and a state save run on this thread: the names they used were
    ``.<name>.<pid>.<thread id>.tmp``, so another user could plant a link there."""
    root = tmp_path / "root"
    victims = []
    for directory in (root / "logs" / "heartbeat", root / "state" / "health"):
        victim = tmp_path / f"victim-{directory.name}"
        victim.write_bytes(VICTIM)
        victims.append(victim)
        _plant(directory / f".s1.json.{os.getpid()}.{threading.get_ident()}.tmp", victim)
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 1), equity=1.0)
        assert cap.health.save_state()
    for victim in victims:
        assert victim.read_bytes() == VICTIM
    beat = orjson.loads((root / "logs" / "heartbeat" / "s1.json").read_bytes())
    assert beat["state"] == "stopped"
    state = orjson.loads((root / "state" / "health" / "s1.json").read_bytes())
    assert state["strategy_id"] == "s1"


@pytest.mark.parametrize("umask", [0o000, 0o077], ids=["umask-000", "umask-077"])
def test_every_file_0640_and_directory_0750_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    root = tmp_path / "root"
    old = os.umask(umask)
    try:
        with capture(root=root, strategy_id="s1") as cap:
            cap.events.emit("first")
        [events] = [p for p in _event_files(root) if p.exists()]
        with open(events, "ab") as fh:  # a crash in the middle of a line
            fh.write(b'{"torn')
        with capture(root=root, strategy_id="s1") as cap:
            cap.events.emit("second")  # sets the torn tail aside into <file>.torn
            cap.health.maybe_emit(at(0, 1), equity=1.0)
            cap.health.maybe_emit(at(1, 1), equity=2.0)  # a journal line (.wal)
            assert cap.health.save_state(journal=True)
            # the beat thread keeps replacing the heartbeat file: a temp file in flight is
            # 0600 (the umask) until its fchmod, or gone (renamed) by the time it is looked at
            paths = [p for p in root.rglob("*") if not _in_flight(p)]
            names = {p.name for p in paths}
            assert {"s1.lock", "s1.json.wal", events.name + ".torn"} <= names, names
            for p in paths:
                expected = 0o750 if p.is_dir() else 0o640
                assert stat.S_IMODE(p.lstat().st_mode) == expected, (p, oct(p.lstat().st_mode))
    finally:
        os.umask(old)
    for p in root.rglob("*"):  # stopped: nothing in flight, nothing left over
        assert not _in_flight(p), p
        assert stat.S_IMODE(p.lstat().st_mode) == (0o750 if p.is_dir() else 0o640), p


def _in_flight(path: Path) -> bool:
    """A temp file of an atomic replace (``.<name>.<random>.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


@pytest.mark.parametrize(("mode", "warned"), [(0o777, True), (0o1777, False), (0o750, False)])
def test_a_shared_root_is_one_warning_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, warned: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    root = tmp_path / "root"
    root.mkdir()
    root.chmod(mode)
    with capture(root=root, strategy_id="s1") as cap:
        cap.events.emit("tick")
    warnings = [r.getMessage() for r in caplog.records if "sticky bit" in r.getMessage()]
    assert len(warnings) == int(warned), warnings
    if warned:
        assert str(root) in warnings[0] and "0777" in warnings[0]


# -- another user ---------------------------------------------------------------------------


class Attacker:
    """Another uid, with no account: root can run a process as any uid."""

    def __init__(self) -> None:
        used = {p.pw_uid for p in pwd.getpwall()}
        self.uid = next(u for u in range(61_000, 62_000) if u not in used)

    def run(self, script: str) -> None:
        subprocess.run(["/bin/sh", "-ec", script], user=self.uid, group=self.uid,
                       extra_groups=[], cwd="/", check=True, timeout=30)


@pytest.fixture
def attacker() -> Attacker:
    if os.geteuid() != 0:
        missing("the cross-user cases act as a second user: they need root")
    return Attacker()


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A 0777 root both users can reach (pytest's own temp dirs are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="ensemble-otel-shared-", dir="/tmp"))
    root.chmod(0o777)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_another_users_state_directory_and_lock_symlink(
    attacker: Attacker, shared_root: Path, victim: Path
) -> None:
    attacker.run(f"mkdir {shared_root}/state && ln -s {victim} {shared_root}/state/s1.lock")
    with pytest.raises(ConfigError) as exc, capture(root=shared_root, strategy_id="s1"):
        pass
    message = str(exc.value)
    assert str(shared_root / "state") in message
    assert f"is owned by uid {attacker.uid}" in message
    _untouched(victim)


def test_another_users_event_directory_with_a_symlink(
    attacker: Attacker, shared_root: Path, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ensemble_otel")
    links = " && ".join(f"ln -s {victim} {p}" for p in _event_files(shared_root))
    attacker.run(f"mkdir -p {shared_root}/logs/events/s1 && {links}")
    with capture(root=shared_root, strategy_id="s1") as cap:
        for i in range(3):
            cap.events.emit("tick", i=i)
        appender = cap.telemetry._appender
    _untouched(victim)
    assert appender.refused == 3
    assert not list(shared_root.rglob("*.torn"))
    messages = [r.getMessage() for r in caplog.records]
    refused = [m for m in messages if f"is owned by uid {attacker.uid}" in m
               and str(shared_root / "logs") in m]
    assert refused, messages
    assert any("world-writable without the sticky bit" in m for m in messages)


def test_another_users_file_in_a_world_writable_directory(
    attacker: Attacker, shared_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No link at all: a regular file of the attacker's where an event file goes (in a
    directory left world-writable) is not appended to."""
    caplog.set_level(logging.ERROR, logger="ensemble_otel")
    directory = shared_root / "logs" / "events" / "s1"
    directory.mkdir(parents=True)
    for d in (directory, directory.parent, directory.parent.parent):
        d.chmod(0o777)
    files = " && ".join(f"printf 'theirs' > {p}" for p in _event_files(shared_root))
    attacker.run(files)
    with capture(root=shared_root, strategy_id="s1") as cap:
        cap.events.emit("tick")
    for path in _event_files(shared_root):
        assert path.read_bytes() == b"theirs" and path.stat().st_uid == attacker.uid
    assert not list(shared_root.rglob("*.torn"))
    assert any(f"is owned by uid {attacker.uid}" in m
               for m in _errors(caplog, _event_files(shared_root)[0]))


def test_another_users_health_directory_with_a_journal_symlink(
    attacker: Attacker, shared_root: Path, victim: Path
) -> None:
    state = shared_root / "state"
    state.mkdir()
    state.chmod(0o777)
    victim.write_bytes(KEY)
    attacker.run(f"mkdir {state}/health && ln -s {victim} {state}/health/s1.json.wal")
    with capture(root=shared_root, strategy_id="s1") as cap:
        _untouched(victim, KEY)
        cap.health.maybe_emit(at(0, 1), equity=1.0)
        cap.health.maybe_emit(at(1, 1), equity=2.0)  # keeps running without its state file
        cap.events.emit("tick")
    _untouched(victim, KEY)
    assert [r["ts"][11:13] for r in snapshot_records(shared_root, "1h", "s1")] == ["00"]


def test_state_file_symlink_is_not_read_at_configure(tmp_path: Path) -> None:
    """A state file planted as a link to another strategy's state (or any file that reads as
    one) is never followed: the link is moved aside, the target is untouched and not used."""
    other = tmp_path / "other"
    with capture(root=other, strategy_id="s1") as cap:  # a state the attacker points at
        cap.health.maybe_emit(at(0, 1), equity=1.0)
        cap.health.maybe_emit(at(1, 1), equity=500.0)
    target = other / "state" / "health" / "s1.json"
    before = target.read_bytes()
    root = tmp_path / "root"
    state = root / "state" / "health" / "s1.json"
    state.parent.mkdir(parents=True)
    state.symlink_to(target)
    with capture(root=root, strategy_id="s1") as cap:
        cap.health.maybe_emit(at(0, 1), equity=7.0)  # not "already recorded" by the link
        cap.health.maybe_emit(at(1, 1), equity=8.0)
    assert target.read_bytes() == before
    assert [r["equity"] for r in snapshot_records(root, "1h", "s1")] == [7.0]
    assert (state.parent / "s1.json.corrupt").is_symlink()
