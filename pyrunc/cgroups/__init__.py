"""Control groups: one interface, with cgroupfs drivers for v1 (legacy and hybrid hosts) and v2.

A container gets one cgroup *per hierarchy* the host has mounted. On a v1 host that is one
directory in each controller hierarchy (cpu, memory, pids, freezer, ..., and the named
`name=systemd` one); on a hybrid host also one in the cgroup2 mount at /sys/fs/cgroup/unified; on a
v2 host a single directory.

`cgroup_manager()` resolves `linux.cgroupsPath` for a new container; `paths()` is what the
container state stores, and `load_manager()` rebuilds a manager from it for later commands. Both
live here so that `state`, which only asks `is_frozen()`, imports nothing heavy: the drivers are
imported on demand and use only `os` and `time`.

Path resolution follows runc's cgroupfs driver:
  * absolute cgroupsPath  -> that path under the root of every hierarchy;
  * relative cgroupsPath  -> under the *calling process's own* cgroup in each hierarchy
                             (/proc/self/cgroup);
  * no cgroupsPath        -> as a relative path named after the container id.
The systemd form `slice:prefix:name` needs the systemd driver, which pyrunc does not have.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    from pyrunc.spec.resources import DeviceRule, Resources
else:
    Protocol = object   # the classes only document an interface at run time

#: Where cgroup v2 exposes its root controller list when it is the only hierarchy (a "unified"
#: host).
V2_ROOT = "/sys/fs/cgroup"

#: Key of the cgroup2 hierarchy in `paths()` (the unified mount on hybrid hosts, the root on v2
#: hosts).
UNIFIED = "unified"

#: Reserved key in `paths()`: the ancestor directories this manager created (newline separated), so
#: that `destroy()` after a `load_manager()` removes exactly those and no parent someone else made.
CREATED_KEY = "pyrunc:created"


class CgroupError(RuntimeError):
    """A cgroup operation pyrunc cannot perform (unsupported layout or driver, freeze timeout)."""


class CgroupJoiner(Protocol):
    """All that starting a process needs of a cgroup: a `CgroupManager`, or a wrapper that lets
    a rootless join fail (`pyrunc.container.execute`)."""

    def add_process(self, pid: int) -> None:
        """Move process `pid` into the cgroup."""


class CgroupManager(Protocol):
    """What the rest of pyrunc may ask of a container's cgroup, whatever the host's layout."""

    def plan_create(self) -> None:
        """Count the parent directories create() will make into paths() before it makes them
        (so a state saved first lets a crash in between be cleaned up)."""

    def create(self) -> None:
        """Create the container's cgroup directory in every hierarchy (mkdir -p)."""

    def add_process(self, pid: int) -> None:
        """Move process `pid` into the container's cgroup in every hierarchy."""

    def apply_resources(self, resources: Resources) -> None:
        """Write `linux.resources` (built by `Resources.from_json`) to the cgroup's files, in
        runc's order and with runc's values; used by `create` and by `update`."""

    def apply_devices(self, rules: Sequence[DeviceRule]) -> None:
        """Enforce the device rules (v1 devices.allow/deny, v2 an eBPF filter); refuse rules that
        restrict something where the host has no device controller."""

    def paths(self) -> dict[str, str]:
        """Hierarchy name -> absolute directory, plus CREATED_KEY; stored in the container state."""

    def pids(self) -> list[int]:
        """Every pid in the container's cgroup, sub-cgroups included."""

    def freeze(self) -> None:
        """Freeze every task in the cgroup and return once the kernel reports it frozen."""

    def thaw(self) -> None:
        """Let the frozen tasks run again."""

    def is_frozen(self) -> bool:
        """True when the cgroup is frozen (the container is `paused`)."""

    def kill_all(self, sig: int) -> None:
        """Send `sig` to every process in the cgroup."""

    def destroy(self) -> None:
        """Remove the container's cgroup directories (and the empty ancestors this manager made)."""


def is_permission_error(exc: BaseException) -> bool:
    """runc's "ignorable" cgroup errors for a rootless runtime: EPERM, EACCES and EROFS (a
    read-only cgroupfs is, to an unprivileged user, one more way of saying no)."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS)


class NoCgroup:
    """The cgroup of a rootless container that has none: joining it does nothing."""

    def add_process(self, pid: int) -> None:
        """Nothing to join: the process stays in its creator's cgroups."""


def is_v2_host() -> bool:
    """True on a pure cgroup v2 host: cgroup2 mounted at /sys/fs/cgroup itself."""
    return os.path.exists(os.path.join(V2_ROOT, "cgroup.controllers"))


def is_systemd_path(cgroups_path: str) -> bool:
    """True for the `slice:prefix:name` form that only the systemd cgroup driver understands."""
    return not cgroups_path.startswith("/") and cgroups_path.count(":") == 2


def cgroup_manager(cgroups_path: str | None, container_id: str) -> CgroupManager:
    """The manager for a new container's cgroup, resolved from `linux.cgroupsPath`."""
    if cgroups_path and is_systemd_path(cgroups_path):
        raise CgroupError(f"cgroupsPath {cgroups_path!r}: systemd cgroup driver is not supported")
    name = cgroups_path or container_id
    if os.path.normpath("/" + name).strip("/") == "" or name.strip("/") in (".", ".."):
        raise CgroupError(f"cgroupsPath {name!r}: a container needs a cgroup of its own, not "
                          "the root or the caller's cgroup")
    if is_v2_host():
        from pyrunc.cgroups.v2 import FsV2Manager
        return FsV2Manager.for_path(name)
    from pyrunc.cgroups.v1 import FsV1Manager
    return FsV1Manager.for_path(name)


def load_manager(paths: dict[str, str]) -> CgroupManager:
    """Rebuild the manager of an existing container from the `paths()` stored in its state.

    A state with only the unified key came from the v2 driver; anything else from the v1 driver
    (which, on hybrid hosts, also records the unified directory).
    """
    hierarchies = {k: v for k, v in paths.items() if k != CREATED_KEY}
    created = tuple(p for p in paths.get(CREATED_KEY, "").split("\n") if p)
    if set(hierarchies) == {UNIFIED}:
        from pyrunc.cgroups.v2 import FsV2Manager
        return FsV2Manager(hierarchies[UNIFIED], created)
    from pyrunc.cgroups.v1 import FsV1Manager
    return FsV1Manager(hierarchies, created)


__all__ = ["CREATED_KEY", "UNIFIED", "CgroupError", "CgroupManager", "NoCgroup", "cgroup_manager",
           "is_permission_error", "is_systemd_path", "is_v2_host", "load_manager"]
