"""The cgroup v1 cgroupfs driver, for legacy hosts and hybrid ones (v1 controllers + cgroup2 mount).

Each v1 hierarchy is a separate filesystem with its own tree; a container has one directory in each
(co-mounted controllers such as `cpu,cpuacct` share it). On a hybrid host the container also gets a
directory in the cgroup2 mount, so that tools reading the `0::` line of /proc/<pid>/cgroup find it.
Freezing uses the v1 freezer controller.

Resources go controller by controller, in runc's order (cpuset, devices, memory, cpu, pids, blkio,
hugetlb, net_cls, net_prio, rdma); each controller module writes its own files. A limit whose
controller is not mounted fails, as with runc; `unified` (cgroup v2 files) is refused.
"""

from __future__ import annotations

import errno
import os
import time

from pyrunc.cgroups import CgroupError
from pyrunc.cgroups.fs import (
    FsManagerBase,
    cgroup_mounts,
    hierarchy_dir,
    own_cgroups,
    read,
    write,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pyrunc.spec.resources import DeviceRule, Resources

    # Type aliases only: `kill` and `delete` load this module and need no config model.
    Wanted = Callable[[Resources], "str | None"]
    Apply = Callable[[str, Resources], None]


def _controllers() -> list[tuple[str, str, Wanted, Apply]]:
    """(controller, config field, wanted, apply) in runc's order; modules imported when used."""
    from pyrunc.cgroups.v1 import cpu, cpuset, hugetlb, io, memory, net, pids, rdma

    return [
        ("cpuset", "cpu", cpuset.wanted, cpuset.apply),
        ("memory", "memory", memory.wanted, memory.apply),
        ("cpu", "cpu", cpu.wanted, cpu.apply),
        ("pids", "pids", pids.wanted, pids.apply),
        ("blkio", "blockIO", io.wanted, io.apply),
        ("hugetlb", "hugepageLimits", hugetlb.wanted, hugetlb.apply),
        ("net_cls", "network", net.cls_wanted, net.apply_cls),
        ("net_prio", "network", net.prio_wanted, net.apply_prio),
        ("rdma", "rdma", rdma.wanted, rdma.apply),
    ]

# freezer.state moves THAWED -> FREEZING -> FROZEN; tasks in uninterruptible sleep can hold it in
# FREEZING, and re-writing FROZEN nudges the kernel to retry them.
_FREEZE_TIMEOUT = 5.0
_FREEZE_POLL = 0.001
_FREEZE_REWRITE_EVERY = 0.1


class FsV1Manager(FsManagerBase):
    """A container cgroup spread over every mounted v1 hierarchy (and the unified one if hybrid)."""

    @classmethod
    def for_path(cls, cgroups_path: str) -> FsV1Manager:
        """Resolve `cgroups_path` in every hierarchy this process can see."""
        own = own_cgroups()
        mounts = cgroup_mounts()
        has_v1 = any(m.fstype == "cgroup" for m in mounts)
        if not has_v1:
            raise CgroupError("no cgroup v1 hierarchy is mounted and cgroup v2 is not mounted at "
                              "/sys/fs/cgroup")
        dirs: dict[str, str] = {}
        for mount in mounts:
            directory = hierarchy_dir(mount, cgroups_path, own)
            for name in mount.names:
                dirs.setdefault(name, directory)
        return cls(dirs)

    # --- creation --------------------------------------------------------------------------------

    def _after_mkdir(self, directory: str, made: list[str]) -> None:
        if directory == self._dirs.get("cpuset"):
            _inherit_cpuset(directory)

    # --- devices ---------------------------------------------------------------------------------

    def apply_devices(self, rules: Sequence[DeviceRule]) -> None:
        from pyrunc.cgroups.devices import apply_v1

        apply_v1(self._dirs.get("devices"), rules)

    # --- resources -------------------------------------------------------------------------------

    def apply_resources(self, resources: Resources) -> None:
        """Write every limit of `resources` to its controller's directory.

        Nothing is written when a needed controller is missing: that is found out first.
        """
        if resources.unified:
            raise CgroupError("/linux/resources/unified: cgroup v2 files cannot be set on a "
                              "cgroup v1 host (its controllers are v1 hierarchies)")
        steps = _controllers()
        for controller, field, wanted, _ in steps:
            name = wanted(resources)
            if name is not None and controller not in self._dirs:
                raise CgroupError(f"set /linux/resources/{field} ({name}): the {controller} "
                                  f"cgroup controller is not mounted on this host: "
                                  f"{errno.errorcode[errno.ENOENT]}")
        from pyrunc.cgroups.v1 import memory

        memory.warn_ignored(resources)
        for controller, _, _, apply in steps:
            if controller in self._dirs:
                apply(self._dirs[controller], resources)

    # --- freezer ---------------------------------------------------------------------------------

    def _freezer(self) -> str:
        directory = self._dirs.get("freezer")
        if directory is None:
            raise CgroupError("the freezer cgroup controller is not mounted: cannot freeze")
        return directory

    def can_freeze(self) -> bool:
        return "freezer" in self._dirs

    def freeze(self) -> None:
        """Write FROZEN and wait for freezer.state to say FROZEN (thaw again if it never does)."""
        directory = self._freezer()
        step = f"freeze cgroup {directory}"
        write(directory, "freezer.state", "FROZEN", step)
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        next_rewrite = time.monotonic() + _FREEZE_REWRITE_EVERY
        while read(directory, "freezer.state") != "FROZEN":
            now = time.monotonic()
            if now > deadline:
                self.thaw()
                raise CgroupError(f"{step}: still FREEZING after {_FREEZE_TIMEOUT:g} s")
            if now > next_rewrite:
                write(directory, "freezer.state", "FROZEN", step)
                next_rewrite = now + _FREEZE_REWRITE_EVERY
            time.sleep(_FREEZE_POLL)

    def thaw(self) -> None:
        directory = self._freezer()
        write(directory, "freezer.state", "THAWED", f"thaw cgroup {directory}")

    def is_frozen(self) -> bool:
        directory = self._dirs.get("freezer")
        if directory is None:
            return False
        try:
            return read(directory, "freezer.state") == "FROZEN"
        except FileNotFoundError:
            return False


def _inherit_cpuset(leaf: str) -> None:
    """Give new cpuset cgroups their parent's cpus and mems.

    A v1 cpuset cgroup starts with empty cpuset.cpus/cpuset.mems, and the kernel refuses to attach a
    task to it (ENOSPC) until both are set; so every empty level, top down, copies its parent's.
    """
    chain: list[str] = []
    directory = leaf
    while True:
        try:
            if read(directory, "cpuset.cpus") and read(directory, "cpuset.mems"):
                break
        except FileNotFoundError:
            return  # mounted with `noprefix` or not a cpuset hierarchy: nothing we know to do
        chain.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            return
        directory = parent
    for directory in reversed(chain):
        parent = os.path.dirname(directory)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read(directory, name):
                write(directory, name, read(parent, name), f"initialise cpuset of {directory}")
