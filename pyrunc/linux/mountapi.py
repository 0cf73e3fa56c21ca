"""The fd-based mount and path interfaces (Linux 5.2+): open_tree, move_mount, mount_setattr on a
detached tree, and openat2.

They let a mount be built and changed while it is attached nowhere (an idmapped mount needs that)
and a path be resolved inside a directory the kernel refuses to leave. Like `syscalls`, each
wrapper does one system call and raises `KernelError` naming the step.
"""

from __future__ import annotations

import ctypes
import os

from pyrunc import trace
from pyrunc.linux.syscalls import _NR, KernelError, _b, _check, _libc

# Numbers from the generic syscall table: the same on x86_64 and aarch64.
_OPEN_TREE = 428
_MOVE_MOUNT = 429

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_SIZE_VER0 = 32
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

__all__ = ["KernelError", "bind_fd_onto_fd", "move_mount", "move_mount_to_fd", "open_tree",
           "openat2", "set_idmap"]


def open_tree(path: str, flags: int = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC, *,
              dirfd: int = AT_FDCWD) -> int:
    """open_tree(2): with OPEN_TREE_CLONE, a detached copy of the mount at `path`, as an fd."""
    with trace.span("open_tree", path=path, recursive=bool(flags & AT_RECURSIVE)):
        res = _libc.syscall(_OPEN_TREE, ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags))
    return _check(res, f"open_tree {path}", path)


def move_mount(from_fd: int, to_path: str) -> None:
    """move_mount(2): attach the detached tree `from_fd` at `to_path`."""
    res = _libc.syscall(_MOVE_MOUNT, ctypes.c_int(from_fd), b"", ctypes.c_int(AT_FDCWD),
                        _b(to_path), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))
    _check(res, f"move_mount onto {to_path}", to_path)


def move_mount_to_fd(from_fd: int, to_fd: int, to_path: str = "") -> None:
    """move_mount(2) of the detached tree `from_fd` onto the object the fd `to_fd` is open on
    (MOVE_MOUNT_T_EMPTY_PATH). Unlike a /proc/self/fd/N path, which move_mount refuses with
    EINVAL, this needs no procfs; `to_path` only names the target in errors."""
    with trace.span("move_mount", target=to_path or None):
        res = _libc.syscall(_MOVE_MOUNT, ctypes.c_int(from_fd), b"", ctypes.c_int(to_fd), b"",
                            ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH))
    _check(res, f"move_mount onto {to_path or f'fd {to_fd}'}", to_path or None)


def bind_fd_onto_fd(source_fd: int, target_fd: int, step: str) -> None:
    """Bind what `source_fd` is onto what `target_fd` is, naming no path at all.

    open_tree(OPEN_TREE_CLONE | AT_EMPTY_PATH) clones a detached bind mount of the source's own
    dentry, and move_mount with both EMPTY_PATH flags attaches it on the target's: neither end
    is looked up again, so nothing the container's files became can redirect the bind.
    """
    tree = _check(_libc.syscall(_OPEN_TREE, ctypes.c_int(source_fd), b"",
                                ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
                                              | AT_EMPTY_PATH)), f"{step} (open_tree)")
    try:
        res = _libc.syscall(_MOVE_MOUNT, ctypes.c_int(tree), b"", ctypes.c_int(target_fd), b"",
                            ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH))
        _check(res, f"{step} (move_mount)")
    finally:
        os.close(tree)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def set_idmap(tree_fd: int, userns_fd: int, *, recursive: bool = False) -> None:
    """mount_setattr(2) MOUNT_ATTR_IDMAP: the ids of the (still detached) tree `tree_fd` are
    shown through the uid/gid maps of the user namespace `userns_fd`; with `recursive`, on every
    mount of the tree, else on its top mount only."""
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    with trace.span("mount_setattr", attr="MOUNT_ATTR_IDMAP", recursive=recursive):
        res = _libc.syscall(_NR["mount_setattr"], ctypes.c_int(tree_fd), b"",
                            ctypes.c_uint(flags), ctypes.byref(attr),
                            ctypes.c_size_t(MOUNT_ATTR_SIZE_VER0))
    _check(res, "mount_setattr MOUNT_ATTR_IDMAP")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2) (Linux 5.6): open `path` relative to `dirfd` under the `resolve` rules."""
    how = _OpenHow(flags, mode, resolve)
    res = _libc.syscall(_NR["openat2"], ctypes.c_int(dirfd), _b(path), ctypes.byref(how),
                        ctypes.c_size_t(ctypes.sizeof(how)))
    return _check(res, f"openat2 {path}", path)
