"""Step 1, `prepare_rootfs`: still seeing the host's tree, make every config.json mount inside the
rootfs and populate /dev.
"""

from __future__ import annotations

import errno
import os
import stat

from pyrunc import devices, log
from pyrunc.linux import inroot
from pyrunc.linux.consts import (
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_SLAVE,
)
from pyrunc.linux.syscalls import (
    KernelError,
    mount,
    umount2,
)
from pyrunc.mountopts import (
    MountOptions,
    UnsupportedMountOption,
    parse_mount_options,
    propagation_flags,
)
from pyrunc.rootfs.cgroupfs import mount_cgroup
from pyrunc.rootfs.helpers import (
    _HOST_FALLBACK,
    Target,
    _apply_propagation_and_attrs,
    _check_proc_destination,
    _mkdir,
    _mount_at,
    _opened,
    _remount_bind,
    _require_directory_or_absent,
    _touch,
    target_in,
)
from pyrunc.rootfs.idmap import attach_tree, is_idmapped, local_idmapped_tree
from pyrunc.rootfs.mountinfo import _mount_containing, read_mountinfo
from pyrunc.rootfs.resolve import secure_join
from pyrunc.spec.model import Config, Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    #: Opens a bind source from the host side, returning an O_PATH fd (see
    #: process/mountsource.py).
    SourceOpener = Callable[[str], int]

    #: Has the runtime build the idmapped tree of mount N (its index in config.mounts); an fd.
    TreeOpener = Callable[[int], int]


def has_mount_namespace(config: Config) -> bool:
    """True when the init has a mount namespace of its own (new or joined)."""
    return config.linux.namespace("mount") is not None


def prepare_rootfs(config: Config, request_source: SourceOpener | None = None,
                   request_tree: TreeOpener | None = None) -> None:
    """Set up every mount inside the rootfs and populate /dev; runs before createRuntime hooks.

    Mounts are made in the config's order, each bind source looked up at its turn (so a
    source inside the rootfs sees what earlier entries mounted). `request_source` is how a bind
    source the init cannot look up (a user namespace's root facing a 0700 host directory) is
    opened by the runtime instead. `request_tree` is how the runtime builds an idmapped
    mount's tree (without it, this process builds it: it must then see the host's ids).
    """
    if not has_mount_namespace(config):
        return
    rootfs = os.path.realpath(config.root_path)
    stop_propagation_to_host(config)
    make_rootfs_parent_private(rootfs, config.linux.rootfs_propagation)
    bind_rootfs_onto_itself(rootfs)
    opener = request_source if devices.in_user_namespace(config) else None
    # Opened after the bind: lookups from this fd see the mounts made on the new rootfs mount.
    root_fd = inroot.open_root(rootfs)
    try:
        for i, m in enumerate(config.mounts):
            mount_entry(config, rootfs, m, request_source=opener, root_fd=root_fd,
                        idmapped_tree=_tree_opener(config, i, request_tree))
        if needs_dev_setup(config):
            devices.populate_dev(root_fd, devices.devices_for(config),
                                 bind=devices.in_user_namespace(config))
    finally:
        os.close(root_fd)


def _tree_opener(config: Config, index: int,
                 request_tree: TreeOpener | None) -> Callable[[], int] | None:
    """For an idmapped mount: how its detached tree is got (None for any other mount)."""
    m = config.mounts[index]
    if not is_idmapped(m):
        return None
    if request_tree is not None:
        return lambda: request_tree(index)
    return lambda: local_idmapped_tree(config, m)


def _root_propagation(config: Config) -> int:
    if config.linux.rootfs_propagation:
        return propagation_flags(config.linux.rootfs_propagation)
    return MS_SLAVE | MS_REC


def stop_propagation_to_host(config: Config) -> None:
    """Make "/" recursively slave (or linux.rootfsPropagation): our mounts must not reach the
    host."""
    mount(None, "/", None, _root_propagation(config),
          step="set propagation of / in the container's mount namespace")


def make_rootfs_parent_private(rootfs: str, propagation: str | None = None) -> None:
    """Make the mount holding the rootfs private, or a slave when rootfsPropagation is one.

    pivot_root(2) refuses a new root whose parent mount is shared, and a bind mount under a shared
    mount would be copied into its peers (possibly the host's namespace). An unbindable parent
    (rootfsPropagation "unbindable") cannot be bind-mounted at all (EINVAL). As runc 1.5 does,
    this is done whatever the parent was, and with MS_SLAVE for "slave"/"rslave": the
    container's "/" (a bind of it) then follows the host's mount, and shows `master:N`.
    """
    flags = propagation_flags(propagation) if propagation else 0
    kind = MS_SLAVE if flags & MS_SLAVE else MS_PRIVATE
    parent = _mount_containing(rootfs, read_mountinfo())
    if parent is not None:
        mount(None, parent.mount_point, None, kind,
              step=f"make {parent.mount_point} (holding the rootfs) "
                   f"{'a slave' if kind == MS_SLAVE else 'private'}")


