"""Linux namespaces: which flag each OCI type is, joining by path, uid/gid maps, time offsets.

The order matters and is the kernel's, not ours:

1. the user namespace first — joined or created — so that every namespace created after it is
   owned by it, and so that the process has capabilities to create them;
2. its uid/gid maps are written by the *parent* (a process outside the namespace);
3. the pid and time namespaces only apply to children, so the process that unshares them forks
   the container's init afterwards — the init is pid 1 and sees the time offsets;
4. the cgroup namespace is unshared after the process joined the container's cgroup, so the
   container sees its own cgroup as "/".
"""

from __future__ import annotations

# Not `socket`: its import builds enums (milliseconds of every create) this module never uses.
import _socket
import errno
import fcntl
import os
import struct

from pyrunc import trace
from pyrunc.linux import syscalls
from pyrunc.linux.consts import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)
from pyrunc.spec.model import NAMESPACE_ORDER, IDMapping, Linux

CLONE_FLAGS = {
    "user": CLONE_NEWUSER,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "network": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}

#: The names of /proc/<pid>/ns/<name> files for each OCI namespace type.
PROC_NS_NAMES = {"user": "user", "ipc": "ipc", "uts": "uts", "network": "net", "pid": "pid",
                 "mount": "mnt", "cgroup": "cgroup", "time": "time"}


def open_namespace_paths(linux: Linux) -> list[tuple[str, int]]:
    """Open every namespace the config joins by path, before joining any of them.

    Opening all first matters: after joining a mount namespace, the host paths may be gone.
    Returns (type, fd) pairs in the kernel-friendly order (user first).
    """
    opened = []
    for ns_type in NAMESPACE_ORDER:
        ns = linux.namespace(ns_type)
        if ns is not None and ns.path is not None:
            try:
                fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise syscalls.KernelError(exc.errno or 0, f"open {ns_type} namespace {ns.path}",
                                           ns.path) from None
            opened.append((ns_type, fd))
    return opened


def join_namespaces(opened: list[tuple[str, int]], *, only: set[str] | None = None) -> None:
    """setns(2) into each opened namespace (optionally only the given types).

    Joined entries are removed from `opened` and their fds closed, so a later call for the
    rest never touches a closed (or, worse, reused) fd number.
    """
    for entry in list(opened):
        ns_type, fd = entry
        if only is not None and ns_type not in only:
            continue
        opened.remove(entry)
        try:
            syscalls.setns(fd, CLONE_FLAGS[ns_type], step=f"join {ns_type} namespace")
        finally:
            os.close(fd)


def unshare_flags(linux: Linux, *, exclude: tuple[str, ...] = ()) -> int:
    """The CLONE_NEW* flags of every namespace the config creates (no path)."""
    flags = 0
    for ns_type in NAMESPACE_ORDER:
        if ns_type not in exclude and linux.creates(ns_type):
            flags |= CLONE_FLAGS[ns_type]
    return flags


def format_id_map(mappings: tuple[IDMapping, ...]) -> str:
    """The text written to /proc/<pid>/uid_map or gid_map: one 'inside outside count' per line."""
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def create_user_namespace() -> None:
    """unshare(CLONE_NEWUSER), saying what to change when the host does not allow it.

    ENOSPC is the per-user-namespace limit user.max_user_namespaces (0 disables user namespaces
    for everyone below that namespace); EPERM for an unprivileged caller is a distribution or LSM
    switch (Debian's kernel.unprivileged_userns_clone, Ubuntu's AppArmor restriction).
    """
    try:
        syscalls.unshare(CLONE_NEWUSER, step="create user namespace")
    except syscalls.KernelError as exc:
        hint = ""
        if exc.errno == errno.ENOSPC:
            limit = _read_sysctl("/proc/sys/user/max_user_namespaces")
            hint = (f"user.max_user_namespaces is {limit} in pyrunc's user namespace"
                    + (": user namespaces are disabled there" if limit == "0" else
                       ": no more may be created") + " (raise it with sysctl)")
        elif exc.errno == errno.EPERM and os.geteuid() != 0:
            hint = ("unprivileged user namespaces are not allowed here (check "
                    "kernel.unprivileged_userns_clone, the LSM's user namespace restriction, "
                    "or whether pyrunc runs in a chroot)")
        raise syscalls.KernelError(exc.errno or 0, exc.step, hint=hint) from None


def _read_sysctl(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def write_id_maps(pid: int, linux: Linux) -> None:
    """From the parent: give the child's new user namespace its uid and gid maps.

    A parent without CAP_SETGID over its own user namespace (a rootless runtime) may write a
    gid_map only once setgroups(2) is denied in the child's namespace: the kernel's rule that
    stops an unprivileged user from dropping groups that deny it access. runc denies it only
    for the single map of the caller's own gid; any other map goes through newgidmap, which
    needs setgroups left as it is. A map the kernel refuses (EPERM) is handed to
    newuidmap/newgidmap (`pyrunc.subid`), as runc does.
    """
    from pyrunc import subid

    if not _can_setgid() and subid.is_own_single_map(linux.gid_mappings, os.getegid()):
        path = f"/proc/{pid}/setgroups"
        try:
            with trace.span("setgroups write", file=path, value="deny"), open(path, "w") as f:
                f.write("deny")
        except OSError as exc:
            raise syscalls.KernelError(exc.errno or 0, f"write deny to {path}", path) from None
    for name, mappings, own in (("uid_map", linux.uid_mappings, os.geteuid()),
                                ("gid_map", linux.gid_mappings, os.getegid())):
        path = f"/proc/{pid}/{name}"
        try:
            with trace.span("id map write", file=path, map=format_id_map(mappings).strip()), \
                    open(path, "w") as f:
                f.write(format_id_map(mappings))
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise syscalls.KernelError(exc.errno or 0, f"write {path}", path) from None
            with trace.span("id map helper", file=path, tool=subid.TOOLS[name][0]):
                subid.write_with_helper(pid, name, mappings, own)


def _can_setgid() -> bool:
    """True when this process holds CAP_SETGID (bit 6) in its effective set."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 6 & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def write_time_offsets(pid: int, linux: Linux) -> None:
    """From the parent, after `pid` unshared CLONE_NEWTIME and before its first child: set the
    clock offsets of the time namespace its children will be in."""
    lines = "".join(f"{clock} {secs} {nsecs}\n"
                    for clock, (secs, nsecs) in sorted(linux.time_offsets.items()))
    if not lines:
        return
    path = f"/proc/{pid}/timens_offsets"
    try:
        with trace.span("timens offsets write", file=path, offsets=lines.strip()), \
                open(path, "w") as f:
            f.write(lines)
    except OSError as exc:
        raise syscalls.KernelError(exc.errno or 0, f"write {path}", path) from None


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def bring_up_loopback() -> None:
    """A new network namespace has `lo` down; containers expect 127.0.0.1 to work (as in runc)."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sh14x", b"lo", 0)
        try:
            flags = struct.unpack("16sh14x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, ifreq))[1]
            request = struct.pack("16sh14x", b"lo", flags | _IFF_UP)
            fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, request)
        except OSError as exc:
            raise syscalls.KernelError(exc.errno or 0, "bring up loopback interface lo") from None
    finally:
        sock.close()
