"""The state store: one directory per container under `--root`.

    <root>/<id>/state.json   what `create` recorded (pid, start time, bundle, cgroup paths, config)
    <root>/<id>/exec.fifo    exists from create until start: the init blocks opening it for writing

Writes are atomic (temp file + rename), so a reader never sees half a file. Commands that change a
container take an exclusive `flock` on its directory, so concurrent commands on one id are
serialized.

Status is never taken from the file alone: it is derived from the kernel every time
(`derive_status`), because the caller — not pyrunc — reaps the container's init, and a process
that died leaves a zombie or nothing at all. This module is on `pyrunc state`'s hot path, so it
imports only the standard library basics.
"""

from __future__ import annotations

import errno
import fcntl
import os

from pyrunc import fastjson

# `typing` (and the `re` it imports on 3.11) costs milliseconds on the `state` hot path; the
# annotations are never evaluated, so the names are only needed by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"

_ID_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-")


class ContainerError(Exception):
    """A lifecycle error whose text is what runc's callers expect to read (see CLI-CONTRACT.md)."""


class ContainerNotFound(ContainerError):
    def __init__(self, container_id: str) -> None:
        super().__init__("container does not exist")
        self.container_id = container_id


def validate_id(container_id: str) -> None:
    """Ids become directory names: one clean path component of a restricted alphabet."""
    if not container_id or container_id in (".", "..") or not set(container_id) <= _ID_ALPHABET:
        raise ContainerError("invalid container ID format")


class ContainerState:
    """What pyrunc remembers about one container between commands.

    A plain class rather than a dataclass: `dataclasses` costs milliseconds to import and this
    module is on the hot path of `pyrunc state`.
    """

    FIELDS = ("id", "bundle", "rootfs", "oci_version", "created", "config", "init_pid",
              "init_start_time", "init_exe", "cgroup_paths", "creating", "creator_pid",
              "creator_start_time", "owner", "rootless", "no_new_keyring", "net_devices")

    def __init__(self, id: str, bundle: str, rootfs: str, oci_version: str, created: str,
                 config: dict[str, Any], init_pid: int = 0, init_start_time: int = 0,
                 init_exe: str = "", cgroup_paths: dict[str, str] | None = None,
                 creating: bool = True, creator_pid: int = 0, creator_start_time: int = 0,
                 owner: str = "", rootless: bool = False, no_new_keyring: bool = False,
                 net_devices: list[dict[str, Any]] | None = None) -> None:
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.oci_version = oci_version
        self.created = created                  # RFC 3339, UTC, nanoseconds
        self.config = config                    # the validated config.json as created
        self.init_pid = init_pid
        self.init_start_time = init_start_time  # /proc/<pid>/stat field 22, guards pid reuse
        self.init_exe = init_exe                # the parked init's executable (the interpreter)
        self.cgroup_paths = cgroup_paths or {}
        self.creating = creating                # True until create has finished successfully
        self.creator_pid = creator_pid          # the `pyrunc create` that is building it
        self.creator_start_time = creator_start_time
        self.owner = owner
        self.rootless = rootless
        self.no_new_keyring = no_new_keyring
        # linux.netDevices moved into the container: host name, container name, addresses,
        # MTU, up state (recorded before the move, so that delete can always return them).
        self.net_devices = net_devices or []

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.config.get("annotations") or {})

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ContainerState:
        return cls(**{k: v for k, v in d.items() if k in cls.FIELDS})


def _keep_in_runtime_dir(root: str) -> None:
    """A state root directly in $XDG_RUNTIME_DIR gets the sticky bit, as runc gives its own:
    the XDG base directory rules let the session manager prune files there that lack it."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.dirname(os.path.abspath(root)) == os.path.abspath(runtime_dir):
        mode = os.stat(root).st_mode
        if not mode & 0o1000:
            os.chmod(root, (mode & 0o777) | 0o1000)


def _state_dir_refused(exc: OSError) -> str:
    """One line for a state directory that cannot be made, with the fix an unprivileged user
    needs (runc's default root, /run/<name>, is root's)."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    line = f"create state directory {exc.filename}: {name} ({exc.strerror})"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and os.geteuid() != 0:
        line += ": not root, set XDG_RUNTIME_DIR (state goes to $XDG_RUNTIME_DIR/pyrunc) or " \
                "pass --root DIR"
    return line


