"""The container's filesystem view: mounts, /dev, pivot_root, and the read-only/masked paths.

Called by the container's init in three steps, around the createRuntime hooks:

1. `prepare_rootfs` — still seeing the host's tree: stop mount events from reaching the host, bind
   the rootfs onto itself, mount every config.json mount inside it, populate /dev.
2. `enter_rootfs` — make the rootfs the root (pivot_root, or MS_MOVE + chroot with --no-pivot).
3. `finish_rootfs` — inside the new root: sysctls, readonlyPaths, maskedPaths, read-only remounts
   that had to wait until everything was created, root propagation.

Every destination is resolved with `secure_join`, so a symlink in the image can never make a mount
land outside the rootfs; mounts are then made through a /proc/self/fd path of the opened destination,
so the checked path and the mounted path are the same object.

Nothing here runs unless the container has a mount namespace of its own: in the host's namespace
these steps would change the host.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from typing import NamedTuple

from pyrunc import devices, log
from pyrunc.linux.consts import (
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SLAVE,
    MS_STRICTATIME,
)
from pyrunc.linux.procfs import PROC_SUPER_MAGIC, fs_type
from pyrunc.linux.syscalls import (
    KernelError,
    describe_oserror,
    mount,
    mount_setattr,
    pivot_root,
    umount2,
)
from pyrunc.mountopts import (
    MountOptions,
    UnsupportedMountOption,
    ms_flags_from_statvfs,
    parse_mount_options,
    propagation_flags,
)
from pyrunc.remount import remount_bind
from pyrunc.spec.model import Config, Mount

#: How many symlinks `secure_join` follows before giving up (ELOOP), like the kernel's 40 but for a
#: whole path rather than one lookup.
MAX_SYMLINKS = 255

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


# --- path resolution ------------------------------------------------------------------------------

def secure_join(root: str, unsafe_path: str) -> str:
    """Resolve `unsafe_path` inside `root` as if `root` were "/" (as chroot would).

    Symlinks are followed, but an absolute target restarts at `root` and ".." never climbs above it.
    Components that do not exist are appended as they are. The result is always `root` or a path
    under it; it is not opened, so a caller that must not race with a writer re-checks it.
    """
    root = os.path.normpath(root)
    resolved = ""  # path below root, "" or starting with "/"
    pending = [c for c in unsafe_path.split("/") if c]
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = resolved.rsplit("/", 1)[0]
            continue
        candidate = resolved + "/" + part
        full = root + candidate if root != "/" else candidate
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            resolved = candidate
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved = candidate
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise KernelError(errno.ELOOP, f"resolve {unsafe_path} inside {root}", unsafe_path)
        target = os.readlink(full)
        if target.startswith("/"):
            resolved = ""
        pending[:0] = [c for c in target.split("/") if c]
    if root == "/":
        return resolved or "/"
    return root + resolved


def _is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


# --- /proc/self/mountinfo and /proc/self/cgroup ------------------------------------------------------

class MountInfo(NamedTuple):
    """One line of /proc/self/mountinfo."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    optional: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]

    @property
    def is_shared(self) -> bool:
        return any(f.startswith("shared:") for f in self.optional)

    @property
    def is_unbindable(self) -> bool:
        return "unbindable" in self.optional


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo (three octal digits)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse the text of /proc/<pid>/mountinfo (see proc(5))."""
    result = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 10:
            continue
        sep = fields.index("-", 6)
        result.append(MountInfo(
            mount_id=int(fields[0]), parent_id=int(fields[1]), root=_unescape(fields[3]),
            mount_point=_unescape(fields[4]), optional=tuple(fields[6:sep]),
            fstype=fields[sep + 1], source=_unescape(fields[sep + 2]),
            super_options=tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else ()))
    return result


def read_mountinfo() -> list[MountInfo]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def _mount_containing(path: str, mounts: list[MountInfo]) -> MountInfo | None:
    """The mount that `path` lives on: the last-mounted one with the longest matching mount point."""
    best: MountInfo | None = None
    for mi in mounts:
        if _is_within(path, mi.mount_point) and (
                best is None or len(mi.mount_point) >= len(best.mount_point)):
            best = mi
    return best


def _read_own_cgroups() -> list[tuple[str, str]]:
    """(controllers, path) for each line of /proc/self/cgroup; controllers is "" for cgroup v2."""
    result = []
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                result.append((parts[1], parts[2]))
    return result


# --- small mount helpers ---------------------------------------------------------------------------

@contextlib.contextmanager
def _opened(path: str, step: str) -> Iterator[str]:
    """Open `path` without following a final symlink and yield its /proc/self/fd path.

    The kernel resolves that magic link to exactly the object opened, so a symlink swapped in after
    `secure_join` checked the path cannot redirect the mount.
    """
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise describe_oserror(exc, step)
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
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except OSError as exc:
        raise describe_oserror(exc, f"create mount point for {what}")


def _touch(path: str, what: str) -> None:
    """Create an empty file to bind a file onto (its parents as directories)."""
    _mkdir(os.path.dirname(path), what)
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
        os.close(fd)
    except OSError as exc:
        raise describe_oserror(exc, f"create mount point for {what}")


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
        raise describe_oserror(exc, f"mount {m.type} on {m.destination}")
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


# --- step 1: prepare_rootfs --------------------------------------------------------------------------

def has_mount_namespace(config: Config) -> bool:
    """True when the init has a mount namespace of its own (new or joined)."""
    return config.linux.namespace("mount") is not None


#: Opens a bind source from the host side, returning an O_PATH fd (see process/mountsource.py).
SourceOpener = Callable[[str], int]


def prepare_rootfs(config: Config, request_source: SourceOpener | None = None) -> None:
    """Set up every mount inside the rootfs and populate /dev; runs before createRuntime hooks.

    Mounts are made in the config's order, each bind source looked up at its turn (so a
    source inside the rootfs sees what earlier entries mounted). `request_source` is how a bind
    source the init cannot look up (a user namespace's root facing a 0700 host directory) is
    opened by the runtime instead.
    """
    if not has_mount_namespace(config):
        return
    rootfs = os.path.realpath(config.root_path)
    stop_propagation_to_host(config)
    make_rootfs_parent_private(rootfs, config.linux.rootfs_propagation)
    bind_rootfs_onto_itself(rootfs)
    opener = request_source if devices.in_user_namespace(config) else None
    for m in config.mounts:
        mount_entry(config, rootfs, m, request_source=opener)
    if needs_dev_setup(config):
        devices.create_devices(rootfs, devices.devices_for(config),
                               bind=devices.in_user_namespace(config))
        devices.create_dev_symlinks(rootfs)
        devices.setup_ptmx(rootfs)


def _root_propagation(config: Config) -> int:
    if config.linux.rootfs_propagation:
        return propagation_flags(config.linux.rootfs_propagation)
    return MS_SLAVE | MS_REC


def stop_propagation_to_host(config: Config) -> None:
    """Make "/" recursively slave (or linux.rootfsPropagation): our mounts must not reach the host."""
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
    mount(rootfs, rootfs, None, MS_BIND | MS_REC, step=f"bind-mount the rootfs {rootfs} onto itself")


def needs_dev_setup(config: Config) -> bool:
    """/dev gets device nodes and symlinks unless it is a bind mount from the host."""
    return not any(m.is_bind and os.path.normpath(m.destination) == "/dev" for m in config.mounts)


def _delays_readonly(m: Mount) -> bool:
    """tmpfs mounts and /dev are mounted writable first (things are created in them after) and
    made read-only by `finish_rootfs`."""
    return m.type == "tmpfs" or os.path.normpath(m.destination) == "/dev"


def mount_entry(config: Config, rootfs: str, m: Mount, *,
                request_source: SourceOpener | None = None) -> None:
    """Mount one config.json `mounts` entry inside `rootfs`."""
    what = f"{m.type or 'bind'} on {m.destination}"
    try:
        opts = parse_mount_options(m.options)
    except UnsupportedMountOption as exc:
        raise KernelError(errno.EINVAL, f"mount {what}: {exc}") from None
    if m.type in ("proc", "sysfs") and not (m.is_bind or opts.is_bind):
        _require_directory_or_absent(rootfs, m)
    dest = secure_join(rootfs, m.destination)
    _check_proc_destination(rootfs, dest, m)
    if m.is_bind or opts.is_bind:
        mount_bind(m, opts, dest, delay_readonly=_delays_readonly(m),
                   request_source=request_source)
    elif m.type in ("cgroup", "cgroup2"):
        mount_cgroup(config, rootfs, m, opts, dest)
    elif m.type is None:
        raise KernelError(errno.EINVAL, f"mount on {m.destination}: no type and not a bind mount")
    else:
        mount_filesystem(config, m, opts, dest)


def mount_bind(m: Mount, opts: MountOptions, dest: str, *, delay_readonly: bool = False,
               source: str | None = None, request_source: SourceOpener | None = None) -> None:
    """Bind (or rbind) a host path, then remount for the flags a bind cannot set at once.

    When the source cannot be looked up here and `request_source` is given, the runtime opens
    it and the bind is made from that fd (/proc/self/fd/N needs no search permission).
    """
    src = os.path.abspath(source or m.source or "")
    what = f"bind {src} on {m.destination}"
    fd: int | None = None
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
        elif not os.path.lexists(dest):
            _touch(dest, what)
        mount_source = src if fd is None else f"/proc/self/fd/{fd}"
        _mount_at(mount_source, dest, None, MS_BIND | (opts.flags & MS_REC), None, f"mount {what}")
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


def mount_filesystem(config: Config, m: Mount, opts: MountOptions, dest: str) -> None:
    """Mount a new filesystem instance (proc, sysfs, tmpfs, mqueue, devpts, overlay, …)."""
    what = f"{m.type} on {m.destination}"
    flags = opts.flags
    if _delays_readonly(m):
        flags &= ~MS_RDONLY
    data = opts.data
    existed = os.path.isdir(dest)
    if m.type == "tmpfs" and existed:
        # A tmpfs starts with the mode of the directory it covers unless the options say otherwise.
        mode = stat.S_IMODE(os.stat(dest).st_mode)
        data = f"mode={mode:04o}" + ("," + data if data else "")
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


def _mount_tmpfs_copy_up(m: Mount, flags: int, data: str, dest: str) -> None:
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
            shutil.copytree(dest, staging, symlinks=True, dirs_exist_ok=True)
            shutil.copystat(dest, staging)
            _mount_at(staging, dest, None, MS_MOVE, None, f"move {what} into place")
        except BaseException:
            with contextlib.suppress(OSError):
                umount2(staging, MNT_DETACH)
            raise
    except shutil.Error as exc:
        raise KernelError(errno.EIO, f"copy {m.destination} into its tmpfs: {exc}") from None
    finally:
        with contextlib.suppress(OSError):
            umount2(staging, MNT_DETACH)   # the private bind
        with contextlib.suppress(OSError):
            os.rmdir(staging)


# --- cgroup filesystems ------------------------------------------------------------------------------

def host_is_cgroup2_only() -> bool:
    """A pure cgroup v2 host has the unified hierarchy at /sys/fs/cgroup itself."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def mount_cgroup(config: Config, rootfs: str, m: Mount, opts: MountOptions, dest: str) -> None:
    """Give the container its cgroup tree: cgroup2 on a v2 host, a v1 tmpfs layout otherwise."""
    if host_is_cgroup2_only():
        mount_cgroup2(config, m, opts, dest)
    else:
        mount_cgroup_v1_layout(config, m, opts, dest)


def _own_cgroup_source(mi: MountInfo, own_path: str) -> str:
    """The host directory of this process's cgroup in hierarchy `mi` (root of the mount if the
    cgroup lies outside what the mount shows, as inside a cgroup namespace)."""
    rel = os.path.relpath(own_path, mi.root)
    if rel == "." or rel.startswith(".."):
        return mi.mount_point
    return os.path.join(mi.mount_point, rel)


def mount_cgroup2(config: Config, m: Mount, opts: MountOptions, dest: str) -> None:
    """Mount cgroup2; where that is refused (user namespace without a cgroup namespace), bind the
    host's directory of the container's own cgroup."""
    what = f"cgroup2 on {m.destination}"
    _mkdir(dest, what)
    try:
        _mount_at(m.source or "cgroup2", dest, "cgroup2", opts.flags, opts.data, f"mount {what}")
    except KernelError as exc:
        if exc.errno not in (errno.EPERM, errno.EBUSY):
            raise
        mounts = read_mountinfo()
        own = dict(_read_own_cgroups()).get("", "/")
        host = next((mi for mi in mounts if mi.fstype == "cgroup2"), None)
        if host is None:
            raise
        source = _own_cgroup_source(host, own)
        bind = parse_mount_options((*m.options, "rbind"))
        mount_bind(Mount(m.destination, "bind", source, m.options), bind, dest, source=source)
        return
    _apply_propagation_and_attrs(dest, opts, what)


class _V1Hierarchy(NamedTuple):
    controllers: str  # as /proc/self/cgroup names it: "cpu,cpuacct", "name=systemd"
    own_path: str
    host: MountInfo


def _v1_hierarchies() -> list[_V1Hierarchy]:
    """The host's v1 hierarchies that this process belongs to, in the host's mount order."""
    own = [(set(controllers.split(",")), controllers, path)
           for controllers, path in _read_own_cgroups() if controllers]
    result: list[_V1Hierarchy] = []
    seen: set[str] = set()
    for mi in read_mountinfo():
        if mi.fstype != "cgroup":
            continue
        for wanted, controllers, path in own:
            if controllers not in seen and wanted <= set(mi.super_options):
                seen.add(controllers)
                result.append(_V1Hierarchy(controllers, path, mi))
                break
    return result


def mount_cgroup_v1_layout(config: Config, m: Mount, opts: MountOptions, dest: str) -> None:
    """A tmpfs at `dest` with one directory per v1 hierarchy (and `unified` on a hybrid host).

    With a cgroup namespace each hierarchy is a fresh cgroup mount (the namespace shows the
    container's cgroup as its root); without one, the host's directory of the container's cgroup is
    bind-mounted, so the container still sees only its own subtree.
    """
    what = f"cgroup on {m.destination}"
    cgroupns = config.linux.namespace("cgroup") is not None
    readonly = MS_RDONLY if opts.readonly else 0
    _mkdir(dest, what)
    _mount_at("tmpfs", dest, "tmpfs", _CGROUP_FLAGS, "mode=755", f"mount tmpfs for {what}")
    _apply_propagation_and_attrs(dest, MountOptions(propagation=opts.propagation), what)
    for h in _v1_hierarchies():
        name = os.path.basename(h.host.mount_point)
        sub = os.path.join(dest, name)
        sub_what = f"cgroup {h.controllers} on {os.path.join(m.destination, name)}"
        _mkdir(sub, sub_what)
        if cgroupns:
            data = f"none,{h.controllers}" if h.controllers.startswith("name=") else h.controllers
            _mount_at("cgroup", sub, "cgroup", _CGROUP_FLAGS | readonly, data, f"mount {sub_what}")
        else:
            source = _own_cgroup_source(h.host, h.own_path)
            _mount_at(source, sub, None, MS_BIND | MS_REC, None, f"bind-mount {sub_what}")
            _remount_bind(sub, _CGROUP_FLAGS | readonly | (opts.flags & _ATIME_FLAGS),
                          f"remount {sub_what} with its options")
        _apply_propagation_and_attrs(sub, MountOptions(propagation=opts.propagation), sub_what)
        _link_comounted(dest, name)
    _mount_unified_in_hybrid_layout(m, opts, dest, cgroupns)
    if opts.readonly:
        _remount_bind(dest, _CGROUP_FLAGS | MS_RDONLY, f"remount tmpfs for {what} read-only")


def _link_comounted(dest: str, name: str) -> None:
    """For a directory such as ``cpu,cpuacct`` add ``cpu`` and ``cpuacct`` symlinks to it."""
    if "," not in name:
        return
    for part in name.split(","):
        link = os.path.join(dest, part)
        try:
            os.symlink(name, link)
        except FileExistsError:
            pass
        except OSError as exc:
            raise describe_oserror(exc, f"create cgroup symlink {part} -> {name}")


def _mount_unified_in_hybrid_layout(m: Mount, opts: MountOptions, dest: str, cgroupns: bool) -> None:
    """On a hybrid host, also the cgroup2 hierarchy (usually at <dest>/unified)."""
    host = next((mi for mi in read_mountinfo() if mi.fstype == "cgroup2"), None)
    if host is None:
        return
    name = os.path.basename(host.mount_point)
    sub = os.path.join(dest, name)
    sub_what = f"cgroup2 on {os.path.join(m.destination, name)}"
    readonly = MS_RDONLY if opts.readonly else 0
    _mkdir(sub, sub_what)
    if cgroupns:
        _mount_at("cgroup2", sub, "cgroup2", _CGROUP_FLAGS | readonly, None, f"mount {sub_what}")
    else:
        own = dict(_read_own_cgroups()).get("", "/")
        source = _own_cgroup_source(host, own)
        _mount_at(source, sub, None, MS_BIND | MS_REC, None, f"bind-mount {sub_what}")
        _remount_bind(sub, _CGROUP_FLAGS | readonly, f"remount {sub_what} with its options")
    _apply_propagation_and_attrs(sub, MountOptions(propagation=opts.propagation), sub_what)


# --- step 2: enter_rootfs ----------------------------------------------------------------------------

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
        _mkdir(config.process.cwd, f"the process's cwd {config.process.cwd}")


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
        raise describe_oserror(exc, f"change directory to the rootfs {rootfs}")
    mount(rootfs, "/", None, MS_MOVE, step=f"move the rootfs {rootfs} onto /")
    try:
        os.chroot(".")
        os.chdir("/")
    except OSError as exc:
        raise describe_oserror(exc, f"chroot into the rootfs {rootfs}")


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


# --- step 3: finish_rootfs ---------------------------------------------------------------------------

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
        try:
            for path in config.linux.masked_paths:
                mask_path(path, null_fd if via_fd else None)
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

    Opened relative to the init's procfs handle when there is one, without following symlinks,
    and checked to be on procfs before a byte is written (the CVE-2025-52881 class: a /proc/sys
    redirected by the image or a mount must not turn a sysctl into a write elsewhere).
    """
    for key, value in sysctl.items():
        relative = "sys/" + key.replace(".", "/")
        path = "/proc/" + relative
        try:
            if procfs_fd is not None:
                fd = os.open(relative, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=procfs_fd)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                if fs_type(fd) != PROC_SUPER_MAGIC:
                    raise KernelError(errno.EXDEV, f"write sysctl {key}={value}: {path} is not "
                                      "on procfs", path)
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise describe_oserror(exc, f"write sysctl {key}={value}")


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
        raise describe_oserror(exc, f"statvfs {path}")
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
        raise describe_oserror(exc, "open /dev/null to mask paths")
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise KernelError(errno.EINVAL, "maskedPaths: /dev/null in the container is not the "
                          "null device (char 1:3); refusing to mask with it", "/dev/null")
    return fd


def mask_path(path: str, null_fd: int | None = None) -> None:
    """Hide `path`: /dev/null over a file, an empty read-only tmpfs over a directory."""
    source = "/dev/null" if null_fd is None else f"/proc/self/fd/{null_fd}"
    try:
        mount(source, path, None, MS_BIND, step=f"mask {path} with /dev/null")
    except KernelError as exc:
        if exc.errno == errno.ENOENT:
            return
        if exc.errno != errno.ENOTDIR:
            raise
        mount("tmpfs", path, "tmpfs", MS_RDONLY, None, step=f"mask {path} with a read-only tmpfs")


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
        raise describe_oserror(exc, "statvfs /")
    _remount_readonly_in_place("/", current | MS_RDONLY, "remount / read-only (root.readonly)")
