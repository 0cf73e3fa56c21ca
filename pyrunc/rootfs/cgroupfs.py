"""The cgroup filesystems inside the container: cgroup2, or on v1 hosts a tmpfs of the v1
hierarchies (each the container's own cgroup), as the host mounts them.
"""

from __future__ import annotations

import errno
import os

from pyrunc.linux import inroot
from pyrunc.linux.consts import (
    MS_BIND,
    MS_RDONLY,
    MS_REC,
)
from pyrunc.linux.syscalls import (
    KernelError,
    describe_oserror,
)
from pyrunc.mountopts import (
    MountOptions,
    parse_mount_options,
)
from pyrunc.rootfs.helpers import (
    _ATIME_FLAGS,
    _CGROUP_FLAGS,
    Target,
    _apply_propagation_and_attrs,
    _mkdir,
    _mount_at,
    _remount_bind,
)
from pyrunc.rootfs.mountinfo import MountInfo, _read_own_cgroups, read_mountinfo
from pyrunc.spec.model import Config, Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from pyrunc.records import NamedTuple


def host_is_cgroup2_only() -> bool:
    """A pure cgroup v2 host has the unified hierarchy at /sys/fs/cgroup itself."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def mount_cgroup(config: Config, rootfs: str, m: Mount, opts: MountOptions, dest: Target) -> None:
    """Give the container its cgroup tree: cgroup2 on a v2 host, a v1 tmpfs layout otherwise."""
    if host_is_cgroup2_only():
        mount_cgroup2(config, m, opts, dest)
    else:
        mount_cgroup_v1_layout(config, m, opts, dest)


def _own_cgroup_source(mi: MountInfo, own_path: str) -> str:
    """The host directory of this process's cgroup in hierarchy `mi` (root of the mount if the
    cgroup lies outside what the mount shows, as inside a cgroup namespace)."""
    rel = os.path.relpath(own_path, mi.root)
    if rel == "." or rel.startswith(".."):
        return mi.mount_point
    return os.path.join(mi.mount_point, rel)


def mount_cgroup2(config: Config, m: Mount, opts: MountOptions, dest: Target) -> None:
    """Mount cgroup2; where that is refused (user namespace without a cgroup namespace), bind the
    host's directory of the container's own cgroup."""
    what = f"cgroup2 on {m.destination}"
    _mkdir(dest, what)
    try:
        _mount_at(m.source or "cgroup2", dest, "cgroup2", opts.flags, opts.data, f"mount {what}")
    except KernelError as exc:
        if exc.errno not in (errno.EPERM, errno.EBUSY):
            raise
        mounts = read_mountinfo()
        own = dict(_read_own_cgroups()).get("", "/")
        host = next((mi for mi in mounts if mi.fstype == "cgroup2"), None)
        if host is None:
            raise
        source = _own_cgroup_source(host, own)
        bind = parse_mount_options((*m.options, "rbind"))
        from pyrunc.rootfs.prepare import mount_bind  # a cycle: prepare mounts cgroups

        mount_bind(Mount(m.destination, "bind", source, m.options), bind, dest, source=source)
        return
    _apply_propagation_and_attrs(dest, opts, what)


class _V1Hierarchy(NamedTuple):
    controllers: str  # as /proc/self/cgroup names it: "cpu,cpuacct", "name=systemd"
    own_path: str
    host: MountInfo


def _v1_hierarchies() -> list[_V1Hierarchy]:
    """The host's v1 hierarchies that this process belongs to, in the host's mount order."""
    own = [(set(controllers.split(",")), controllers, path)
           for controllers, path in _read_own_cgroups() if controllers]
    result: list[_V1Hierarchy] = []
    seen: set[str] = set()
    for mi in read_mountinfo():
        if mi.fstype != "cgroup":
            continue
        for wanted, controllers, path in own:
            if controllers not in seen and wanted <= set(mi.super_options):
                seen.add(controllers)
                result.append(_V1Hierarchy(controllers, path, mi))
                break
    return result


def mount_cgroup_v1_layout(config: Config, m: Mount, opts: MountOptions, dest: Target) -> None:
    """A tmpfs at `dest` with one directory per v1 hierarchy (and `unified` on a hybrid host).

    With a cgroup namespace each hierarchy is a fresh cgroup mount (the namespace shows the
    container's cgroup as its root); without one, the host's directory of the container's cgroup is
    bind-mounted, so the container still sees only its own subtree.
    """
    what = f"cgroup on {m.destination}"
    cgroupns = config.linux.namespace("cgroup") is not None
    readonly = MS_RDONLY if opts.readonly else 0
    _mkdir(dest, what)
    _mount_at("tmpfs", dest, "tmpfs", _CGROUP_FLAGS, "mode=755", f"mount tmpfs for {what}")
    _apply_propagation_and_attrs(dest, MountOptions(propagation=opts.propagation), what)
    for h in _v1_hierarchies():
        name = os.path.basename(h.host.mount_point)
        sub = dest.join(name)
        sub_what = f"cgroup {h.controllers} on {os.path.join(m.destination, name)}"
        _mkdir(sub, sub_what)
        if cgroupns:
            data = f"none,{h.controllers}" if h.controllers.startswith("name=") else h.controllers
            _mount_at("cgroup", sub, "cgroup", _CGROUP_FLAGS | readonly, data, f"mount {sub_what}")
        else:
            source = _own_cgroup_source(h.host, h.own_path)
            _mount_at(source, sub, None, MS_BIND | MS_REC, None, f"bind-mount {sub_what}")
            _remount_bind(sub, _CGROUP_FLAGS | readonly | (opts.flags & _ATIME_FLAGS),
                          f"remount {sub_what} with its options")
        _apply_propagation_and_attrs(sub, MountOptions(propagation=opts.propagation), sub_what)
        _link_comounted(dest, name)
    _mount_unified_in_hybrid_layout(m, opts, dest, cgroupns)
    if opts.readonly:
        _remount_bind(dest, _CGROUP_FLAGS | MS_RDONLY, f"remount tmpfs for {what} read-only")


def _link_comounted(dest: Target, name: str) -> None:
    """For a directory such as ``cpu,cpuacct`` add ``cpu`` and ``cpuacct`` symlinks to it."""
    if "," not in name:
        return
    try:
        dir_fd = inroot.open_in_root(dest.root_fd, dest.path, os.O_PATH | os.O_DIRECTORY)
    except OSError as exc:
        raise describe_oserror(exc, f"open {dest.path} for its cgroup symlinks") from None
    try:
        for part in name.split(","):
            try:
                os.symlink(name, part, dir_fd=dir_fd)
            except FileExistsError:
                pass
            except OSError as exc:
                raise describe_oserror(exc, f"create cgroup symlink {part} -> {name}") from None
    finally:
        os.close(dir_fd)


def _mount_unified_in_hybrid_layout(m: Mount, opts: MountOptions, dest: Target,
                                    cgroupns: bool) -> None:
    """On a hybrid host, also the cgroup2 hierarchy (usually at <dest>/unified)."""
    host = next((mi for mi in read_mountinfo() if mi.fstype == "cgroup2"), None)
    if host is None:
        return
    name = os.path.basename(host.mount_point)
    sub = dest.join(name)
    sub_what = f"cgroup2 on {os.path.join(m.destination, name)}"
    readonly = MS_RDONLY if opts.readonly else 0
    _mkdir(sub, sub_what)
    if cgroupns:
        _mount_at("cgroup2", sub, "cgroup2", _CGROUP_FLAGS | readonly, None, f"mount {sub_what}")
    else:
        own = dict(_read_own_cgroups()).get("", "/")
        source = _own_cgroup_source(host, own)
        _mount_at(source, sub, None, MS_BIND | MS_REC, None, f"bind-mount {sub_what}")
        _remount_bind(sub, _CGROUP_FLAGS | readonly, f"remount {sub_what} with its options")
    _apply_propagation_and_attrs(sub, MountOptions(propagation=opts.propagation), sub_what)