def bind_rootfs_onto_itself(rootfs: str) -> None:
    """Make the rootfs a mount point of its own (pivot_root and MS_MOVE need one)."""
    mount(rootfs, rootfs, None, MS_BIND | MS_REC,
          step=f"bind-mount the rootfs {rootfs} onto itself")


def needs_dev_setup(config: Config) -> bool:
    """/dev gets device nodes and symlinks unless it is a bind mount from the host."""
    return not any(m.is_bind and os.path.normpath(m.destination) == "/dev" for m in config.mounts)


def _delays_readonly(m: Mount) -> bool:
    """tmpfs mounts and /dev are mounted writable first (things are created in them after) and
    made read-only by `finish_rootfs`."""
    return m.type == "tmpfs" or os.path.normpath(m.destination) == "/dev"


def mount_entry(config: Config, rootfs: str, m: Mount, *,
                request_source: SourceOpener | None = None, root_fd: int | None = None,
                idmapped_tree: Callable[[], int] | None = None) -> None:
    """Mount one config.json `mounts` entry inside `rootfs` (whose fd is `root_fd`, if open; an
    idmapped bind from the detached tree that `idmapped_tree()` returns)."""
    if root_fd is None:
        root_fd = inroot.open_root(rootfs)
        try:
            mount_entry(config, rootfs, m, request_source=request_source, root_fd=root_fd,
                        idmapped_tree=idmapped_tree)
        finally:
            os.close(root_fd)
        return
    what = f"{m.type or 'bind'} on {m.destination}"
    try:
        opts = parse_mount_options(m.options)
    except UnsupportedMountOption as exc:
        raise KernelError(errno.EINVAL, f"mount {what}: {exc}") from None
    if m.type in ("proc", "sysfs") and not (m.is_bind or opts.is_bind):
        _require_directory_or_absent(rootfs, m)
    # secure_join spells out the image's symlinks as they are now (a dangling one names what to
    # create); every step after resolves that path again from root_fd, inside the root.
    dest = target_in(root_fd, rootfs, secure_join(rootfs, m.destination))
    _check_proc_destination(rootfs, dest, m)
    if m.is_bind or opts.is_bind:
        mount_bind(m, opts, dest, delay_readonly=_delays_readonly(m),
                   request_source=request_source, idmapped_tree=idmapped_tree)
    elif m.type in ("cgroup", "cgroup2"):
        mount_cgroup(config, rootfs, m, opts, dest)
    elif m.type is None:
        raise KernelError(errno.EINVAL, f"mount on {m.destination}: no type and not a bind mount")
    else:
        mount_filesystem(config, m, opts, dest)


def mount_bind(m: Mount, opts: MountOptions, dest: Target, *, delay_readonly: bool = False,
               source: str | None = None, request_source: SourceOpener | None = None,
               idmapped_tree: Callable[[], int] | None = None) -> None:
    """Bind (or rbind) a host path, then remount for the flags a bind cannot set at once.

    When the source cannot be looked up here and `request_source` is given, the runtime opens
    it and the bind is made from that fd (/proc/self/fd/N needs no search permission). An
    idmapped bind attaches the detached tree `idmapped_tree()` returns instead of mounting.
    """
    src = os.path.abspath(source or m.source or "")
    what = f"bind {src} on {m.destination}"
    fd: int | None = None
    if idmapped_tree is not None:
        fd = idmapped_tree()
        st = os.fstat(fd)
    else:
        try:
            st = os.stat(src)
        except OSError as exc:
            if request_source is None:
                raise _missing_source(exc, what, src) from None
            fd = request_source(src)
            st = os.fstat(fd)
    try:
        if stat.S_ISDIR(st.st_mode):
            _mkdir(dest, what)
        else:
            _touch(dest, what)
        if idmapped_tree is not None and fd is not None:
            with _opened(dest, f"mount {what}") as target:
                attach_tree(fd, target, f"idmapped {what}")
        else:
            mount_source = src if fd is None else inroot.fd_path(fd)
            _mount_at(mount_source, dest, None, MS_BIND | (opts.flags & MS_REC), None,
                      f"mount {what}")
    finally:
        if fd is not None:
            os.close(fd)
    flags = opts.behaviour_flags
    if delay_readonly:
        flags &= ~MS_RDONLY
    # As runc: remount when any flag is asked for, set *or cleared* (`rw` alone on a read-only
    # source means a writable bind).
    if flags or opts.clear_flags:
        _remount_bind(dest, flags, f"remount {what} with its options", cleared=opts.clear_flags)
    _apply_propagation_and_attrs(dest, opts, what)


