"""Out-of-memory notifications from a container's memory cgroup, as file descriptors to poll.

The kernel reports an OOM in a memory cgroup differently per version, and both need no ctypes:
  * v1: an eventfd registered for memory.oom_control through cgroup.event_control; the kernel
    signals it on every OOM, and once more when the cgroup is removed (the registration vanishes
    with cgroup.event_control, which is how the two are told apart);
  * v2: memory.events, a kernfs file whose change wakes poll(2) with POLLPRI; its `oom_kill`
    counter says whether the change was an OOM kill.
`OomWatcher.fds()` go into a poll set; `OomWatcher.ready(fd)` returns what happened.
"""

from __future__ import annotations

import os
import select

from pyrunc.cgroups import CREATED_KEY, UNIFIED, CgroupError
from pyrunc.cgroups.fs import write

#: poll(2) events for a kernfs file that changed (sysfs_notify / cgroup_file_notify).
KERNFS_CHANGED = select.POLLPRI | select.POLLERR


def read_counters(fd: int) -> dict[str, int]:
    """Re-read a flat-keyed cgroup file (memory.events, cgroup.events) from an open fd.

    Reading also re-arms the kernfs notification for the next poll.
    """
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    out: dict[str, int] = {}
    for line in data.decode().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


class OomWatcher:
    """Watches one container's memory cgroup for OOM events until it is closed."""

    def __init__(self, paths: dict[str, str]) -> None:
        hierarchies = {k: v for k, v in paths.items() if k != CREATED_KEY}
        self._v2 = set(hierarchies) == {UNIFIED}
        directory = hierarchies.get(UNIFIED if self._v2 else "memory")
        if not directory:
            raise CgroupError("cannot watch for OOM events: memory controller missing")
        self.directory = directory
        self._event_control = os.path.join(directory, "cgroup.event_control")
        self._fds: list[int] = []
        try:
            if self._v2:
                self._open_v2()
            else:
                self._open_v1()
        except BaseException:
            self.close()
            raise

    def _open(self, name: str) -> int:
        path = os.path.join(self.directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            from pyrunc.cgroups.fs import fail
            fail(exc, f"watch {path} for OOM events")
        self._fds.append(fd)
        return fd

    def _open_v1(self) -> None:
        control = self._open("memory.oom_control")
        self._eventfd = os.eventfd(0, os.EFD_CLOEXEC)
        self._fds.append(self._eventfd)
        write(self.directory, "cgroup.event_control", f"{self._eventfd} {control}",
              f"register for OOM events of {self.directory}")

    def _open_v2(self) -> None:
        self._events = self._open("memory.events")
        self._oom_kills = read_counters(self._events).get("oom_kill", 0)

    def fds(self) -> list[tuple[int, int]]:
        """(fd, poll event mask) pairs to register."""
        if self._v2:
            return [(self._events, KERNFS_CHANGED)]
        return [(self._eventfd, select.POLLIN)]

    def ready(self, fd: int) -> tuple[int, bool]:
        """Handle a poll wake-up on `fd`: (number of OOM events, whether the cgroup is gone)."""
        if self._v2:
            if fd != self._events:
                return 0, False
            try:
                kills = read_counters(fd).get("oom_kill", 0)
            except OSError:
                return 0, True    # the cgroup was removed under us
            new = kills > self._oom_kills
            self._oom_kills = kills
            return int(new), False
        if fd != self._eventfd:
            return 0, False
        os.eventfd_read(self._eventfd)
        if not os.path.exists(self._event_control):
            return 0, True
        return 1, False

    def drain(self) -> int:
        """OOM events that happened but did not wake a poll yet (the last look before stopping)."""
        if self._v2:
            try:
                kills = read_counters(self._events).get("oom_kill", 0)
            except OSError:
                return 0
            new = kills > self._oom_kills
            self._oom_kills = kills
            return int(new)
        poller = select.poll()
        poller.register(self._eventfd, select.POLLIN)
        if poller.poll(0):
            events, _ = self.ready(self._eventfd)
            return events
        return 0

    def close(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
