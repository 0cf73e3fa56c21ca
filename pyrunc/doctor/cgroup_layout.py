"""The host's cgroup layout as a container runtime sees it: v1, hybrid or v2, which controllers
exist, where each is mounted, and where they are delegated (enabled for child cgroups, writable).

Read from /proc/cgroups, /proc/self/mountinfo and /proc/self/cgroup through the same helpers the
cgroupfs drivers use (`pyrunc.cgroups.fs`), so the report describes what `create` will meet.
"""

from __future__ import annotations

import os

from pyrunc.cgroups import V2_ROOT, fs, is_v2_host
from pyrunc.doctor import Finding, finding

_AREA = "cgroups"

#: v1 controller name -> its cgroup v2 name, where they differ.
V2_NAMES = {"blkio": "io"}


def kernel_controllers(proc_file: str = "/proc/cgroups") -> dict[str, bool]:
    """Controller name -> enabled, in /proc/cgroups order."""
    out: dict[str, bool] = {}
    with open(proc_file) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 4 and not line.startswith("#"):
                out[fields[0]] = fields[3] == "1"
    return out


def mode_of(mounts: list[fs.Mount]) -> str:
    """"v2" (cgroup2 only), "hybrid" (v1 hierarchies plus cgroup2), "v1", or "none"."""
    has_v1 = any(m.fstype == "cgroup" for m in mounts)
    has_v2 = any(m.fstype == "cgroup2" for m in mounts)
    if has_v1:
        return "hybrid" if has_v2 else "v1"
    return "v2" if has_v2 else "none"


def _own_dir(mount: fs.Mount, own: dict[str, str]) -> str | None:
    if mount.names[0] not in own:
        return None
    return fs.hierarchy_dir(mount, ".", own).rstrip("/") or "/"


def _writable(directory: str | None) -> bool:
    return directory is not None and os.access(os.path.join(directory, "cgroup.procs"), os.W_OK)


def _words(directory: str, name: str) -> list[str]:
    try:
        return fs.read(directory, name).split()
    except OSError:
        return []


def _mode_finding(mode: str, v1: list[fs.Mount], v2: fs.Mount | None,
                  v2_controllers: list[str]) -> Finding:
    data: dict[str, object] = {
        "mode": mode,
        "v1": [{"mountpoint": m.mountpoint, "controllers": list(m.names)} for m in v1],
        "v2": None if v2 is None else {"mountpoint": v2.mountpoint,
                                       "controllers": v2_controllers},
    }
    if mode == "none":
        return finding("cgroup.mode", _AREA, False, "no cgroup filesystem is mounted: "
                       "containers get no resource limits", **data)
    parts = []
    if v1:
        parts.append(f"{len(v1)} v1 hierarchies ({', '.join(m.mountpoint for m in v1)})")
    if v2 is not None:
        names = " ".join(v2_controllers) or "no controllers"
        parts.append(f"cgroup2 at {v2.mountpoint} with {names}")
    why = f"{mode}: " + "; ".join(parts)
    if mode == "v2" and not is_v2_host():
        return finding("cgroup.mode", _AREA, False, why + f": pyrunc's v2 driver needs cgroup2 at "
                       f"{V2_ROOT}", **data)
    driver = "v2" if mode == "v2" else "v1"
    return finding("cgroup.mode", _AREA, True, f"{why}; pyrunc uses its {driver} driver", **data)


def _v1_controller(name: str, mount: fs.Mount, own: dict[str, str]) -> Finding:
    own_dir = _own_dir(mount, own)
    writable = _writable(own_dir)
    why = f"v1 hierarchy at {mount.mountpoint}"
    if len(mount.names) > 1:
        why += f" (with {', '.join(n for n in mount.names if n != name)})"
    if own_dir is not None:
        why += f"; this process's cgroup {own_dir} is " + ("writable" if writable else
                                                         "not writable")
    return finding(f"cgroup.{name}", _AREA, True, why, version=1, mountpoint=mount.mountpoint,
                   ownCgroup=own_dir, writable=writable)


