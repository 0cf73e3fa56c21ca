"""The container's /dev: device nodes, the standard symlinks and /dev/ptmx.

Runs in the container's init before pivot_root, with paths inside the rootfs resolved by
`pyrunc.rootfs.secure_join` so that a symlink planted in the image cannot redirect a node outside
it.

Inside a user namespace the kernel refuses mknod(2) for devices, so each node is then an empty file
with the host's device bind-mounted onto it: same device, same permissions as on the host.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator

from pyrunc.linux.consts import MS_BIND
from pyrunc.linux.syscalls import KernelError, describe_oserror, mount
from pyrunc.spec.model import Config, Device

#: The devices every container gets (the runtime-spec's "default devices"), mode 0666, owner root.
DEFAULT_DEVICES: tuple[Device, ...] = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)

#: Symlinks in /dev: link path → target. /dev/core is added only when the host has /proc/kcore.
DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
)

_FILE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def devices_for(config: Config) -> list[Device]:
    """The config's devices, then each default device whose path the config does not claim."""
    own = list(config.linux.devices)
    claimed = {os.path.normpath(d.path) for d in own}
    return own + [d for d in DEFAULT_DEVICES if d.path not in claimed]


def in_user_namespace(config: Config) -> bool:
    """True when the init runs in a user namespace (new or joined), where mknod is refused."""
    return config.linux.namespace("user") is not None


def create_devices(rootfs: str, devices: Iterable[Device], *, bind: bool) -> None:
    """Create every device node under `rootfs` (with umask 0, so that fileMode is exact)."""
    old_umask = os.umask(0)
    try:
        for dev in devices:
            create_device(_join(rootfs, dev.path), dev, bind=bind)
    finally:
        os.umask(old_umask)


def create_device(dest: str, dev: Device, *, bind: bool) -> None:
    """Make `dev` appear at `dest` (an already resolved host path inside the rootfs)."""
    if dev.type not in _FILE_TYPES:
        raise ValueError(f"device {dev.path}: unknown type {dev.type!r} (want c, b, u or p)")
    _mkdir_parents(dest)
    if bind and dev.type != "p":
        bind_host_device(dest, dev)
        return
    try:
        make_device_node(dest, dev)
    except KernelError as exc:
        if exc.errno == errno.EEXIST:
            return
        if exc.errno == errno.EPERM and dev.type != "p":
            # Not allowed to create device nodes here (e.g. a user namespace we did not expect).
            bind_host_device(dest, dev)
            return
        raise


def make_device_node(dest: str, dev: Device) -> None:
    """mknod(2) the node with the config's mode, then give it the config's owner."""
    mode = _FILE_TYPES[dev.type] | _permission_bits(dev)
    rdev = 0 if dev.type == "p" else os.makedev(dev.major, dev.minor)
    try:
        os.mknod(dest, mode, rdev)
    except OSError as exc:
        raise describe_oserror(
            exc, f"create device {dev.path} ({dev.type} {dev.major}:{dev.minor})") from None
    try:
        os.chown(dest, dev.uid or 0, dev.gid or 0)
    except OSError as exc:
        raise describe_oserror(exc, f"chown device {dev.path}") from None


def bind_host_device(dest: str, dev: Device) -> None:
    """Bind-mount the host's node at `dev.path` onto an empty file at `dest`."""
    if not os.path.lexists(dest):
        try:
            os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))
        except OSError as exc:
            raise describe_oserror(exc, f"create mount point for device {dev.path}") from None
    mount(dev.path, dest, None, MS_BIND, step=f"bind-mount host device {dev.path} onto {dest}")


def create_dev_symlinks(rootfs: str) -> None:
    """/dev/fd, /dev/std{in,out,err} (and /dev/core when the host has /proc/kcore)."""
    links = list(DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/dev/core", "/proc/kcore"))
    for link, target in links:
        path = _join(rootfs, link)
        try:
            os.symlink(target, path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise describe_oserror(exc, f"create symlink {link} -> {target}") from None


def setup_ptmx(rootfs: str) -> None:
    """Make /dev/ptmx a symlink to pts/ptmx, so that ptys come from the container's own devpts."""
    path = _join(rootfs, "/dev/ptmx")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        os.symlink("pts/ptmx", path)
    except OSError as exc:
        raise describe_oserror(exc, "create symlink /dev/ptmx -> pts/ptmx") from None


def reopen_dev_null() -> None:
    """Point stdio that refers to a /dev/null outside the new root at the container's /dev/null.

    Called after pivot_root: a file descriptor inherited from the host keeps the host's mount alive
    and leaks a reference to it into the container.
    """
    try:
        null = os.stat("/dev/null")
    except OSError:
        return
    if not stat.S_ISCHR(null.st_mode):
        return
    for fd in _stdio_fds():
        st = os.fstat(fd)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev and st.st_dev != null.st_dev:
            flags = os.O_RDWR | os.O_CLOEXEC
            new = os.open("/dev/null", flags)
            try:
                os.dup2(new, fd, inheritable=True)
            finally:
                os.close(new)


def _stdio_fds() -> Iterator[int]:
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            continue
        yield fd


def _join(rootfs: str, path: str) -> str:
    # rootfs.py imports this module, so its secure_join is looked up at call time.
    from pyrunc.rootfs.resolve import secure_join

    return secure_join(rootfs, path)


def _permission_bits(dev: Device) -> int:
    return 0o666 if dev.file_mode is None else dev.file_mode & 0o7777


def _mkdir_parents(dest: str) -> None:
    try:
        os.makedirs(os.path.dirname(dest), 0o755, exist_ok=True)
    except OSError as exc:
        raise describe_oserror(exc, f"create directory for {dest}") from None
