"""Step 2, `enter_rootfs`: make the rootfs the root (pivot_root, or MS_MOVE + chroot with
--no-pivot).
"""

from __future__ import annotations

import errno
import os

from pyrunc import devices
from pyrunc.linux.consts import (
    MNT_DETACH,
    MS_MOVE,
    MS_REC,
    MS_SLAVE,
)
from pyrunc.linux.syscalls import (
    KernelError,
    describe_oserror,
    mount,
    pivot_root,
    umount2,
)
from pyrunc.rootfs.mountinfo import read_mountinfo
from pyrunc.rootfs.prepare import has_mount_namespace, needs_dev_setup
from pyrunc.rootfs.resolve import _is_within
from pyrunc.spec.model import Config


def enter_rootfs(config: Config, *, no_pivot: bool) -> None:
    """Make the rootfs "/" of this process (pivot_root, or MS_MOVE + chroot) and chdir to it.

    Without a mount namespace of its own the process is only chrooted (runc does the same, but
    also mounts into the caller's namespace; pyrunc mounts nothing there).
    """
    if not has_mount_namespace(config):
        if config.process is not None and config.process.terminal:
            from pyrunc import terminal

            terminal.preopen_ptmx()
        _chroot_into(os.path.realpath(config.root_path))
        return
    rootfs = os.path.realpath(config.root_path)
    if no_pivot:
        move_root(rootfs)
    else:
        pivot_into(rootfs)
    if needs_dev_setup(config):
        devices.reopen_dev_null()
    if config.process is not None and config.process.cwd:
        # Created as root, before the process changes user: the image may lack the directory.
        # Inside the new root symlinks lead nowhere outside it, so plain mkdir -p is right.
        try:
            os.makedirs(config.process.cwd, 0o755, exist_ok=True)
        except OSError as exc:
            raise describe_oserror(exc, "create mount point for the process's cwd "
                                        f"{config.process.cwd}") from None


def _chroot_into(rootfs: str) -> None:
    try:
        os.chroot(rootfs)
        os.chdir("/")
    except OSError as exc:
        raise describe_oserror(exc, f"chroot into {rootfs}") from None


def pivot_into(rootfs: str) -> None:
    """pivot_root(".", ".") in the rootfs, then detach the old root stacked underneath.

    The old root is made recursively slave first, so that detaching it does not unmount anything
    in the host's namespace through shared propagation.
    """
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            pivot_root(".", ".")
        finally:
            os.close(new_root)
        # "." is the old root now; make that explicit rather than rely on the kernel's choice.
        os.fchdir(old_root)
    finally:
        os.close(old_root)
    mount(None, ".", None, MS_SLAVE | MS_REC, step="make the old root a recursive slave")
    umount2(".", MNT_DETACH)
    os.chdir("/")


def move_root(rootfs: str) -> None:
    """--no-pivot: move the rootfs mount onto "/" and chroot into it.

    The host's full proc and sysfs mounts outside the rootfs are detached first: the kernel lets a
    namespace mount a new proc/sysfs only if it can already see an unobscured one, and those left
    behind the chroot would be reachable for that check.
    """
    _detach_host_proc_and_sys(rootfs)
    try:
        os.chdir(rootfs)
    except OSError as exc:
        raise describe_oserror(exc, f"change directory to the rootfs {rootfs}") from None
    mount(rootfs, "/", None, MS_MOVE, step=f"move the rootfs {rootfs} onto /")
    try:
        os.chroot(".")
        os.chdir("/")
    except OSError as exc:
        raise describe_oserror(exc, f"chroot into the rootfs {rootfs}") from None


def _detach_host_proc_and_sys(rootfs: str) -> None:
    candidates = [mi for mi in read_mountinfo()
                  if mi.root == "/" and mi.fstype in ("proc", "sysfs")
                  and not _is_within(mi.mount_point, rootfs)]
    for mi in reversed(candidates):
        try:
            mount(None, mi.mount_point, None, MS_SLAVE | MS_REC,
                  step=f"make {mi.mount_point} a recursive slave")
        except KernelError as exc:
            if exc.errno in (errno.ENOENT, errno.EINVAL):
                continue
            raise
        try:
            umount2(mi.mount_point, MNT_DETACH)
        except KernelError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM):
                raise
            # Not ours to unmount (a user namespace): cover it instead.
            mount("tmpfs", mi.mount_point, "tmpfs", 0, None, step=f"cover {mi.mount_point}")
