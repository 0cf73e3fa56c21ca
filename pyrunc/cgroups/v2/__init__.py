"""The cgroup v2 cgroupfs driver, for hosts where cgroup2 is the only hierarchy (/sys/fs/cgroup).

One directory per container. A controller is usable in a cgroup only when every ancestor lists it in
cgroup.subtree_control, so creation enables the available ones on the way down. Freezing uses the
core cgroup.freeze file (Linux 5.2) and cgroup.kill (5.14) kills the whole tree in one write.

Resources go in runc's order (pids, memory, io, cpu, devices, cpuset, hugetlb, rdma, then the
`unified` files, which therefore override the rest); a limit whose controller is not enabled in
the container's cgroup fails before anything is written.
"""

from __future__ import annotations

import errno
import os
import time

from pyrunc.cgroups import UNIFIED, V2_ROOT, CgroupError
from pyrunc.cgroups.fs import FsManagerBase, cgroup_mounts, hierarchy_dir, own_cgroups, read, write
from pyrunc.linux.consts import SIGKILL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pyrunc.spec.resources import DeviceRule, Resources

    # Type aliases only: `kill` and `delete` load this module and need no config model.
    Wanted = Callable[[Resources], "str | None"]
    Apply = Callable[[str, Resources], None]


def _controllers() -> list[tuple[str, Wanted, Apply]]:
    """(config field, wanted, apply) in runc's order; `wanted` names the first file written."""
    from pyrunc.cgroups.v2 import cpu, cpuset, hugetlb, io, memory, pids, rdma

    return [("pids", pids.wanted, pids.apply), ("memory", memory.wanted, memory.apply),
            ("blockIO", io.wanted, io.apply), ("cpu", cpu.wanted, cpu.apply),
            ("cpu", cpuset.wanted, cpuset.apply),
            ("hugepageLimits", hugetlb.wanted, hugetlb.apply),
            ("rdma", rdma.wanted, rdma.apply)]

_FREEZE_TIMEOUT = 5.0
_FREEZE_POLL = 0.001


class FsV2Manager(FsManagerBase):
    """A container cgroup in the single cgroup2 hierarchy."""

    def __init__(self, directory: str, created: tuple[str, ...] = ()) -> None:
        super().__init__({UNIFIED: directory}, created)
        self._dir = directory

    @classmethod
    def for_path(cls, cgroups_path: str) -> FsV2Manager:
        for mount in cgroup_mounts():
            if mount.fstype == "cgroup2" and mount.mountpoint == V2_ROOT:
                return cls(hierarchy_dir(mount, cgroups_path, own_cgroups()))
        raise CgroupError(f"cgroup2 is not mounted at {V2_ROOT}")

    # --- creation --------------------------------------------------------------------------------

    def _after_mkdir(self, directory: str, made: list[str]) -> None:
        """Enable every available controller in each ancestor, so the container's cgroup has them.

        The ancestors are the directories above `directory` up to the root of the cgroup2 mount
        (the last one with a cgroup.controllers file), enabled from the top down.
        """
        ancestors: list[str] = []
        parent = os.path.dirname(directory)
        while parent != directory and os.path.exists(os.path.join(parent, "cgroup.controllers")):
            ancestors.append(parent)
            directory, parent = parent, os.path.dirname(parent)
        for depth, ancestor in enumerate(reversed(ancestors)):
            _enable_controllers(ancestor, is_root=depth == 0)

    # --- devices ---------------------------------------------------------------------------------

    def apply_devices(self, rules: Sequence[DeviceRule]) -> None:
        """cgroup v2 has no device files: the rules become an eBPF filter on the directory."""
        from pyrunc.cgroups.devices import apply_v2

        apply_v2(self._dir, rules)

    # --- resources -------------------------------------------------------------------------------

    def apply_resources(self, resources: Resources) -> None:
        """Write every limit of `resources` to the container's cgroup files."""
        steps = _controllers()
        self._check_resources(resources, steps)
        _note_ignored(resources)
        for _, _, apply in steps:
            apply(self._dir, resources)
        if resources.unified:
            from pyrunc.cgroups.v2 import unified

            unified.apply(self._dir, resources)

    def _check_resources(self, resources: Resources,
                         steps: list[tuple[str, Wanted, Apply]]) -> None:
        """Fail before any write when a needed controller is missing or swap cannot convert."""
        m = resources.memory
        if m is not None:
            from pyrunc.cgroups.convert import swap_to_v2

            swap_to_v2(m.swap or 0, m.limit or 0)
        try:
            available = set(read(self._dir, "cgroup.controllers").split())
        except OSError as exc:
            from pyrunc.cgroups.fs import fail

            fail(exc, f"read cgroup.controllers of {self._dir}")
        for field, wanted, _ in steps:
            name = wanted(resources)
            controller = name.partition(".")[0] if name else None
            if controller is not None and controller not in available:
                raise CgroupError(f"set /linux/resources/{field} ({name}): the {controller} "
                                  f"controller is not enabled in {self._dir} (not in "
                                  f"cgroup.controllers): ENOENT")

    # --- freezer ---------------------------------------------------------------------------------

    def can_freeze(self) -> bool:
        return os.path.exists(os.path.join(self._dir, "cgroup.freeze"))

    def freeze(self) -> None:
        """Write 1 to cgroup.freeze and wait until cgroup.events reports `frozen 1`."""
        step = f"freeze cgroup {self._dir}"
        if not self.can_freeze() and os.path.isdir(self._dir):
            raise CgroupError(f"{step}: cgroup.freeze is missing (needs Linux 5.2)")
        write(self._dir, "cgroup.freeze", "1", step)
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        while not _events_frozen(self._dir):
            if time.monotonic() > deadline:
                self.thaw()
                raise CgroupError(f"{step}: not frozen after {_FREEZE_TIMEOUT:g} s")
            time.sleep(_FREEZE_POLL)

    def thaw(self) -> None:
        write(self._dir, "cgroup.freeze", "0", f"thaw cgroup {self._dir}")

    def is_frozen(self) -> bool:
        try:
            return read(self._dir, "cgroup.freeze") == "1"
        except FileNotFoundError:
            return False

    # --- signals ---------------------------------------------------------------------------------

    def kill_all(self, sig: int) -> None:
        """SIGKILL through cgroup.kill when the kernel has it (no race with forking tasks); a paused
        container is thawed afterwards, as with the freeze-signal-thaw fallback."""
        if sig == SIGKILL and os.path.exists(os.path.join(self._dir, "cgroup.kill")):
            try:
                write(self._dir, "cgroup.kill", "1", f"kill cgroup {self._dir}")
                if self.is_frozen():
                    self.thaw()
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            return
        super().kill_all(sig)


