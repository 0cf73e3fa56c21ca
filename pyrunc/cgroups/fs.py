"""What the v1 and v2 cgroupfs drivers share: reading the host's layout, and plain file operations.

A cgroup is a directory in a cgroup filesystem; every operation is a mkdir, rmdir, read or write of
one of its files. Failures become `KernelError`s that name the step and the directory.
"""

from __future__ import annotations

import errno
import os
import time

from pyrunc import trace
from pyrunc.cgroups import CREATED_KEY, UNIFIED
from pyrunc.linux.consts import SIGKILL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    from pyrunc.spec.resources import DeviceRule

# How long destroy() keeps retrying a directory whose last tasks are still exiting (EBUSY).
_RMDIR_ATTEMPTS = 8
_RMDIR_FIRST_DELAY = 0.01


def fail(exc: OSError, step: str) -> NoReturn:
    """Re-raise `exc` as a KernelError naming `step` (ctypes layer imported only on failure)."""
    from pyrunc.linux.syscalls import describe_oserror
    raise describe_oserror(exc, step) from exc


# --- the host's layout ---------------------------------------------------------------------------

def own_cgroups(proc_file: str = "/proc/self/cgroup") -> dict[str, str]:
    """Hierarchy name -> this process's cgroup path in it, from /proc/self/cgroup.

    A v1 line `4:cpu,cpuacct:/a` gives both `cpu` and `cpuacct`; `1:name=systemd:/a` gives
    `name=systemd`; the cgroup2 line `0::/a` gives UNIFIED.
    """
    own: dict[str, str] = {}
    with open(proc_file) as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if not controllers:
                own[UNIFIED] = path
            for name in controllers.split(","):
                if name:
                    own[name] = path
    return own


class Mount:
    """One cgroup filesystem mount: where it is, which part of the hierarchy it shows, and what it
    has."""

    __slots__ = ("mountpoint", "root", "fstype", "names")

    def __init__(self, mountpoint: str, root: str, fstype: str, names: tuple[str, ...]) -> None:
        self.mountpoint = mountpoint
        self.root = root
        self.fstype = fstype
        self.names = names  # v1: the controllers / name= of the hierarchy; v2: (UNIFIED,)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def kernel_controllers(proc_file: str = "/proc/cgroups") -> set[str]:
    """Names of the controllers this kernel has (to tell them from mount options like `xattr`)."""
    with open(proc_file) as f:
        return {line.split()[0] for line in f if line.strip() and not line.startswith("#")}


def cgroup_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """Every cgroup and cgroup2 mount, first mount of each hierarchy only (bind mounts skipped)."""
    controllers: set[str] | None = None
    found: list[Mount] = []
    seen: set[tuple[str, ...]] = set()
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
                continue
            if tail[0] == "cgroup2":
                names: tuple[str, ...] = (UNIFIED,)
            else:
                if controllers is None:
                    controllers = kernel_controllers()
                names = tuple(o for o in tail[2].split(",")
                              if o in controllers or o.startswith("name="))
                if not names:
                    continue
            if names in seen:
                continue
            seen.add(names)
            found.append(Mount(_unescape(fields[4]), _unescape(fields[3]), tail[0], names))
    return found


def clean_cgroup_path(path: str) -> str:
    """`path` normalised to start with '/' and without '..' escaping upwards."""
    return os.path.normpath("/" + path).replace("//", "/")


def hierarchy_dir(mount: Mount, cgroups_path: str, own: dict[str, str]) -> str:
    """The absolute directory of `cgroups_path` in the hierarchy that `mount` shows.

    Absolute paths start at the hierarchy's root; relative ones at this process's own cgroup
    (and stay below it).
    A mount that shows only a sub-tree (inside a cgroup namespace or a container) has its `root`
    stripped from the own cgroup path, which the kernel gives relative to the hierarchy's root.
    """
    if cgroups_path.startswith("/"):
        rel = clean_cgroup_path(cgroups_path)
    else:
        base = own.get(mount.names[0], "/")
        if mount.root != "/" and (base == mount.root or base.startswith(mount.root + "/")):
            base = base[len(mount.root):] or "/"
        # Cleaned on its own first, so that '..' cannot climb out of the caller's cgroup.
        rel = clean_cgroup_path(base + clean_cgroup_path(cgroups_path))
    return mount.mountpoint.rstrip("/") + rel


# --- files ---------------------------------------------------------------------------------------

def read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as f:
        return f.read().strip()


def write(directory: str, name: str, value: str, step: str) -> None:
    """Write one value to a cgroup control file (one write(2), as the kernel expects)."""
    path = os.path.join(directory, name)
    if trace.on:
        trace.emit("cgroup write", file=path, value=value)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        fail(exc, f"{step} ({value} > {path})")


def set_value(directory: str, name: str, value: str, pointer: str) -> None:
    """Write one resource value; a failure names the config field, the file and the errno."""
    write(directory, name, value, f"set {pointer}")


def exists(directory: str, name: str) -> bool:
    return os.path.exists(os.path.join(directory, name))