def _v2_controller(name: str, mount: fs.Mount, own: dict[str, str]) -> Finding:
    root_enabled = name in _words(mount.mountpoint, "cgroup.subtree_control")
    own_dir = _own_dir(mount, own)
    delegated = own_dir is not None and name in _words(own_dir, "cgroup.controllers")
    why = f"cgroup2 at {mount.mountpoint}; " + (
        "enabled for the root's children (cgroup.subtree_control)" if root_enabled else
        "not yet in the root's cgroup.subtree_control (pyrunc enables it on the way down)")
    if own_dir is not None and own_dir != mount.mountpoint.rstrip("/"):
        verb = "delegated" if delegated else "not delegated"
        why += f"; {verb} to this process's cgroup {own_dir}"
    return finding(f"cgroup.{name}", _AREA, True, why, version=2, mountpoint=mount.mountpoint,
                   ownCgroup=own_dir, enabledAtRoot=root_enabled, delegated=delegated,
                   writable=_writable(own_dir))


def _favordynmods_mounts(mountinfo: str) -> list[str]:
    """Mount points of cgroup hierarchies mounted with `favordynmods` (a super option)."""
    found = []
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            tail = right.split()
            if len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2") \
                    and "favordynmods" in tail[2].split(","):
                found.append(fs._unescape(left.split()[4]))
    return found


def migration_wait(mountinfo: str = "/proc/self/mountinfo") -> Finding:
    """Whether moving a process into a cgroup first waits for an RCU grace period.

    Every create and exec moves one process into the container's cgroup. The kernel guards such
    moves with one lock for the whole host (cgroup_threadgroup_rwsem), whose write side waits out
    an RCU grace period unless a recent move already did: several milliseconds each time on an
    idle host, more on a busy one (about 8-15 ms of a `run` on the 2-core machine of the README's
    benchmark, which runc pays as well). A cgroup hierarchy mounted with `favordynmods` keeps
    the lock in the mode where moves do not wait, making fork and exit a little dearer instead.
    """
    found = _favordynmods_mounts(mountinfo)
    if found:
        return finding("cgroup.migration", _AREA, True,
                       f"moves into a cgroup do not wait for an RCU grace period: {found[0]} is "
                       "mounted with favordynmods", favordynmods=True)
    return finding("cgroup.migration", _AREA, True,
                   "each move into a cgroup (one per create and exec) first waits for an RCU "
                   "grace period, several ms: no cgroup hierarchy is mounted with favordynmods "
                   "(where the kernel has it, `mount -o remount,favordynmods` of the cgroup2 "
                   "mount removes the wait, for every user of the host's cgroups, at the cost of "
                   "slightly dearer fork and exit)", favordynmods=False)


def layout() -> list[Finding]:
    """The cgroup mode line, then one line per controller."""
    mounts = fs.cgroup_mounts()
    v1 = [m for m in mounts if m.fstype == "cgroup" and not m.names[0].startswith("name=")]
    v2 = next((m for m in mounts if m.fstype == "cgroup2"), None)
    v2_controllers = _words(v2.mountpoint, "cgroup.controllers") if v2 else []
    mode = mode_of(mounts)
    out = [_mode_finding(mode, v1, v2, v2_controllers), migration_wait()]
    try:
        own = fs.own_cgroups()
    except OSError:
        own = {}
    by_name = {name: m for m in v1 for name in m.names}
    if mode == "v2" and v2 is not None:
        # A pure v2 host: the controllers are cgroup2's own names (io, not blkio; no cpuacct).
        return out + [_v2_controller(name, v2, own) for name in v2_controllers]
    for name, enabled in kernel_controllers().items():
        if not enabled:
            out.append(finding(f"cgroup.{name}", _AREA, False,
                               "disabled on the kernel command line (cgroup_disable=)"))
        elif name in by_name:
            out.append(_v1_controller(name, by_name[name], own))
        elif v2 is not None and V2_NAMES.get(name, name) in v2_controllers:
            out.append(_v2_controller(V2_NAMES.get(name, name), v2, own))
        else:
            where = f" and not in {v2.mountpoint}/cgroup.controllers" if v2 else ""
            out.append(finding(f"cgroup.{name}", _AREA, False,
                               f"no v1 hierarchy has it mounted{where}: settings that need it "
                               "cannot be applied"))
    return out
