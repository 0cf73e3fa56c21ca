"""The small mount steps every kind of mount shares: mounting onto an opened destination,
propagation, remounts, creating mount points.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from pyrunc.linux import inroot
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

TYPE_CHECKING = False  # not `typing`: see pyrunc/records.py
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from pyrunc.records import NamedTuple

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


class Target(NamedTuple):
    """A destination inside the rootfs: the rootfs's fd, its host path, and the path below it.

    Every step on a destination resolves `path` afresh from `root_fd` (see pyrunc.linux.inroot),
    so whatever the image's files become meanwhile, the step acts on something inside the root.
    """

    root_fd: int
    root: str
    path: str  # inside the root, absolute: "/", "/sys/fs/cgroup"

    @property
    def host(self) -> str:
        """The host path as it reads (for messages and for checks made as the runtime)."""
        return self.root if self.path in ("", "/") else self.root.rstrip("/") + self.path

    def join(self, name: str) -> Target:
        return self._replace(path=posixpath.join(self.path, name))

    def __str__(self) -> str:
        return self.host


def target_in(root_fd: int, root: str, resolved: str) -> Target:
    """The Target of `resolved`, a host path `secure_join` gave under `root`."""
    root = root.rstrip("/") or "/"
    inner = resolved[len(root):] if root != "/" else resolved
    return Target(root_fd, root, inner or "/")


class _opened:  # named as the function it was: `with _opened(dest, step) as target:`
    """Open `dest` inside its root, not following a final symlink, and give the magic link of
    that fd to the `with` block: mount(2) on it acts on exactly the object opened.

    A class, not a `contextlib.contextmanager`: contextlib (and the `collections` it imports) is
    ~1 ms of every `create` otherwise.
    """

    __slots__ = ("fd",)

    def __init__(self, dest: Target, step: str) -> None:
        try:
            fd = inroot.open_in_root(dest.root_fd, dest.path, follow=False)
        except OSError as exc:
            raise describe_oserror(exc, step) from None
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise KernelError(errno.ELOOP, f"{step}: {dest.path} is a symlink", dest.host)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __enter__(self) -> str:
        return inroot.fd_path(self.fd)

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)


def _mount_at(source: str | None, dest: Target, fstype: str | None, flags: int, data: str | None,
              step: str) -> None:
    """mount(2) onto the already resolved `dest`, through its file descriptor."""
    with _opened(dest, step) as target:
        mount(source, target, fstype, flags, data or None, step=step)


def _set_propagation(dest: Target, flags: int, step: str) -> None:
    with _opened(dest, step) as target:
        mount(None, target, None, flags, step=step)


def _remount_bind(dest: Target, flags: int, step: str, *, cleared: int = 0) -> None:
    """Change the flags of the bind mount at `dest` (see `pyrunc.remount` for locked flags)."""
    with _opened(dest, step) as target:
        remount_bind(target, flags, step, cleared=cleared)


def _apply_propagation_and_attrs(dest: Target, opts: MountOptions, what: str) -> None:
    """The steps that need the mount to exist: propagation changes, then recursive attributes."""
    for flag in opts.propagation:
        _set_propagation(dest, flag, f"set propagation of {what}")
    if opts.has_recursive_attrs:
        step = f"set recursive attributes of {what}"
        with _opened(dest, step) as target:
            try:
                mount_setattr(target, opts.attr_set, opts.attr_clr, recursive=True)
            except KernelError as exc:
                raise KernelError(exc.errno or errno.EIO, step, dest.host) from None


def _mkdir(dest: Target, what: str) -> None:
    """mkdir -p of a destination inside its root (see pyrunc.linux.inroot)."""
    try:
        os.close(inroot.mkdir_in_root(dest.root_fd, dest.path))
    except OSError as exc:
        raise describe_oserror(exc, f"create mount point for {what}") from None


def _touch(dest: Target, what: str) -> None:
    """Create an empty file to bind a file onto (its parents as directories), unless something
    is there already."""
    try:
        os.close(inroot.create_in_root(dest.root_fd, dest.path, 0o755))
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


def _check_proc_destination(rootfs: str, target: Target, m: Mount) -> None:
    """Only procfs may go on /proc, and inside /proc only a few emulated files may be covered."""
    dest = target.host
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
