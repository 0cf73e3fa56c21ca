"""The small mount steps every kind of mount shares: mounting onto an opened destination,
propagation, remounts, creating mount points.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

from pyrunc.linux import paths
from pyrunc.linux.consts import (
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RELATIME,
    MS_STRICTATIME,
)
from pyrunc.linux.syscalls import (
    KernelError,
    describe_oserror,
    mount,
    mount_setattr,
)
from pyrunc.mountopts import (
    MountOptions,
)
from pyrunc.remount import remount_bind
from pyrunc.rootfs.mountinfo import _mount_containing, read_mountinfo
from pyrunc.rootfs.resolve import _is_within, secure_join
from pyrunc.spec.model import Mount

#: Flags every cgroup filesystem in a container gets.
_CGROUP_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC

_ATIME_FLAGS = MS_NOATIME | MS_RELATIME | MS_STRICTATIME | MS_NODIRATIME

#: Files under /proc that may be bind-mounted over (lxcfs and similar emulate them); anything else
#: inside /proc could hide or redirect the files the runtime writes to (attr, setgroups, …).
_PROC_FILES_ALLOWED = ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
                       "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
                       "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
                       "/proc/sys/crypto/fips_enabled")

#: When a user namespace may not mount these filesystems (their namespace is the host's), the
#: host's own mount is bind-mounted instead.
_HOST_FALLBACK = {"sysfs": "/sys", "mqueue": "/dev/mqueue"}

_PROC_SUPER_MAGIC = 0x9FA0


@contextlib.contextmanager
def _opened(path: str, step: str) -> Iterator[str]:
    """Open `path` without following a final symlink and yield its /proc/self/fd path.

    The kernel resolves that magic link to exactly the object opened, so a symlink swapped in after
    `secure_join` checked the path cannot redirect the mount.
    """
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise describe_oserror(exc, step) from None
    try:
        proc_path = f"/proc/self/fd/{fd}"
        try:
            actual = os.readlink(proc_path)
        except OSError:
            actual = path  # no procfs to check with; the path was just resolved
        if actual != path:
            raise KernelError(errno.EXDEV, f"{step}: {path} resolved to {actual}", path)
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise KernelError(errno.ELOOP, f"{step}: {path} is a symlink", path)
        yield proc_path
    finally:
        os.close(fd)


def _mount_at(source: str | None, dest: str, fstype: str | None, flags: int, data: str | None,
              step: str) -> None:
    """mount(2) onto the already resolved `dest`, through its file descriptor."""
    with _opened(dest, step) as target:
        mount(source, target, fstype, flags, data or None, step=step)


def _set_propagation(dest: str, flags: int, step: str) -> None:
    with _opened(dest, step) as target:
        mount(None, target, None, flags, step=step)


def _remount_bind(dest: str, flags: int, step: str, *, cleared: int = 0) -> None:
    """Change the flags of the bind mount at `dest` (see `pyrunc.remount` for locked flags)."""
    with _opened(dest, step) as target:
        remount_bind(target, flags, step, cleared=cleared)


def _apply_propagation_and_attrs(dest: str, opts: MountOptions, what: str) -> None:
    """The steps that need the mount to exist: propagation changes, then recursive attributes."""
    for flag in opts.propagation:
        _set_propagation(dest, flag, f"set propagation of {what}")
    if opts.has_recursive_attrs:
        step = f"set recursive attributes of {what}"
        with _opened(dest, step) as target:
            try:
                mount_setattr(target, opts.attr_set, opts.attr_clr, recursive=True)
            except KernelError as exc:
                raise KernelError(exc.errno or errno.EIO, step, dest) from None


def _mkdir(path: str, what: str) -> None:
    """mkdir -p of a resolved destination, never through a symlink (see pyrunc.linux.paths)."""
    try:
        paths.mkdir_all(path)
    except OSError as exc:
        raise describe_oserror(exc, f"create mount point for {what}") from None


def _touch(path: str, what: str) -> None:
    """Create an empty file to bind a file onto (its parents as directories)."""
    try:
        paths.create_file(path)
    except OSError as exc:
        raise describe_oserror(exc, f"create mount point for {what}") from None


def _require_directory_or_absent(rootfs: str, m: Mount) -> None:
    """Refuse to mount proc/sysfs over a file or through a symlink (the CVE-2019-19921 class).

    As runc does, the destination is looked at lexically (rootfs + the cleaned destination, no
    symlink followed): a rootfs whose /proc is a symlink is refused, not mounted through.
    """
    lexical = os.path.join(rootfs, os.path.normpath("/" + m.destination).lstrip("/"))
    try:
        st = os.lstat(lexical)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise describe_oserror(exc, f"mount {m.type} on {m.destination}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise KernelError(errno.ENOTDIR, f"mount {m.type} on {m.destination}: "
                          f"filesystem \"{m.type}\" must be mounted on ordinary directory", lexical)


def _check_proc_destination(rootfs: str, dest: str, m: Mount) -> None:
    """Only procfs may go on /proc, and inside /proc only a few emulated files may be covered."""
    proc = secure_join(rootfs, "/proc")
    if not _is_within(dest, proc):
        return
    if dest == proc:
        if m.is_bind and m.source is not None and _statfs_type(m.source) != _PROC_SUPER_MAGIC:
            raise KernelError(errno.EPERM, f"mount {m.source} on {m.destination}: "
                              "only a proc filesystem may be mounted on /proc", dest)
        return
    for allowed in _PROC_FILES_ALLOWED:
        if dest == secure_join(rootfs, allowed):
            return
    raise KernelError(errno.EPERM, f"mount {m.type or 'bind'} on {m.destination}: "
                      "mounting inside /proc is not allowed", dest)


def _statfs_type(path: str) -> int | None:
    """The filesystem magic of `path` as far as the runtime needs it: procfs or not.

    Python's statvfs does not report f_type, so the mount table answers instead.
    """
    try:
        mi = _mount_containing(os.path.realpath(path), read_mountinfo())
    except OSError:
        return None
    return _PROC_SUPER_MAGIC if mi is not None and mi.fstype == "proc" else None
