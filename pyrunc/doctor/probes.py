"""Probes of the kernel's container features: namespaces, user-namespace limits, overlayfs,
idmapped mounts, openat2, pidfd, seccomp, libseccomp and the active LSMs.

Each probe tries the real thing (in a forked child when it changes the process) and turns the
result into a `Finding`. Nothing here reads the kernel version.
"""

from __future__ import annotations

import errno
import os
import tempfile

from pyrunc.doctor import Finding, finding
from pyrunc.doctor.child import in_child
from pyrunc.linux import consts, syscalls
from pyrunc.linux.consts import (
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    MS_PRIVATE,
    MS_REC,
    PR_SET_NO_NEW_PRIVS,
)
from pyrunc.namespaces import CLONE_FLAGS, PROC_NS_NAMES

_FLAG_NAMES = {getattr(consts, name): name for name in dir(consts) if name.startswith("CLONE_NEW")}

#: OCI namespace type -> (clone flag name, flag, /proc/sys/user/max_<name>_namespaces name),
#: in the order doctor reports them; the flags and /proc names are pyrunc.namespaces' own.
NAMESPACES = {
    kind: (_FLAG_NAMES[CLONE_FLAGS[kind]], CLONE_FLAGS[kind], PROC_NS_NAMES[kind])
    for kind in ("user", "mount", "pid", "network", "ipc", "uts", "cgroup", "time")
}

#: What each namespace isolates (the concept the finding maps to).
ISOLATES = {
    "user": "uids, gids and capabilities", "mount": "the mount table", "pid": "process ids",
    "network": "network devices, addresses and ports", "ipc": "System V IPC and mqueues",
    "uts": "hostname and domainname", "cgroup": "the view of /proc/self/cgroup",
    "time": "CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets",
}

NOBODY = 65534
_AREA_NS = "namespaces"


