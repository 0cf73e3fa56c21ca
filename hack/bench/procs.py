"""Running commands for the benchmark: quietly, with a deadline, and timed.

Output goes to files, never pipes: after ``create`` the container's init keeps the runtime's
stdio open, so reading a pipe to EOF would wait for the container to exit.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36
COMMAND_TIMEOUT = 60.0  # seconds; a runtime that hangs must not hang the benchmark


@dataclass
class Outcome:
    """How one command ended: exit status, wall seconds, and the ends of its output."""

    code: int
    seconds: float
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        """One line for a report: the exit status and the end of stderr."""
        return f"exit {self.code}: {self.stderr.strip()[-300:]}"


def run_command(
    argv: list[str], *, timeout: float = COMMAND_TIMEOUT, want_stdout: bool = False
) -> Outcome:
    """Run ``argv`` with stdin from /dev/null and output to temporary files; time it.

    A command past ``timeout`` is killed and reported as exit 124 (as timeout(1) does). The
    deadline is a timer thread, not ``subprocess.run(timeout=...)``: that one polls with
    sleeps that double up to 50 ms, which would round every timing up to its next step.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out if want_stdout else subprocess.DEVNULL,
            stderr=err,
        )
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            proc.kill()

        watchdog = threading.Timer(timeout, kill)
        watchdog.start()
        try:
            code = proc.wait()  # a blocking waitpid: returns as soon as the command exits
        finally:
            watchdog.cancel()
        if expired.is_set():
            code = 124
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace") if want_stdout else ""
        return Outcome(code, elapsed, stdout, err.read().decode(errors="replace")[-2000:])


def become_subreaper() -> None:
    """Adopt orphaned container inits: this host's PID 1 never reaps them (zombies)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_children() -> None:
    """Collect every exited child without blocking (inits re-parented to this process)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def is_gone(pid: int) -> bool:
    """True once ``pid`` has exited (reaping it when it is this process's child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait until ``pid`` has exited; False if it is still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not is_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def read_pid(path: str) -> int | None:
    """The pid a runtime wrote to ``--pid-file``, or None."""
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def proc_status_kib(pid: int, fields: tuple[str, ...] = ("VmRSS", "RssAnon")) -> dict[str, int]:
    """Selected ``/proc/<pid>/status`` sizes in KiB (missing fields are left out)."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in fields:
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def mount_stats(pid: int) -> tuple[int, int] | None:
    """Mounts in ``pid``'s namespace (mountinfo lines) and distinct tmpfs superblocks among them.

    A bind of a tmpfs is one more line but not one more superblock: masking with binds of one
    tmpfs and masking with a tmpfs per directory differ in the second figure, not the first.
    """
    try:
        with open(f"/proc/{pid}/mountinfo") as info:
            lines = info.read().splitlines()
    except OSError:
        return None
    tmpfs = set()
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "tmpfs":
            tmpfs.add(left.split(" ")[2])
    return len(lines), len(tmpfs)