class StateDir:
    """One container's directory under the state root, with its lock."""

    def __init__(self, root: str, container_id: str) -> None:
        self.root = root
        self.id = container_id
        self.path = os.path.join(root, container_id)
        self._lock_fd: int | None = None

    # --- existence and locking ---------------------------------------------------------------

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def reserve(self) -> None:
        """Create the directory for a new container; fails if the id is taken."""
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            _keep_in_runtime_dir(self.root)
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise ContainerError("container with given ID already exists") from None
        except OSError as exc:
            raise ContainerError(_state_dir_refused(exc)) from None

    def lock(self) -> None:
        """Take the per-container lock (blocking). Raises ContainerNotFound if it vanished."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A concurrent delete may have removed the directory while we waited.
        if os.fstat(fd).st_nlink == 0:
            os.close(fd)
            raise ContainerNotFound(self.id)
        self._lock_fd = fd

    @property
    def lock_fd(self) -> int | None:
        return self._lock_fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- files ---------------------------------------------------------------------------------

    @property
    def fifo_path(self) -> str:
        return os.path.join(self.path, EXEC_FIFO)

    def load(self) -> ContainerState:
        try:
            with open(os.path.join(self.path, STATE_FILE), "rb") as f:
                return ContainerState.from_json(fastjson.loads(f.read()))
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None

    def has_state(self) -> bool:
        return os.path.exists(os.path.join(self.path, STATE_FILE))

    def save(self, state: ContainerState) -> None:
        """Atomically replace state.json."""
        tmp = os.path.join(self.path, f".{STATE_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, fastjson.dumps(state.to_json()).encode())
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.path, STATE_FILE))

    def remove(self) -> None:
        """Remove the directory and everything in it (the fifo, state, temp files)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(os.path.join(self.path, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass


def list_ids(root: str) -> list[str]:
    try:
        return sorted(name for name in os.listdir(root)
                      if os.path.isdir(os.path.join(root, name)))
    except FileNotFoundError:
        return []


# --- liveness, from the kernel -----------------------------------------------------------------

def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), or None if the pid is gone.

    Returns None for zombies too: a dead init that its parent has not reaped yet is dead.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return None
        raise
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def init_alive(state: ContainerState) -> bool:
    """True when the recorded init still runs (not a zombie, and not a reused pid)."""
    if state.init_pid <= 0:
        return False
    start = process_start_time(state.init_pid)
    return start is not None and start == state.init_start_time


def derive_status(state_dir: StateDir, state: ContainerState) -> str:
    """creating / created / running / paused / stopped, as the kernel sees the container now.

    While its `create` still runs a container is `creating`, whatever its init is doing (it may
    not even exist yet); a create that died half-way leaves a `stopped` container for
    `delete --force`.
    """
    if state.creating:
        if state.creator_pid > 0 and \
                process_start_time(state.creator_pid) == state.creator_start_time:
            return "creating"
        return "stopped"
    if not init_alive(state):
        return "stopped"
    if _frozen(state.cgroup_paths):
        return "paused"
    if os.path.exists(state_dir.fifo_path) and not init_has_execed(state):
        return "created"
    return "running"


def process_exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def init_has_execed(state: ContainerState) -> bool:
    """True once the init runs the user's program: a fifo left behind by a `start` that died
    after releasing the init must not make the container look `created` forever."""
    return bool(state.init_exe) and process_exe(state.init_pid) not in ("", state.init_exe)


def _frozen(cgroup_paths: dict[str, str]) -> bool:
    """Read the freezer without importing the cgroup drivers (this is the `state` hot path)."""
    freezer = cgroup_paths.get("freezer")
    try:
        if freezer:
            with open(os.path.join(freezer, "freezer.state")) as f:
                return f.read().strip() != "THAWED"
        unified = cgroup_paths.get("unified") or cgroup_paths.get("")
        if unified:
            with open(os.path.join(unified, "cgroup.freeze")) as f:
                return f.read().strip() == "1"
    except OSError:
        return False
    return False


def runc_state(state_dir: StateDir, state: ContainerState) -> dict[str, Any]:
    """`pyrunc state` output: runc's key order, pid 0 once stopped."""
    status = derive_status(state_dir, state)
    doc: dict[str, Any] = {
        "ociVersion": state.oci_version,
        "id": state.id,
        "pid": 0 if status == "stopped" else state.init_pid,
        "status": status,
        "bundle": state.bundle,
        "rootfs": state.rootfs,
        "created": state.created,
    }
    if state.annotations:
        doc["annotations"] = state.annotations
    doc["owner"] = state.owner
    return doc