def read_sysctl(path: str) -> str | None:
    """The value of a /proc/sys file, or None where this kernel has no such file."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def enter_own_user_namespace() -> None:
    """As a rootless runtime does: a new user namespace where this (non-root) process is root,
    mapping only its own uid and gid, so that the other namespaces can be created inside it."""
    uid, gid = os.geteuid(), os.getegid()
    syscalls.unshare(CLONE_NEWUSER, step="unshare(CLONE_NEWUSER)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1\n"),
                       ("gid_map", f"0 {gid} 1\n")):
        try:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        except OSError as exc:
            raise syscalls.describe_oserror(exc, f"write /proc/self/{name}") from exc


def rootless() -> bool:
    """Probes that need privilege run inside a user namespace of their own when not root."""
    return os.geteuid() != 0


# --- namespaces -----------------------------------------------------------------------------------

def _unshare_probe(flag_name: str, flag: int) -> str:
    if rootless() and flag != CLONE_NEWUSER:
        enter_own_user_namespace()
    syscalls.unshare(flag, step=f"unshare({flag_name})")
    if flag == CLONE_NEWPID:
        # The new pid namespace is for children: its first child must be pid 1 there.
        pid = os.fork()
        if pid == 0:
            os._exit(0 if os.getpid() == 1 else 1)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError("the first child in the new pid namespace is not pid 1")
        return "and its first child is pid 1 there"
    return ""


def namespace(kind: str) -> Finding:
    """Can this process create a `kind` namespace? unshare(2) in a child says."""
    flag_name, flag, sysctl = NAMESPACES[kind]
    limit = read_sysctl(f"/proc/sys/user/max_{sysctl}_namespaces")
    data: dict[str, object] = {"flag": flag_name}
    if limit is not None:
        data["max"] = int(limit)
    limit_text = f"; user.max_{sysctl}_namespaces = {limit}" if limit is not None else ""
    outcome = in_child(lambda: _unshare_probe(flag_name, flag))
    data["inUserNamespace"] = rootless() and flag != CLONE_NEWUSER
    if outcome.ok:
        extra = f" {outcome.text}" if outcome.text else ""
        where = " (inside a user namespace of its own)" if data["inUserNamespace"] else ""
        why = (f"unshare({flag_name}) in a child{where} succeeded{extra}: isolates "
               f"{ISOLATES[kind]}")
        return finding(f"namespace.{kind}", _AREA_NS, True, why + limit_text, **data)
    data["errno"] = outcome.errno_name if outcome.errno else None
    why = outcome.failure()
    if flag == CLONE_NEWUSER and outcome.errno == errno.EPERM and chrooted():
        why += " (this process is chrooted: the kernel refuses CLONE_NEWUSER in a chroot)"
    return finding(f"namespace.{kind}", _AREA_NS, False, why + limit_text, **data)


def chrooted() -> bool:
    """True when this process's root is not the root of its mount namespace (as seen by pid 1,
    when pid 1 shares the mount namespace)."""
    try:
        if os.readlink("/proc/1/ns/mnt") != os.readlink("/proc/self/ns/mnt"):
            return False
        ours, theirs = os.stat("/"), os.stat("/proc/1/root/")
    except OSError:
        return False
    return (ours.st_dev, ours.st_ino) != (theirs.st_dev, theirs.st_ino)


def _unprivileged_userns_probe() -> str:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        os.setresuid(NOBODY, NOBODY, NOBODY)
    syscalls.unshare(CLONE_NEWUSER, step=f"unshare(CLONE_NEWUSER) as uid {os.getuid()}")
    return f"uid {os.getuid()}"


def user_namespace_limits() -> list[Finding]:
    """max_user_namespaces, the distributions' unprivileged-clone switches, and a real try of an
    unprivileged unshare (what rootless containers need)."""
    out: list[Finding] = []
    limit = read_sysctl("/proc/sys/user/max_user_namespaces")
    if limit is None:
        out.append(finding("userns.max", _AREA_NS, False,
                           "/proc/sys/user/max_user_namespaces is missing: no user namespaces"))
    else:
        out.append(finding("userns.max", _AREA_NS, int(limit) > 0,
                           f"user.max_user_namespaces = {limit}"
                           + ("" if int(limit) > 0 else ": creating any user namespace fails"),
                           value=int(limit)))
    for name, path in (("userns.unprivileged_clone", "/proc/sys/kernel/unprivileged_userns_clone"),
                       ("userns.apparmor_restrict",
                        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns")):
        value = read_sysctl(path)
        if value is None:
            continue
        sysctl = "kernel." + os.path.basename(path)
        allowed = value == ("1" if name == "userns.unprivileged_clone" else "0")
        out.append(finding(name, _AREA_NS, allowed,
                           f"{sysctl} = {value}: unprivileged users "
                           + ("may" if allowed else "may not") + " create user namespaces",
                           value=int(value)))
    outcome = in_child(_unprivileged_userns_probe)
    if outcome.ok:
        why = f"unshare(CLONE_NEWUSER) as {outcome.text} succeeded: rootless containers can start"
    else:
        why = outcome.failure() + ": rootless containers cannot create their user namespace"
        if outcome.errno == errno.EPERM and chrooted():
            why += " (this process is chrooted: the kernel refuses CLONE_NEWUSER in a chroot)"
    out.append(finding("userns.unprivileged", _AREA_NS, outcome.ok, why))
    return out


# --- filesystems ----------------------------------------------------------------------------------

def _private_tmpfs() -> str:
    """In this (child) process: a mount namespace of its own, nothing propagating back to the
    host, and a fresh tmpfs to work in. Returns the tmpfs's path."""
    if rootless():
        enter_own_user_namespace()
    syscalls.unshare(CLONE_NEWNS, step="unshare(CLONE_NEWNS)")
    syscalls.mount(None, "/", None, MS_REC | MS_PRIVATE, step="make / private (MS_REC|MS_PRIVATE)")
    scratch = tempfile.gettempdir()
    syscalls.mount("tmpfs", scratch, "tmpfs", 0, "mode=700", step=f"mount tmpfs on {scratch}")
    return scratch


