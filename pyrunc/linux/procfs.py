"""One trustworthy handle on procfs, for the runtime's own /proc accesses inside a container.

Inside the container, the path "/proc" is whatever the rootfs and its mounts make of it: a
directory the image planted, a symlink, a bind mount of something else. The init therefore does
not reach procfs through that path. It mounts a *private* procfs instance with the new mount API
(fsopen/fsconfig/fsmount): a detached mount, attached nowhere in the tree, known only by its file
descriptor. Where that is not allowed, it falls back to the path "/proc" and checks with
fstatfs(2) that the directory really is procfs (PROC_SUPER_MAGIC).

The handle is opened while the init is already in its new pid namespace, so `self` in it is the
init itself.
"""

from __future__ import annotations

import ctypes
import os

from pyrunc.linux.syscalls import _NR, KernelError, _check, _libc

PROC_SUPER_MAGIC = 0x9FA0

_FSOPEN_CLOEXEC = 0x1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOUNT_ATTR_NOEXEC = 0x8

_NUMBERS = {"x86_64": {"fsopen": 430, "fsconfig": 431, "fsmount": 432},
            "aarch64": {"fsopen": 430, "fsconfig": 431, "fsmount": 432}}


def _nr(name: str) -> int:
    table = _NUMBERS.get(os.uname().machine)
    return table[name] if table else _NR[name]


def open_private_procfs() -> int:
    """A new procfs instance as a detached mount: the fd of its root directory (close-on-exec)."""
    fs_fd = _check(_libc.syscall(_nr("fsopen"), b"proc", ctypes.c_uint(_FSOPEN_CLOEXEC)),
                   "open a procfs context (fsopen)")
    try:
        _check(_libc.syscall(_nr("fsconfig"), ctypes.c_int(fs_fd),
                             ctypes.c_uint(_FSCONFIG_CMD_CREATE), None, None, ctypes.c_int(0)),
               "create a procfs instance (fsconfig)")
        return _check(_libc.syscall(_nr("fsmount"), ctypes.c_int(fs_fd),
                                    ctypes.c_uint(_FSMOUNT_CLOEXEC),
                                    ctypes.c_uint(_MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV
                                                  | _MOUNT_ATTR_NOEXEC)),
                      "mount the procfs instance (fsmount)")
    finally:
        os.close(fs_fd)


class _Statfs(ctypes.Structure):
    # Only the first field matters here; the rest is room for the kernel to fill in.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 120)]


def fs_type(fd: int) -> int:
    """fstatfs(2).f_type of the filesystem `fd` is on."""
    buf = _Statfs()
    _check(_libc.fstatfs(ctypes.c_int(fd), ctypes.byref(buf)), "fstatfs")
    return int(buf.f_type)


def open_verified_procfs(path: str = "/proc") -> int:
    """`path` opened as a directory that must be a procfs root: no symlink, and no lookalike."""
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError(exc.errno or 0, f"open {path} as procfs", path) from None
    if fs_type(fd) != PROC_SUPER_MAGIC:
        os.close(fd)
        raise KernelError(22, f"{path} is not a procfs mount", path)  # EINVAL
    return fd


def open_procfs() -> int:
    """The best procfs handle this process may have: a private instance, else a verified /proc."""
    try:
        return open_private_procfs()
    except OSError:
        return open_verified_procfs()


def reopen(procfs_fd: int, fd: int, flags: int) -> int:
    """Open what `fd` refers to anew, with other flags (e.g. an O_PATH fd of a fifo, for writing).

    Goes through the handle's `thread-self/fd/<fd>` magic link, the only way the kernel offers.
    """
    name = f"thread-self/fd/{fd}"
    try:
        return os.open(name, flags | os.O_CLOEXEC, dir_fd=procfs_fd)
    except OSError as exc:
        raise KernelError(exc.errno or 0, f"reopen fd {fd} through procfs") from None


def open_file(procfs_fd: int, relative: str, flags: int, step: str) -> int:
    """Open the file `relative` (e.g. "sys/net/ipv4/ip_forward") of the procfs `procfs_fd`,
    checked to be on procfs.

    With openat2 the lookup may not leave the handle (RESOLVE_BENEATH), cross a mount
    (RESOLVE_NO_XDEV: nothing the container mounted over a file can stand in for it) or jump
    through a magic link; procfs's own plain symlinks (thread-self, self) are allowed. Without
    openat2, the final component is opened without following a symlink. Either way fstatfs(2)
    must say procfs before the caller writes a byte.
    """
    from pyrunc.linux import mountapi

    flags |= os.O_CLOEXEC
    resolve = (mountapi.RESOLVE_BENEATH | mountapi.RESOLVE_NO_XDEV
               | mountapi.RESOLVE_NO_MAGICLINKS)
    try:
        try:
            fd = mountapi.openat2(procfs_fd, relative, flags, resolve)
        except KernelError as exc:
            if exc.errno != 38:  # ENOSYS
                raise
            fd = os.open(relative, flags | os.O_NOFOLLOW, dir_fd=procfs_fd)
    except OSError as exc:
        raise KernelError(exc.errno or 0, f"{step}: open {relative} of procfs", relative) from None
    if fs_type(fd) != PROC_SUPER_MAGIC:
        os.close(fd)
        raise KernelError(18, f"{step}: {relative} is not on procfs", relative)  # EXDEV
    return fd


def write_file(procfs_fd: int, relative: str, value: bytes, step: str) -> None:
    """Write `value` to the procfs file `relative` (see `open_file`), in one write(2)."""
    fd = open_file(procfs_fd, relative, os.O_WRONLY | os.O_TRUNC, step)
    try:
        os.write(fd, value)
    except OSError as exc:
        raise KernelError(exc.errno or 0, f"{step}: write {relative}", relative) from None
    finally:
        os.close(fd)