def _note_ignored(resources: Resources) -> None:
    """Settings that have no cgroup v2 file; runc ignores them there too, pyrunc says so."""
    from pyrunc import log

    m, n = resources.memory, resources.network
    if m is not None and (m.kernel is not None or m.kernel_tcp is not None):
        log.warning("/linux/resources/memory/kernel, kernelTCP: kernel memory limits are ignored "
                    "(deprecated by the kernel; runc ignores them too)")
    if m is not None and (m.swappiness is not None or m.disable_oom_killer):
        log.debug("/linux/resources/memory: swappiness and disableOOMKiller have no cgroup v2 "
                  "file: not applied (as with runc)")
    if n is not None and (n.class_id or n.priorities):
        log.warning("/linux/resources/network: not applied: net_cls and net_prio are cgroup v1 "
                    "controllers (runc ignores them on v2 too)")


def _events_frozen(directory: str) -> bool:
    for line in read(directory, "cgroup.events").splitlines():
        key, _, value = line.partition(" ")
        if key == "frozen":
            return value.strip() == "1"
    return False


def _enable_controllers(directory: str, *, is_root: bool = False) -> None:
    """Add every controller listed in cgroup.controllers to cgroup.subtree_control.

    Not in a cgroup that has processes of its own (the caller's, for a relative cgroupsPath):
    the kernel's "no internal processes" rule refuses the domain controllers there, and
    enabling only the threaded ones would turn it into a threaded domain and its new child
    into an invalid one that no process can join. All or nothing, for the same reason.
    (The root cgroup is exempt from that rule.)
    """
    if not is_root and read(directory, "cgroup.procs").split():
        return
    available = read(directory, "cgroup.controllers").split()
    enabled = set(read(directory, "cgroup.subtree_control").split())
    missing = [c for c in available if c not in enabled]
    if not missing:
        return
    try:
        write(directory, "cgroup.subtree_control", " ".join("+" + c for c in missing),
              f"enable controllers in {directory}")
    except OSError as exc:
        from pyrunc import log

        log.debug(f"cannot enable controllers {' '.join(missing)} in {directory}: {exc}")