def _overlay_probe() -> str:
    base = _private_tmpfs()
    for name in ("lower", "upper", "work", "merged"):
        os.mkdir(os.path.join(base, name))
    with open(os.path.join(base, "lower", "seen"), "w") as f:
        f.write("lower")
    merged = os.path.join(base, "merged")
    data = f"lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work"
    syscalls.mount("overlay", merged, "overlay", 0, data,
                   step="mount overlay (lower+upper on tmpfs)")
    with open(os.path.join(merged, "seen")) as f:
        if f.read() != "lower":
            raise RuntimeError("the overlay does not show the lower layer's file")
    with open(os.path.join(merged, "written"), "w") as f:
        f.write("upper")
    if not os.path.exists(os.path.join(base, "upper", "written")):
        raise RuntimeError("a file written to the overlay did not land in the upper layer")
    return ""


def overlayfs() -> Finding:
    outcome = in_child(_overlay_probe)
    if outcome.ok:
        why = ("mounted an overlay of two tmpfs layers in a private mount namespace; the lower "
               "layer shows through and writes land in the upper one")
    else:
        why = outcome.failure() + ": image layers must be copied instead of stacked"
    return finding("fs.overlay", "filesystems", outcome.ok, why)


def _idmap_probe() -> str:
    # Imported before the tmpfs goes up: it may cover the directory pyrunc is imported from.
    from pyrunc.linux import mountapi
    from pyrunc.linux.userns import new_user_namespace

    base = _private_tmpfs()
    source, target = os.path.join(base, "src"), os.path.join(base, "dst")
    os.mkdir(source)
    os.mkdir(target)
    open(os.path.join(source, "file"), "w").close()
    os.chown(os.path.join(source, "file"), 0, 0)
    userns = new_user_namespace("0 100000 65536\n", "0 100000 65536\n", what="the idmap")
    tree = mountapi.open_tree(source)
    mountapi.set_idmap(tree, userns)
    mountapi.move_mount(tree, target)
    uid = os.stat(os.path.join(target, "file")).st_uid
    if uid != 100000:
        raise RuntimeError(f"the idmapped mount shows uid 0 as {uid}, not 100000")
    return ""


def idmapped_mounts() -> Finding:
    outcome = in_child(_idmap_probe)
    if outcome.ok:
        why = ("open_tree + mount_setattr(MOUNT_ATTR_IDMAP) on a detached tmpfs tree: uid 0 shows "
               "as 100000 through it")
    else:
        why = outcome.failure() + ": mounts with uidMappings/gidMappings cannot work"
    return finding("fs.idmapped_mounts", "filesystems", outcome.ok, why)


# --- system calls ---------------------------------------------------------------------------------

