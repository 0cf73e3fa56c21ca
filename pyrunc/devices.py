"""The container's /dev: device nodes, the standard symlinks and /dev/ptmx.

Runs in the container's init before pivot_root. Nothing is made by path string: each node's
directory is opened inside the rootfs (pyrunc.linux.inroot, so a symlink planted in the image
cannot lead outside it), and the node is made with mknodat/symlinkat on that fd.

Inside a user namespace the kernel refuses mknod(2) for devices, so each node is then an empty file
with the host's device bind-mounted onto it: same device, same permissions as on the host.
"""

from __future__ import annotations

import errno
import os
import stat

from pyrunc.linux import inroot
from pyrunc.linux.consts import MS_BIND
from pyrunc.linux.syscalls import KernelError, describe_oserror, mount
from pyrunc.spec.model import Config, Device

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

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


def populate_dev(root_fd: int, devices: Iterable[Device], *, bind: bool) -> None:
    """The device nodes, the standard /dev symlinks and /dev/ptmx, in the root `root_fd`."""
    create_devices(root_fd, devices, bind=bind)
    dev_fd = _dir_in_root(root_fd, "/dev")
    try:
        create_dev_symlinks(dev_fd)
        setup_ptmx(dev_fd)
    finally:
        os.close(dev_fd)


def create_devices(root_fd: int, devices: Iterable[Device], *, bind: bool) -> None:
    """Create every device node inside the root `root_fd` (with umask 0, so that fileMode is
    exact)."""
    old_umask = os.umask(0)
    try:
        for dev in devices:
            parent, name = os.path.split(os.path.normpath("/" + dev.path))
            dir_fd = _dir_in_root(root_fd, parent)
            try:
                create_device(dir_fd, name, dev, bind=bind)
            finally:
                os.close(dir_fd)
    finally:
        os.umask(old_umask)


def create_device(dir_fd: int, name: str, dev: Device, *, bind: bool) -> None:
    """Make `dev` appear as `name` in the directory `dir_fd` (resolved inside the rootfs)."""
    if dev.type not in _FILE_TYPES:
        raise ValueError(f"device {dev.path}: unknown type {dev.type!r} (want c, b, u or p)")
    if bind and dev.type != "p":
        bind_host_device(dir_fd, name, dev)
        return
    try:
        make_device_node(dir_fd, name, dev)
    except KernelError as exc:
        if exc.errno == errno.EEXIST:
            return
        if exc.errno == errno.EPERM and dev.type != "p":
            # Not allowed to create device nodes here (e.g. a user namespace we did not expect).
            bind_host_device(dir_fd, name, dev)
            return
        raise


def make_device_node(dir_fd: int, name: str, dev: Device) -> None:
    """mknodat(2) the node with the config's mode, then give it the config's owner.

    The owner and mode are set through an O_PATH fd of the node just made, checked to be that
    node: a symlink swapped in after mknodat cannot turn the chown into one of another file.
    """
    mode = _FILE_TYPES[dev.type] | _permission_bits(dev)
    rdev = 0 if dev.type == "p" else os.makedev(dev.major, dev.minor)
    what = f"device {dev.path} ({dev.type} {dev.major}:{dev.minor})"
    try:
        os.mknod(name, mode, rdev, dir_fd=dir_fd)
    except OSError as exc:
        raise describe_oserror(exc, f"create {what}") from None
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        raise describe_oserror(exc, f"open {what}") from None
    try:
        st = os.fstat(fd)
        if stat.S_IFMT(st.st_mode) != _FILE_TYPES[dev.type] or st.st_rdev != rdev:
            raise KernelError(errno.EEXIST, f"create {what}: replaced after it was made",
                              dev.path)
        os.chown(inroot.fd_path(fd), dev.uid or 0, dev.gid or 0)
        os.chmod(inroot.fd_path(fd), _permission_bits(dev))
    except KernelError:
        raise
    except OSError as exc:
        raise describe_oserror(exc, f"chown/chmod {what}") from None
    finally:
        os.close(fd)


def bind_host_device(dir_fd: int, name: str, dev: Device) -> None:
    """Bind-mount the host's node at `dev.path` onto an empty file `name` in `dir_fd`."""
    try:
        made = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                       | os.O_CLOEXEC, 0o755, dir_fd=dir_fd)
        os.close(made)
    except FileExistsError:
        pass  # an existing node (the image's) is covered as it is
    except OSError as exc:
        raise describe_oserror(exc, f"create mount point for device {dev.path}") from None
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        raise describe_oserror(exc, f"open mount point for device {dev.path}") from None
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise KernelError(errno.ELOOP, f"bind-mount host device {dev.path}: the mount "
                              "point is a symlink", dev.path)
        mount(dev.path, inroot.fd_path(fd), None, MS_BIND,
              step=f"bind-mount host device {dev.path} onto {dev.path}")
    finally:
        os.close(fd)


def create_dev_symlinks(dev_fd: int) -> None:
    """/dev/fd, /dev/std{in,out,err} (and /dev/core when the host has /proc/kcore), made with
    symlinkat in the container's /dev (`dev_fd`)."""
    links = list(DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/dev/core", "/proc/kcore"))
    for link, target in links:
        try:
            os.symlink(target, os.path.basename(link), dir_fd=dev_fd)
        except FileExistsError:
            continue
        except OSError as exc:
            raise describe_oserror(exc, f"create symlink {link} -> {target}") from None


def setup_ptmx(dev_fd: int) -> None:
    """Make /dev/ptmx a symlink to pts/ptmx, so that ptys come from the container's own devpts."""
    try:
        os.unlink("ptmx", dir_fd=dev_fd)
    except FileNotFoundError:
        pass
    try:
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev_fd)
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


def _dir_in_root(root_fd: int, path: str) -> int:
    """The directory `path` inside the root (made if missing), as a verified O_PATH fd."""
    try:
        return inroot.mkdir_in_root(root_fd, path)
    except OSError as exc:
        raise describe_oserror(exc, f"create directory {path}") from None


def _permission_bits(dev: Device) -> int:
    return 0o666 if dev.file_mode is None else dev.file_mode & 0o7777
