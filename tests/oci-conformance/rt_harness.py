"""Run one runtime-tools validation program inside cgroups and a reaper of its own.

Usage: ``python rt_harness.py CGROUP_NAME PROGRAM [ARGS...]`` (stdout/stderr pass through).

Why a separate process:

* The validation programs generate configs with no (or a relative) ``linux.cgroupsPath``; a
  runtime then places the container under the *caller's* cgroup. On hosts where the caller's
  cgroup belongs to a supervisor, containers must not land there. This harness first moves
  itself into ``/pyrunc-conformance/<CGROUP_NAME>`` in every mounted hierarchy, so "the
  caller's cgroup" is one we own and can remove afterwards.
* Container inits outlive the runtime process and are re-parented to the nearest child
  subreaper. If that is a PID 1 that never reaps, killed containers stay zombies. The harness
  is the subreaper for everything the program starts, kills what is left in its cgroups when
  the program ends, and reaps it all, without touching the pytest process's own children.

The harness exits with the program's status (128+signal when it was killed).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PARENT_NAME = "pyrunc-conformance"
PR_SET_CHILD_SUBREAPER = 36


def cgroup_mounts() -> list[Path]:
    """Mount points of every cgroup (v1) and cgroup2 hierarchy in this mount namespace."""
    mounts: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split(" ", 1)[0]
        if fstype in ("cgroup", "cgroup2"):
            point = Path(left.split(" ")[4].replace("\\040", " "))
            if point not in mounts:
                mounts.append(point)
    return mounts


def own_cgroup_dirs(name: str) -> list[Path]:
    """``<mount>/pyrunc-conformance/<name>`` for every hierarchy."""
    return [mount / PARENT_NAME / name for mount in cgroup_mounts()]


def _inherit_cpuset(directory: Path) -> None:
    """A new v1 cpuset cgroup starts empty and refuses tasks; copy the parent's cpus/mems."""
    for key in ("cpuset.cpus", "cpuset.mems"):
        mine, parents = directory / key, directory.parent / key
        if mine.exists() and parents.exists() and not mine.read_text().strip():
            mine.write_text(parents.read_text().strip() or "\n")


def enter_own_cgroups(name: str) -> None:
    """Create our cgroups and move this process into each; any failure is fatal by design."""
    for directory in own_cgroup_dirs(name):
        for level in (directory.parent, directory):
            level.mkdir(exist_ok=True)
            _inherit_cpuset(level)
        (directory / "cgroup.procs").write_text(f"{os.getpid()}\n")


def _pids_in(directory: Path) -> set[int]:
    """Every pid in ``directory`` and the cgroups below it."""
    pids: set[int] = set()
    for procs in directory.rglob("cgroup.procs"):
        try:
            pids.update(int(p) for p in procs.read_text().split())
        except OSError:
            continue
    return pids


def kill_leftovers(name: str) -> int:
    """SIGKILL everything still in our cgroups except ourselves; return how many were found."""
    me = os.getpid()
    leftovers: set[int] = set()
    for directory in own_cgroup_dirs(name):
        if directory.exists():
            leftovers |= _pids_in(directory)
    leftovers.discard(me)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(leftovers)


def reap_all(deadline_s: float = 5.0) -> None:
    """Wait for every descendant that was re-parented to us, up to a deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.02)


def become_subreaper() -> None:
    """Make orphaned container processes our children, so we can reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def remove_own_cgroups(name: str) -> list[str]:
    """rmdir our cgroups depth-first (called by the pytest side after the harness exited)."""
    errors: list[str] = []
    for directory in own_cgroup_dirs(name):
        if not directory.exists():
            continue
        for sub in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _rmdir(sub, errors)
        _rmdir(directory, errors)
        try:
            directory.parent.rmdir()  # shared parent: fine to fail while siblings exist
        except OSError:
            pass
    return errors


def _rmdir(directory: Path, errors: list[str]) -> None:
    for _ in range(50):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as err:
            last = err
            time.sleep(0.02)
    errors.append(f"{directory}: {last}")


def main(argv: list[str]) -> int:
    """Enter own cgroups, run the program as a subreaper, clean up, return its status."""
    if len(argv) < 2:
        print("usage: rt_harness.py CGROUP_NAME PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    name, command = argv[0], argv[1:]
    enter_own_cgroups(name)
    become_subreaper()
    proc = subprocess.Popen(command)
    # The pytest side sends SIGTERM on timeout: stop the program but still clean up.
    signal.signal(signal.SIGTERM, lambda *_: proc.kill())
    try:
        status = proc.wait()
    finally:
        found = kill_leftovers(name)
        if found:
            print(f"# harness: killed {found} leftover process(es) in the program's cgroups", flush=True)
        reap_all()
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