def make_dirs(directory: str) -> list[str]:
    """mkdir -p `directory`; returns the directories it made, outermost first.

    A concurrent destroy() of a sibling container may remove a shared, just-emptied parent between
    our mkdirs (ENOENT): then the chain is simply walked again.
    """
    created: list[str] = []
    for _ in range(3):
        missing: list[str] = []
        d = directory
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        try:
            for d in reversed(missing):
                try:
                    os.mkdir(d, 0o755)
                    created.append(d)
                except FileExistsError:
                    pass
            return created
        except FileNotFoundError:
            continue
        except OSError as exc:
            fail(exc, f"create cgroup {directory}")
    fail(OSError(errno.ENOENT, os.strerror(errno.ENOENT), directory), f"create cgroup {directory}")


def _outermost_missing(directory: str) -> str | None:
    """The first directory `make_dirs(directory)` would make now (None if it exists)."""
    missing = None
    d = directory
    while not os.path.isdir(d):
        missing = d
        d = os.path.dirname(d)
    return missing


def pids_in(directory: str) -> list[int]:
    """Pids listed in cgroup.procs of `directory` and every cgroup below it; [] if it is gone."""
    pids: list[int] = []
    for dirpath, _, _ in os.walk(directory):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                pids.extend(int(line) for line in f if line.strip())
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENODEV):  # removed while we walked
                raise
    return pids


def signal_pids(pids: list[int], sig: int) -> None:
    """kill(2) each pid; ones that already exited are fine."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except OSError as exc:
            fail(exc, f"send signal {sig} to {pid}")


def _rmdir_retrying(directory: str) -> None:
    """rmdir a cgroup; EBUSY means tasks are still leaving it (exiting): wait a little, retry."""
    delay = _RMDIR_FIRST_DELAY
    for attempt in range(_RMDIR_ATTEMPTS):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or attempt == _RMDIR_ATTEMPTS - 1:
                fail(exc, f"remove cgroup {directory}")
            time.sleep(delay)
            delay *= 2


def remove_tree(directory: str) -> None:
    """Remove a cgroup and any sub-cgroups the container made, deepest first."""
    if not os.path.isdir(directory):
        return
    for dirpath, _, _ in os.walk(directory, topdown=False):
        _rmdir_retrying(dirpath)


def remove_created_ancestors(leaves: list[str], created: tuple[str, ...]) -> None:
    """rmdir the parent directories this manager created, innermost first, while they are empty.

    `created` holds, per hierarchy, the outermost directory mkdir -p made; everything between it and
    the leaf was made by the same mkdir -p. A parent now used by another container is left alone.
    """
    for top in created:
        for leaf in leaves:
            if not leaf.startswith(top.rstrip("/") + "/"):
                continue
            d = os.path.dirname(leaf)
            while len(d) >= len(top):
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                        break
                    fail(exc, f"remove cgroup {d}")
                d = os.path.dirname(d)


# --- the shared driver ---------------------------------------------------------------------------

class FsManagerBase:
    """Behaviour common to both cgroupfs drivers; subclasses say where the directories are and how
    freezing works in their version."""

    def __init__(self, dirs: dict[str, str], created: tuple[str, ...] = ()) -> None:
        self._dirs = dict(dirs)
        self._created = tuple(created)

    # The unique directories, in a stable order (co-mounted controllers share one).
    def _unique_dirs(self) -> list[str]:
        return list(dict.fromkeys(self._dirs.values()))

    def paths(self) -> dict[str, str]:
        out = dict(self._dirs)
        if self._created:
            out[CREATED_KEY] = "\n".join(self._created)
        return out

    def plan_create(self) -> None:
        planned = list(self._created)
        for d in self._unique_dirs():
            outermost = _outermost_missing(d)
            if outermost is not None and outermost != d:
                planned.append(outermost)
        self._created = tuple(dict.fromkeys(planned))

    def create(self) -> None:
        created = list(self._created)
        try:
            for d in self._unique_dirs():
                made = make_dirs(d)
                if made and made[0] != d:
                    created.append(made[0])
                self._after_mkdir(d, made)
        finally:
            # Also after a failure half-way (a rootless mkdir refused in one hierarchy), so that
            # destroy() removes exactly what was made before it.
            self._created = tuple(dict.fromkeys(created))

    def _after_mkdir(self, directory: str, made: list[str]) -> None:
        """Hook for per-version setup of freshly made directories."""

    def add_process(self, pid: int) -> None:
        for d in self._unique_dirs():
            write(d, "cgroup.procs", str(pid), f"join cgroup {d}")

    def apply_devices(self, rules: Sequence[DeviceRule]) -> None:
        """Enforce the container's device rules (the full list, see cgroups.devices)."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self._unique_dirs():
            found.update(pids_in(d))
        return sorted(found)

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def can_freeze(self) -> bool:
        raise NotImplementedError

    def kill_all(self, sig: int) -> None:
        """Signal every process of the cgroup.

        For SIGKILL the cgroup is frozen first so that no process can fork a child we would miss,
        and thawed afterwards so the kills take effect (also for a paused container).
        """
        if sig != SIGKILL or not self.can_freeze():
            signal_pids(self.pids(), sig)
            return
        try:
            self.freeze()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            return  # the cgroup is gone, and with it every process it had
        try:
            signal_pids(self.pids(), sig)
        finally:
            try:
                self.thaw()
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise

    def destroy(self) -> None:
        leaves = self._unique_dirs()
        for d in leaves:
            remove_tree(d)
        remove_created_ancestors(leaves, self._created)