def _missing_source(exc: OSError, what: str, src: str) -> KernelError:
    if exc.errno == errno.ENOENT:
        return KernelError(errno.ENOENT, f"mount {what}: source does not exist", src)
    return KernelError(exc.errno or errno.EIO, f"mount {what}: look up the source", src)


def mount_filesystem(config: Config, m: Mount, opts: MountOptions, dest: Target) -> None:
    """Mount a new filesystem instance (proc, sysfs, tmpfs, mqueue, devpts, overlay, …)."""
    what = f"{m.type} on {m.destination}"
    flags = opts.flags
    if _delays_readonly(m):
        flags &= ~MS_RDONLY
    data = opts.data
    covered = _existing_mode(dest)
    if m.type == "tmpfs" and covered is not None and stat.S_ISDIR(covered):
        # A tmpfs starts with the mode of the directory it covers unless the options say otherwise.
        data = f"mode={stat.S_IMODE(covered):04o}" + ("," + data if data else "")
    from pyrunc import lsm

    data = lsm.with_mount_label(m.type, data, config.raw.get("linux", {}).get("mountLabel")) or ""
    _mkdir(dest, what)
    if m.type == "tmpfs" and opts.copy_up:
        _mount_tmpfs_copy_up(m, flags, data, dest)
    else:
        try:
            _mount_at(m.source or m.type, dest, m.type, flags, data, f"mount {what}")
        except KernelError as exc:
            fallback = _HOST_FALLBACK.get(m.type or "")
            if not (fallback and exc.errno in (errno.EPERM, errno.EBUSY)
                    and devices.in_user_namespace(config) and os.path.isdir(fallback)):
                raise
            log.warning(f"cannot mount {m.type} in this user namespace; "
                        f"bind-mounting the host's {fallback} on {m.destination} instead")
            mount_bind(m, parse_mount_options((*m.options, "rbind")), dest, source=fallback)
            return
    _apply_propagation_and_attrs(dest, opts, what)


def _existing_mode(dest: Target) -> int | None:
    """st_mode of what is at `dest` inside the root (a final symlink followed inside it)."""
    try:
        fd = inroot.open_in_root(dest.root_fd, dest.path)
    except OSError:
        return None
    try:
        return os.fstat(fd).st_mode
    finally:
        os.close(fd)


def _mount_tmpfs_copy_up(m: Mount, flags: int, data: str, dest: Target) -> None:
    """``tmpcopyup``: mount the tmpfs aside, copy the directory's content in, move it into place."""
    import shutil  # only for tmpcopyup: these cost milliseconds at start-up
    import tempfile

    what = f"tmpfs on {m.destination}"
    staging = tempfile.mkdtemp(prefix="pyrunc-tmpcopyup-")
    try:
        # MS_MOVE refuses a mount whose parent is shared (rootfsPropagation "rshared" on a host
        # whose /tmp is shared), and a mount under a shared one would show up in its peers:
        # stage on a private bind of the staging directory.
        mount(staging, staging, None, MS_BIND, step=f"bind {staging} for {what}")
        mount(None, staging, None, MS_PRIVATE, step=f"make {staging} private for {what}")
        mount(m.source or "tmpfs", staging, "tmpfs", flags, data or None, step=f"mount {what}")
        try:
            src_fd = inroot.open_in_root(dest.root_fd, dest.path, os.O_PATH | os.O_DIRECTORY)
            try:
                # Through the fd's magic link: the directory opened inside the root, not a path.
                shutil.copytree(inroot.fd_path(src_fd), staging, symlinks=True,
                                dirs_exist_ok=True)
                shutil.copystat(inroot.fd_path(src_fd), staging)
            finally:
                os.close(src_fd)
            _mount_at(staging, dest, None, MS_MOVE, None, f"move {what} into place")
        except BaseException:
            try:
                umount2(staging, MNT_DETACH)
            except OSError:
                pass
            raise
    except shutil.Error as exc:
        raise KernelError(errno.EIO, f"copy {m.destination} into its tmpfs: {exc}") from None
    finally:
        try:
            umount2(staging, MNT_DETACH)   # the private bind
        except OSError:
            pass
        try:
            os.rmdir(staging)
        except OSError:
            pass