def openat2() -> Finding:
    """openat2(RESOLVE_IN_ROOT) really keeps `../..` inside the starting directory."""
    from pyrunc.linux import mountapi

    start = "/usr" if os.path.isdir("/usr") else "/"
    dirfd = os.open(start, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = mountapi.openat2(dirfd, "../..", os.O_PATH | os.O_CLOEXEC, mountapi.RESOLVE_IN_ROOT)
    except OSError as exc:
        return finding("syscall.openat2", "syscalls", False,
                       f"{exc}: paths in the rootfs are resolved by a checked walk instead")
    finally:
        os.close(dirfd)
    try:
        here, there = os.fstat(fd), os.stat(start)
    finally:
        os.close(fd)
    inside = (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
    why = (f"openat2({start}, \"../..\", RESOLVE_IN_ROOT) stayed in {start}" if inside else
           f"openat2(RESOLVE_IN_ROOT) of \"../..\" left {start}")
    return finding("syscall.openat2", "syscalls", inside, why)


def pidfd() -> Finding:
    try:
        fd = syscalls.pidfd_open(os.getpid())
    except OSError as exc:
        return finding("syscall.pidfd_open", "syscalls", False,
                       f"{exc}: processes are watched by pid (racy against pid reuse)")
    os.close(fd)
    return finding("syscall.pidfd_open", "syscalls", True,
                   "pidfd_open(2) on this process returned a descriptor")


#: A one-instruction classic BPF program: BPF_RET|BPF_K SECCOMP_RET_ALLOW.
_ALLOW_ALL = (0x06).to_bytes(2, "little") + b"\0\0" + (0x7FFF0000).to_bytes(4, "little")


def _seccomp_probe() -> str:
    syscalls.prctl(PR_SET_NO_NEW_PRIVS, 1, step="prctl(PR_SET_NO_NEW_PRIVS)")
    syscalls.seccomp_set_mode_filter(_ALLOW_ALL)
    with open("/proc/self/status") as f:
        mode = next((line.split()[1] for line in f if line.startswith("Seccomp:")), "?")
    if mode != "2":
        raise RuntimeError(f"after loading a filter /proc/self/status says Seccomp: {mode}")
    return ""


def seccomp() -> Finding:
    outcome = in_child(_seccomp_probe)
    if outcome.ok:
        why = "loaded an allow-all filter in a child; /proc/self/status then says Seccomp: 2"
    else:
        why = outcome.failure() + ": linux.seccomp cannot be applied"
    return finding("security.seccomp", "security", outcome.ok, why)


def libseccomp() -> Finding:
    from pyrunc import seccomp as pyrunc_seccomp

    try:
        version = ".".join(map(str, pyrunc_seccomp.version()))
        level = pyrunc_seccomp.api_level()
    except OSError as exc:
        return finding("security.libseccomp", "security", False,
                       f"{exc}: pyrunc builds seccomp filters with it")
    why = f"{pyrunc_seccomp.LIBRARY} {version}, API level {level} on this kernel"
    if level < 6:
        why += " (below 6: no SCMP_ACT_NOTIFY with TSYNC)"
    return finding("security.libseccomp", "security", True, why, version=version, apiLevel=level)


# --- security modules -----------------------------------------------------------------------------

LSM_FILE = "/sys/kernel/security/lsm"


def _lsm_via_private_securityfs() -> str:
    syscalls.unshare(CLONE_NEWNS, step="unshare(CLONE_NEWNS)")
    syscalls.mount(None, "/", None, MS_REC | MS_PRIVATE, step="make / private (MS_REC|MS_PRIVATE)")
    syscalls.mount("securityfs", "/sys/kernel/security", "securityfs", 0,
                   step="mount securityfs on /sys/kernel/security")
    with open(LSM_FILE) as f:
        return f.read().strip()


def active_lsms() -> tuple[list[str] | None, str]:
    """The kernel's active LSMs, and where the list came from (or why there is none)."""
    try:
        with open(LSM_FILE) as f:
            return f.read().strip().split(","), LSM_FILE
    except FileNotFoundError:
        pass
    except OSError as exc:
        return None, f"read {LSM_FILE}: {exc.strerror}"
    outcome = in_child(_lsm_via_private_securityfs)
    if outcome.ok:
        source = f"{LSM_FILE} of a securityfs mounted in a child's private mount namespace"
        return outcome.text.split(","), source
    return None, (f"{LSM_FILE} is missing (securityfs is not mounted) and mounting securityfs "
                  f"in a child failed: {outcome.failure()}")


def lsms() -> list[Finding]:
    names, source = active_lsms()
    if names is None:
        return [finding("security.lsm", "security", False, source)]
    out = [finding("security.lsm", "security", True, f"active: {', '.join(names)} (from {source})",
                   lsms=names)]
    for lsm, field in (("apparmor", "process.apparmorProfile"),
                       ("selinux", "process.selinuxLabel")):
        active = lsm in names
        why = (f"{lsm} is active; pyrunc does not apply {field} yet" if active else
               f"{lsm} is not active: {field} cannot confine a container here")
        out.append(finding(f"security.{lsm}", "security", active, why))
    return out


def all_probes() -> list[Finding]:
    """Every kernel probe, in report order."""
    out = [namespace(kind) for kind in NAMESPACES]
    out += user_namespace_limits()
    out += [overlayfs(), idmapped_mounts(), openat2(), pidfd(), seccomp(), libseccomp()]
    out += lsms()
    return out
