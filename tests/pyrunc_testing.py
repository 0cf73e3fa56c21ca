"""Helpers shared by the test suites: the pyrunc under test, with a private state root.

A module of its own (not conftest.py) so that test files can import it by a name that no
directory-level conftest shadows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CGROUP_PREFIX = "/pyrunc-test"

sys.path.insert(0, str(REPO / "hack"))

from make_bundle import make_bundle  # noqa: E402,F401 - re-exported for the tests


def is_root() -> bool:
    return os.geteuid() == 0


needs_root = pytest.mark.skipif(not is_root(), reason="starts real containers: needs root")


def pyrunc_command() -> list[str]:
    """The pyrunc under test: the venv's entry point when present, else `python -m pyrunc`."""
    script = Path(sys.executable).with_name("pyrunc")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "pyrunc"]


class Runtime:
    """Runs pyrunc with a private --root; remembers nothing else."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.command = pyrunc_command()

    def argv(self, *args: str, global_args: tuple[str, ...] = ()) -> list[str]:
        return [*self.command, "--root", str(self.root), *global_args, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 60,
                 global_args: tuple[str, ...] = (), **kwargs: Any) -> subprocess.CompletedProcess[str]:
        # Output goes to files, not pipes: a created container's init inherits pyrunc's stdio
        # (as with runc), so a pipe would not see EOF until the container exits.
        # stdout_file: give pyrunc (and so the container) this file as its stdout instead.
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        stdout_file = kwargs.pop("stdout_file", None)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(self.argv(*args, global_args=global_args),
                                  stdout=stdout_file or out, stderr=err, timeout=timeout,
                                  **kwargs)
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(),
                                                 err.read())
        if check and result.returncode != 0:
            raise AssertionError(f"pyrunc {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def state(self, container_id: str) -> dict[str, Any]:
        return json.loads(self("state", container_id).stdout)


def reap_children() -> None:
    """Collect every exited child (container inits re-parented to this process)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def host_mounts_mentioning(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]


def status_fields(text: str) -> dict[str, str]:
    """/proc/<pid>/status as a mapping of field name to value."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def v1_cgroup_file(controller: str, cgroup_path: str, name: str) -> Path:
    """A file of a container's cgroup in one v1 hierarchy of this host."""
    return Path("/sys/fs/cgroup") / controller / cgroup_path.lstrip("/") / name


def cpu_ticks(pid: int) -> int:
    """utime + stime of `pid` in clock ticks (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def alive(pid: int) -> bool:
    """True while `pid` exists and is neither a zombie nor dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
