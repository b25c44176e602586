"""Processes: a forked or multiprocessing child never writes as its parent.

Each scenario runs in a fresh interpreter (a script under tmp_path) so forking never
touches the test runner. The parent watches its own heartbeat file while the child runs:
every beat it reads must carry the parent's pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from unit_support import read_jsonl

COMMON = textwrap.dedent('''
    import fcntl, json, os, socket, struct, sys, threading, time
    import ensemble_otel
    from ensemble_otel import ConfigError, resource

    def watch(hb, alive, seconds_max=20.0):
        """(pids seen in the parent's beat file, seqs) while alive() holds."""
        pids, seqs = set(), []
        deadline = time.monotonic() + seconds_max
        while alive() and time.monotonic() < deadline:
            try:
                beat = json.loads(hb.read_text())
            except (OSError, ValueError):
                beat = None  # never expected: the file is replaced atomically
                pids.add("unreadable")
            if beat:
                pids.add(beat["pid"])
                seqs.append(beat["seq"])
            time.sleep(0.01)
        return sorted(pids, key=str), seqs

    def lock_is_held(root, strategy):
        fd = os.open(os.path.join(root, "state", strategy + ".lock"), os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
''')

OS_FORK = COMMON + textwrap.dedent('''
    root = sys.argv[1]
    parent = ensemble_otel.configure(root=root, strategy_id="parent", heartbeat_interval=0.05)
    hb = parent.settings.heartbeat_path
    parent.health.maybe_emit(1_700_000_000.0, equity=100.0)
    parent.health.maybe_emit(1_700_003_600.0, equity=101.0)  # closes the first hour: 1 record
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = {"pid": os.getpid(), "current_is_none": ensemble_otel.get_telemetry() is None,
               "instance_id": resource.instance_id()}
        parent.events.emit("written_by_child_through_inherited_telemetry")
        out["maybe_emit"] = parent.health.maybe_emit(1_700_090_000.0, equity=1.0)  # a day on
        parent.force_flush()
        try:
            ensemble_otel.configure(root=root, strategy_id="parent", heartbeat_interval=0.05)
            out["same_strategy"] = "configured"
        except ConfigError as exc:
            out["same_strategy"] = str(exc)
        own = ensemble_otel.configure(root=root, strategy_id="child", heartbeat_interval=0.05)
        out["own_resource_instance_id"] = own.resource.attributes["service.instance.id"]
        own.events.emit("child_event")
        time.sleep(0.6)  # the inherited heartbeat reader thread restarts in the child
        os.write(w, json.dumps(out).encode())
        os.close(w)
        sys.exit(0)  # the normal exit path: atexit runs in the child
    os.close(w)
    done = []
    def alive():
        if not done and os.waitpid(pid, os.WNOHANG) != (0, 0):
            done.append(True)
        return not done
    pids, seqs = watch(hb, alive)
    child = json.loads(os.read(r, 1 << 16))
    parent.events.emit("parent_after_child")
    print(json.dumps({"parent_pid": os.getpid(), "parent_instance_id": resource.instance_id(),
                      "pids": pids, "seqs": seqs, "child": child,
                      "lock_held_after_child": lock_is_held(root, "parent")}))
''')


def _run(tmp_path: Path, program: str, *args: str, env: dict[str, str] | None = None,
         timeout: float = 120) -> dict[str, Any]:
    script = tmp_path / "scenario.py"
    script.write_text(program)
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_os_fork_child_goes_dormant_and_may_configure_its_own(tmp_path: Path) -> None:
    root = tmp_path / "root"
    out = _run(tmp_path, OS_FORK, str(root))
    child = out["child"]
    # the parent's beat file only ever carried the parent's pid, and kept beating
    assert out["pids"] == [out["parent_pid"]]
    assert len(out["seqs"]) > 5 and out["seqs"] == sorted(out["seqs"])
    assert out["seqs"][-1] > out["seqs"][0]
    # the child is another process: its own service.instance.id, nothing configured
    assert child["current_is_none"] is True
    assert child["instance_id"] != out["parent_instance_id"]
    assert child["own_resource_instance_id"] == child["instance_id"]
    assert child["maybe_emit"] == []
    # same strategy: refused by the parent's lock, naming the field and the rule
    assert "strategy_id='parent'" in child["same_strategy"]
    assert f"pid {out['parent_pid']}" in child["same_strategy"]
    # the child's exit did not release the parent's lock
    assert out["lock_held_after_child"] is True
    # files: the parent's events hold nothing from the child; the child wrote its own
    parent_events = [r for p in sorted((root / "logs/events/parent").glob("*.jsonl"))
                     for r in read_jsonl(p)]
    assert [r["event"] for r in parent_events] == ["parent_after_child"]
    child_events = [r for p in sorted((root / "logs/events/child").glob("*.jsonl"))
                    for r in read_jsonl(p)]
    assert [r["event"] for r in child_events] == ["child_event"]
    child_beat = json.loads((root / "logs/heartbeat/child.json").read_text())
    assert child_beat["pid"] == child["pid"] and child_beat["state"] == "stopped"
    assert child_beat["service_instance_id"] == child["instance_id"]
    parent_beat = json.loads((root / "logs/heartbeat/parent.json").read_text())
    assert parent_beat["pid"] == out["parent_pid"] and parent_beat["state"] == "stopped"
    # the child's beat names the child process (its start time is read again after the fork)
    assert isinstance(parent_beat["pid_start"], int)
    assert child_beat["pid_start"] != parent_beat["pid_start"]
    # the parent's health files hold the parent's bars only: the dormant child's bar (a day
    # later, which would have closed the open hour and day) wrote nothing
    hourly = [r for p in sorted((root / "logs/1h/health_snapshot/parent").glob("*.jsonl"))
              for r in read_jsonl(p)]
    assert [(r["equity"], r["bars"]) for r in hourly] == [(100.0, 1)]
    assert not (root / "logs/24h/health_snapshot/parent").exists()
    state = json.loads((root / "state" / "health" / "parent.json").read_text())
    assert state["equity"] == 101.0  # the parent's last bar, not the child's


MULTIPROCESSING = COMMON + textwrap.dedent('''
    import multiprocessing as mp

    def worker(root, parent_instance_id, conn):
        out = {"pid": os.getpid(), "current_is_none": ensemble_otel.get_telemetry() is None,
               "new_instance_id": resource.instance_id() != parent_instance_id}
        try:
            ensemble_otel.configure(root=root, strategy_id="parent", heartbeat_interval=0.05)
            out["same_strategy"] = "configured"
        except ConfigError as exc:
            out["same_strategy"] = str(exc)
        own = ensemble_otel.configure(root=root, strategy_id="worker-" + mp.current_process().name,
                                      heartbeat_interval=0.05)
        out["strategy"] = own.settings.strategy_id
        own.events.emit("worker_event")
        time.sleep(0.4)
        ensemble_otel.shutdown()
        conn.send(out)

    if __name__ == "__main__":
        root, method = sys.argv[1], sys.argv[2]
        parent = ensemble_otel.configure(root=root, strategy_id="parent", heartbeat_interval=0.05)
        ctx = mp.get_context(method)
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=worker, name=method,
                           args=(root, resource.instance_id(), send))
        proc.start()
        pids, seqs = watch(parent.settings.heartbeat_path, proc.is_alive)
        proc.join()
        child = recv.recv()
        print(json.dumps({"parent_pid": os.getpid(), "pids": pids, "seqs": seqs,
                          "child": child, "exitcode": proc.exitcode,
                          "lock_held_after_child": lock_is_held(root, "parent")}))
''')


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_child_never_writes_as_the_parent(tmp_path: Path, method: str) -> None:
    root = tmp_path / "root"
    out = _run(tmp_path, MULTIPROCESSING, str(root), method)
    child = out["child"]
    assert out["exitcode"] == 0
    assert out["pids"] == [out["parent_pid"]]
    assert len(out["seqs"]) > 3
    assert child["pid"] != out["parent_pid"]
    assert child["current_is_none"] is True
    assert child["new_instance_id"] is True
    assert "strategy_id='parent'" in child["same_strategy"]
    assert "another live process" in child["same_strategy"]
    assert out["lock_held_after_child"] is True
    own = json.loads((root / "logs/heartbeat" / f"worker-{method}.json").read_text())
    assert own["pid"] == child["pid"] and own["state"] == "stopped"
    assert not (root / "logs/events/parent").exists()
    assert [r["event"] for p in (root / f"logs/events/worker-{method}").glob("*.jsonl")
            for r in read_jsonl(p)] == ["worker_event"]


NOTIFY = COMMON + textwrap.dedent('''
    address = sys.argv[2]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\\0" + address[1:])
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    os.environ["NOTIFY_SOCKET"] = address
    os.environ["WATCHDOG_USEC"] = "2000000"
    seen = []

    def read():  # like systemd: keep reading (a datagram queue holds only a few messages)
        while True:
            msg, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            sender = None
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    sender = struct.unpack("3i", data[:12])[0]
            seen.append([sender, msg.decode()])

    threading.Thread(target=read, daemon=True).start()
    parent = ensemble_otel.configure(root=sys.argv[1], strategy_id="parent",
                                     heartbeat_interval=0.05)
    pid = os.fork()
    if pid == 0:
        time.sleep(0.6)  # the inherited reader beats ~12 times, dormant
        sys.exit(0)
    os.waitpid(pid, 0)
    ensemble_otel.shutdown()
    time.sleep(0.5)
    print(json.dumps({"parent_pid": os.getpid(), "child_pid": pid, "seen": seen}))
''')


def test_forked_child_sends_nothing_to_systemd(tmp_path: Path) -> None:
    address = f"@ensemble-otel-fork-{os.getpid()}-{tmp_path.name}"
    out = _run(tmp_path, NOTIFY, str(tmp_path / "root"), address)
    senders = {pid for pid, _ in out["seen"]}
    assert senders == {out["parent_pid"]}, out["seen"]
    messages = [m for _, m in out["seen"]]
    assert messages[0] == "READY=1" and messages[-1] == "STOPPING=1"
    assert messages.count("WATCHDOG=1") >= 3  # the parent kept pinging while the child ran
