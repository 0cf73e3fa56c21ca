"""Step 3, `finish_rootfs`: inside the new root, sysctls, readonlyPaths, maskedPaths, the delayed
read-only remounts, a read-only root and its propagation.
"""

from __future__ import annotations

import errno
import os
import stat

from pyrunc import log
from pyrunc.linux.consts import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
)
from pyrunc.linux.procfs import PROC_SUPER_MAGIC, fs_type, open_verified_procfs, write_file
from pyrunc.linux.syscalls import (
    KernelError,
    describe_oserror,
    mount,
)
from pyrunc.mountopts import (
    UnsupportedMountOption,
    ms_flags_from_statvfs,
    parse_mount_options,
    propagation_flags,
)
from pyrunc.remount import remount_bind
from pyrunc.rootfs.prepare import _delays_readonly, has_mount_namespace
from pyrunc.rootfs.resolve import secure_join
from pyrunc.spec.model import Config


def finish_rootfs(config: Config, procfs_fd: int | None = None) -> None:
    """Inside the new root: sysctls, readonlyPaths, maskedPaths, the delayed read-only remounts,
    a read-only root and the root's propagation.

    `procfs_fd` is the init's own procfs handle (see pyrunc.linux.procfs): the sysctls are
    written through it, never through a /proc path the container's files could redirect.
    """
    write_sysctls(config.linux.sysctl, procfs_fd)
    if not has_mount_namespace(config):
        if config.linux.readonly_paths or config.linux.masked_paths or config.root_readonly:
            log.warning("readonlyPaths, maskedPaths and root.readonly need a mount namespace; "
                        "not applied")
        return
    for path in config.linux.readonly_paths:
        make_path_readonly(path)
    if config.linux.masked_paths:
        null_fd = verified_dev_null()
        # Through the fd's magic link when this is our procfs, so the mount source is exactly
        # the checked file; otherwise (no /proc in the container) the path just checked.
        via_fd = _is_procfs("/proc/self/fd")
        empty_dir = None
        try:
            for path in config.linux.masked_paths:
                empty_dir = mask_path(path, null_fd if via_fd else None, empty_dir)
        finally:
            os.close(null_fd)
    remount_delayed_readonly(config)
    if config.root_readonly:
        make_root_readonly()
    propagation = config.linux.rootfs_propagation
    # (r)private and (r)slave were applied to the parent mount before the rootfs was bound
    # (runc 1.5 skips them here too); shared and unbindable only make sense on the new "/".
    if propagation and not propagation_flags(propagation) & (MS_PRIVATE | MS_SLAVE):
        mount(None, "/", None, propagation_flags(propagation),
              step=f"set propagation of / to {propagation}")


def write_sysctls(sysctl: dict[str, str], procfs_fd: int | None = None) -> None:
    """Each key ``a.b.c`` is the file sys/a/b/c of procfs.

    Written through the init's procfs handle (see pyrunc.linux.procfs.write_file), never through
    a /proc path the container's files could redirect (the CVE-2025-52881 class: a /proc/sys
    faked by the image or covered by a mount must not turn a sysctl into a write elsewhere).
    Without a handle, "/proc" is used only once checked to be a procfs root.
    """
    if not sysctl:
        return
    own = procfs_fd is None
    if own:
        procfs_fd = open_verified_procfs()
    assert procfs_fd is not None
    try:
        for key, value in sysctl.items():
            write_file(procfs_fd, "sys/" + key.replace(".", "/"), value.encode(),
                       f"write sysctl {key}={value}")
    finally:
        if own:
            os.close(procfs_fd)


def make_path_readonly(path: str) -> None:
    """Bind `path` onto itself and make that read-only, keeping its nosuid/nodev/noexec."""
    try:
        mount(path, path, None, MS_BIND | MS_REC, step=f"bind {path} onto itself (readonlyPaths)")
    except KernelError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    try:
        current = ms_flags_from_statvfs(os.statvfs(path).f_flag)
    except OSError as exc:
        raise describe_oserror(exc, f"statvfs {path}") from None
    keep = current & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | keep,
          step=f"remount {path} read-only (readonlyPaths)")


def _is_procfs(path: str) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fs_type(fd) == PROC_SUPER_MAGIC
    finally:
        os.close(fd)


def verified_dev_null() -> int:
    """An O_PATH fd of the container's /dev/null, checked to be the null device (char 1:3).

    The image controls /dev before pyrunc fills it; a /dev/null that is a symlink or a plain
    file would make every masked path a bind of *that* (the CVE-2025-31133 class). Masking
    binds exactly the file this fd was opened on.
    """
    try:
        fd = os.open("/dev/null", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise describe_oserror(exc, "open /dev/null to mask paths") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise KernelError(errno.EINVAL, "maskedPaths: /dev/null in the container is not the "
                          "null device (char 1:3); refusing to mask with it", "/dev/null")
    return fd


def mask_path(path: str, null_fd: int | None = None, empty_dir: str | None = None) -> str | None:
    """Hide `path`: /dev/null over a file, an empty read-only tmpfs over a directory.

    Every masked directory of one container shares one such tmpfs: the first one is mounted,
    the others are bind mounts of it (a Kubernetes pod masks a dozen directories, and a tmpfs
    each costs a superblock per directory per container). Returns the directory whose tmpfs the
    next ones can bind, or None when `path` was not a directory.
    """
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return empty_dir
    except OSError as exc:
        raise describe_oserror(exc, f"mask {path}") from None
    if not is_dir:
        source = "/dev/null" if null_fd is None else f"/proc/self/fd/{null_fd}"
        try:
            mount(source, path, None, MS_BIND, step=f"mask {path} with /dev/null")
        except KernelError as exc:
            if exc.errno != errno.ENOENT:
                raise
        return empty_dir
    if empty_dir is not None:
        # The tmpfs was mounted read-only: its superblock is, and so is every bind of it.
        mount(empty_dir, path, None, MS_BIND, step=f"mask {path} with the read-only tmpfs")
        return empty_dir
    mount("tmpfs", path, "tmpfs", MS_RDONLY, None,
          step=f"mask {path} with a read-only tmpfs")
    return path


def remount_delayed_readonly(config: Config) -> None:
    """Make read-only the tmpfs mounts and /dev that asked for ``ro`` (see `_delays_readonly`)."""
    for m in config.mounts:
        if not _delays_readonly(m):
            continue
        try:
            opts = parse_mount_options(m.options)
        except UnsupportedMountOption:
            continue
        if not opts.readonly:
            continue
        dest = secure_join("/", m.destination)
        _remount_readonly_in_place(dest, opts.behaviour_flags,
                                   f"remount {m.type or 'bind'} on {m.destination} read-only")


def _remount_readonly_in_place(path: str, flags: int, step: str) -> None:
    """MS_REMOUNT|MS_BIND changes only the mount's flags (allowed in a user namespace too, as long
    as no locked flag is dropped; see `pyrunc.remount`)."""
    remount_bind(path, flags | MS_RDONLY, step)


def make_root_readonly() -> None:
    """root.readonly: remount "/" read-only, keeping the flags it already has."""
    try:
        current = ms_flags_from_statvfs(os.statvfs("/").f_flag)
    except OSError as exc:
        raise describe_oserror(exc, "statvfs /") from None
    _remount_readonly_in_place("/", current | MS_RDONLY, "remount / read-only (root.readonly)")
