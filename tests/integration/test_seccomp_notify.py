"""SCMP_ACT_NOTIFY: the notification fd and the container process state reach the agent at
listenerPath, and the agent's answers are what the container's system calls return."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrunc_testing import needs_root

pytestmark = [needs_root, pytest.mark.integration]

# struct seccomp_notif is 80 bytes (id, pid, flags, struct seccomp_data); the response is 24.
_NOTIF_RECV = 0xC0502100     # _IOWR('!', 0, struct seccomp_notif)
_NOTIF_SEND = 0xC0182101     # _IOWR('!', 1, struct seccomp_notif_resp)
ENOSPC = 28


class Agent(threading.Thread):
    """Accepts one runtime connection, then answers every notification with -ENOSPC."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.state: dict = {}
        self.syscalls: list[int] = []
        self.fd = -1

    def run(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
        self.state = json.loads(data)
        self.fd = fds[0]
        while True:
            buf = bytearray(80)
            try:
                fcntl.ioctl(self.fd, _NOTIF_RECV, buf, True)
            except OSError:
                return   # the filter's last user exited
            notif_id, _pid, _flags, nr = struct.unpack_from("<QIIi", buf)
            self.syscalls.append(nr)
            try:
                fcntl.ioctl(self.fd, _NOTIF_SEND, struct.pack("<QqiI", notif_id, 0, -ENOSPC, 0))
            except OSError:
                pass

    def close(self) -> None:
        self.server.close()
        if self.fd >= 0:
            os.close(self.fd)


def notify_mkdir(listener: Path, **seccomp: Any) -> Callable[[dict], None]:
    """A config edit: mkdir goes to the agent at `listener` (more seccomp fields in `seccomp`);
    a writable root, so that the refused mkdir is the agent's answer and not EROFS."""

    def edit(config: dict) -> None:
        config["process"]["noNewPrivileges"] = True
        config["root"]["readonly"] = False
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(listener), **seccomp,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}

    return edit


def test_notify_rules_are_answered_by_the_agent_at_listener_path(runtime, bundle, tmp_path):
    agent = Agent(str(tmp_path / "agent.sock"))
    agent.start()

    edit = notify_mkdir(tmp_path / "agent.sock", listenerMetadata="from-the-test")

    try:
        result = runtime("run", "-b", str(bundle("sh", "-c", "mkdir /made; echo rc=$?",
                                                 edit=edit)), "notify", check=False)
    finally:
        agent.join(timeout=20)
        agent.close()
    assert "rc=1" in result.stdout and "No space left on device" in result.stderr, result
    assert agent.syscalls, "the agent saw no notification"
    doc = agent.state
    assert doc["fds"] == ["seccompFd"] and doc["metadata"] == "from-the-test"
    assert doc["state"]["id"] == "notify" and doc["state"]["status"] == "creating"
    assert doc["pid"] == doc["state"]["pid"] > 0 and doc["ociVersion"]


def test_notify_without_a_listener_path_is_refused_naming_the_field(runtime, bundle):
    def edit(config: dict) -> None:
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}

    result = runtime("create", "-b", str(bundle("true", edit=edit)), "nolistener", check=False)
    assert result.returncode == 1 and "/linux/seccomp/listenerPath" in result.stderr
    assert not (runtime.root / "nolistener").exists()


def test_wait_killable_recv_goes_to_seccomp_with_the_listener(runtime, bundle, tmp_path):
    """SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (32) is passed to seccomp(2) with NEW_LISTENER
    (8), as runc 1.5 does: the debug line says 40, and the agent still answers."""
    agent = Agent(str(tmp_path / "agent.sock"))
    agent.start()

    edit = notify_mkdir(tmp_path / "agent.sock", flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])

    log = tmp_path / "log.json"
    try:
        result = runtime("run", "-b", str(bundle("sh", "-c", "mkdir /made; echo rc=$?",
                                                 edit=edit)), "waitkill", check=False,
                         global_args=("--debug", "--log", str(log), "--log-format", "json"))
    finally:
        agent.join(timeout=20)
        agent.close()
    assert "rc=1" in result.stdout, result
    assert agent.syscalls, "the agent saw no notification"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["msg"] for r in records if r["msg"].startswith("seccomp filter flags:")] == [
        "seccomp filter flags: 40"]
