"""Running another process in an existing container (`pyrunc exec`).

The container's state says where its init is and which config it was created from; the new
process takes its namespaces, cgroup and seccomp profile from there, and everything else from
the exec's process description: a `--process` file (what containerd's shim and conmon send) or
the container's own `process` with the command-line overrides runc has.
"""

from __future__ import annotations

import copy
import os

from pyrunc.container.state import (
    ContainerError,
    StateDir,
    derive_status,
    init_alive,
    validate_id,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cgroups import CgroupJoiner


class ExecOptions:
    def __init__(self, process: dict[str, Any], *, detach: bool = False,
                 pid_file: str | None = None, console_socket: str | None = None,
                 console_fd: int | None = None, preserve_fds: int = 0,
                 ignore_paused: bool = False, pidfd_socket: str | None = None,
                 rootless: bool = False) -> None:
        self.process = process
        self.detach = detach
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.console_fd = console_fd          # an already connected console (foreground exec)
        self.preserve_fds = preserve_fds
        self.ignore_paused = ignore_paused
        self.pidfd_socket = pidfd_socket
        self.rootless = rootless


def base_process(root: str, container_id: str) -> dict[str, Any]:
    """The container's own `process` (from the config recorded at create), to build on."""
    state = StateDir(root, container_id).load()
    return copy.deepcopy(state.config.get("process") or {})


def check_process(process: dict[str, Any]) -> None:
    """What runc checks of an exec's process before it forks anything."""
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ContainerError("process: args must be a non-empty list of strings")
    cwd = process.get("cwd")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ContainerError(f"process: cwd {cwd!r} must be an absolute path")
    from pyrunc import lsm

    try:
        lsm.check(process.get("apparmorProfile"), process.get("selinuxLabel"), None)
    except lsm.LSMError as exc:
        raise ContainerError(str(exc)) from None


def exec_in_container(root: str, container_id: str, opts: ExecOptions) -> int:
    """Start the process; return its host pid once it is about to execve."""
    from pyrunc.cgroups import load_manager
    from pyrunc.linux.syscalls import pidfd_open
    from pyrunc.process import exec as exec_process
    from pyrunc.spec.model import Config, Process

    validate_id(container_id)
    state_dir = StateDir(root, container_id)
    state = state_dir.load()
    status = derive_status(state_dir, state)
    if status in ("stopped", "creating"):
        raise ContainerError(f"cannot exec in a {status} container")
    if status == "paused" and not opts.ignore_paused:
        raise ContainerError("cannot exec in a paused container (use --ignore-paused to "
                             "override)")
    check_process(opts.process)
    if opts.process.get("terminal") and opts.console_socket is None and opts.console_fd is None:
        raise ContainerError("cannot allocate tty if pyrunc will detach without setting console "
                             "socket")
    config = Config.from_json(state.config, state.bundle)
    process = Process.from_json(opts.process)

    init_pidfd = pidfd_open(state.init_pid)
    console_fd = opts.console_fd
    try:
        # The pidfd now pins the process; check it is still the container's init.
        if not init_alive(state):
            raise ContainerError("cannot exec in a stopped container")
        if opts.console_socket is not None:
            from pyrunc import terminal

            console_fd = terminal.connect_console_socket(opts.console_socket)
        spec = exec_process.ExecSpec(config, process, init_pidfd,
                                     exec_process.namespaces_to_join(state.init_pid, config),
                                     console_fd=console_fd, preserve_fds=opts.preserve_fds,
                                     raw_process=opts.process)
        from pyrunc.container.state import runc_state

        spec.container_state = {k: v for k, v in runc_state(state_dir, state).items()
                                if k in ("ociVersion", "id", "status", "pid", "bundle",
                                         "annotations")}
        cgroups: CgroupJoiner = load_manager(state.cgroup_paths)
        if opts.rootless:
            cgroups = _TolerantCgroups(cgroups)
        try:
            pid = exec_process.launch(spec, cgroups)
        except exec_process.ExecError as exc:
            # runc's prefix, which podman and the shim show (and classify by what follows).
            raise ContainerError(f"exec failed: {exc}") from None
    finally:
        os.close(init_pidfd)
        if opts.console_socket is not None and console_fd is not None:
            os.close(console_fd)
    if opts.pidfd_socket:
        from pyrunc.container.lifecycle import _send_pidfd

        _send_pidfd(opts.pidfd_socket, pid)
    if opts.pid_file:
        from pyrunc.container.lifecycle import write_pid_file

        write_pid_file(opts.pid_file, pid)
    return pid


class _TolerantCgroups:
    """--rootless: joining the container's cgroup may be refused; run without it, as runc."""

    def __init__(self, inner: CgroupJoiner) -> None:
        self.inner = inner

    def add_process(self, pid: int) -> None:
        from pyrunc.cgroups import is_permission_error

        try:
            self.inner.add_process(pid)
        except OSError as exc:
            if not is_permission_error(exc):
                raise
            from pyrunc import log

            log.warning(f"rootless: not joining the container's cgroup: {exc}")
