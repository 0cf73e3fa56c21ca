"""`exec`: a new process in a running (or created) container.

    runtime (pyrunc exec)
      └─ joiner      in the container's cgroup; setns(pidfd) into every namespace of the
           │         container's init that differs from ours, then forks and exits
           └─ process  a child is needed: the pid and time namespaces only apply to children.
                       Gets process.json's attributes (attrs.py, the same code as the init's),
                       reports ready and execve()s at once.

Joining by pidfd (Linux 5.8) names the init itself, not a pid that may have been reused, and
joins all namespaces in one call, in the order the kernel needs (the user namespace first).
Both children are non-dumpable and refuse imports from their first instruction, and close every
fd that is not stdio, preserved or theirs: a container process must not reach the runtime's
interpreter or the host's files through them (the CVE-2019-5736 class).
"""

from __future__ import annotations

import os

from pyrunc.linux import syscalls
from pyrunc.linux.consts import PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG
from pyrunc.process import attrs, sync
from pyrunc.spec.model import Config, Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # the C module: `signal` itself builds enums, ms of every create

if TYPE_CHECKING:
    from typing import Any, NoReturn

    from pyrunc.cgroups import CgroupJoiner
    from pyrunc.seccomp import Filter


class ExecSpec:
    """What the joiner and the process need, fixed before the first fork."""

    def __init__(self, config: Config, process: Process, init_pidfd: int, ns_flags: int, *,
                 console_fd: int | None = None, preserve_fds: int = 0,
                 raw_process: dict[str, Any] | None = None) -> None:
        self.config = config
        self.process = process
        self.init_pidfd = init_pidfd
        self.ns_flags = ns_flags
        self.console_fd = console_fd
        self.preserve_fds = preserve_fds
        self.raw_process = raw_process or {}   # fields the typed Process does not model (labels)
        self.container_state: dict[str, Any] = {}  # for a seccomp listener, as runc sends it


def namespaces_to_join(init_pid: int, config: Config) -> int:
    """CLONE_NEW* flags of the container's namespaces that are not already ours.

    setns(2) refuses to "join" the user namespace a process is already in, and a container that
    shares a namespace with the host has nothing to join there.
    """
    from pyrunc.namespaces import CLONE_FLAGS, PROC_NS_NAMES

    flags = 0
    for ns in config.linux.namespaces:
        name = PROC_NS_NAMES[ns.type]
        try:
            theirs = os.stat(f"/proc/{init_pid}/ns/{name}")
        except OSError as exc:
            raise syscalls.KernelError(exc.errno or 0, f"read {ns.type} namespace of the "
                                       f"container's init {init_pid}") from None
        ours = os.stat(f"/proc/self/ns/{name}")
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            flags |= CLONE_FLAGS[ns.type]
    return flags


def run_joiner(chan: sync.SyncChannel, spec: ExecSpec) -> NoReturn:
    """The first child: enter the container's namespaces, fork the process, exit."""
    from pyrunc import trace

    trace.set_role("joiner")
    step = "load the exec process's modules"
    try:
        # While the runtime moves us into the cgroup (see child.run_intermediate).
        preload_modules(spec.config, spec.process)
        step = "build the seccomp filter"
        seccomp_filter = attrs.build_seccomp_filter(spec.config)
        step = "join the container"
        keep = {spec.init_pidfd, *range(3, 3 + spec.preserve_fds)}
        if spec.console_fd is not None:
            keep.add(spec.console_fd)
        attrs.enter_guarded(chan, keep, "exec process")
        syscalls.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, step="set parent-death signal")
        chan.expect(sync.CGROUP_JOINED)
        if spec.ns_flags:
            syscalls.setns(spec.init_pidfd, spec.ns_flags,
                           step="join the container's namespaces (setns pidfd)")
        os.close(spec.init_pidfd)
        attrs.fork_and_report(chan, lambda: run_process(chan, spec, seccomp_filter), "exec")
    except BaseException as exc:  # noqa: BLE001 - everything is reported, nothing escapes
        attrs.report_and_exit(chan, exc, step)


def run_process(chan: sync.SyncChannel, spec: ExecSpec,
                seccomp_filter: Filter | None) -> NoReturn:
    """The exec'd process: the process.json attributes, then execve (with `seccomp_filter`,
    the container's linux.seccomp as the joiner built it)."""
    from pyrunc import trace

    offset = spec.config.linux.time_offsets.get("monotonic", (0, 0))[0] \
        if spec.config.linux.namespace("time") is not None else 0
    trace.set_role("exec", offset)
    step = "set up the exec process"
    process = spec.process
    try:
        if process.terminal:
            step = "set up terminal"
            os.setsid()
            _setup_terminal(spec)
        step = "set up process"
        attrs.set_rlimits(process)
        attrs.close_inherited_fds(3 + spec.preserve_fds)
        if seccomp_filter is not None and not process.no_new_privileges:
            attrs.hand_over_listener(chan, seccomp_filter.load())
            seccomp_filter = None
        if process.no_new_privileges:
            syscalls.prctl(PR_SET_NO_NEW_PRIVS, 1, step="set no_new_privs")
        attrs.become_user(process, fix_stdio=False)
        attrs.enter_cwd(process.cwd)
        env = attrs.build_env(process)
        executable = attrs.find_executable(process.args[0], env)
        labels = (spec.raw_process.get("apparmorProfile"), spec.raw_process.get("selinuxLabel"))
        if any(labels):
            from pyrunc import lsm
            from pyrunc.linux import procfs

            procfs_fd = procfs.open_procfs()
            try:
                lsm.apply_exec_labels(procfs_fd, *labels)
            finally:
                os.close(procfs_fd)
        if seccomp_filter is not None and seccomp_filter.notify:
            attrs.hand_over_listener(chan, seccomp_filter.load())   # the runtime is still here
            seccomp_filter = None
        chan.send(sync.READY)
        chan.close()
        if seccomp_filter is not None and process.no_new_privileges:
            seccomp_filter.load()
        attrs.reset_signals_for_exec()
        attrs.execve(executable, list(process.args), env)
    except BaseException as exc:  # noqa: BLE001
        attrs.report_and_exit(chan, exc, step)


def _setup_terminal(spec: ExecSpec) -> None:
    """A pty from the container's own devpts; its master goes to whoever listens."""
    from pyrunc import terminal

    if spec.console_fd is None:
        raise RuntimeError("process.terminal is set but there is no console socket")
    process = spec.process
    master, slave, slave_path = terminal.create_container_pty(process.console_size)
    terminal.chown_terminal(slave, process.user.uid)
    terminal.send_console_master(spec.console_fd, master, slave_path)  # closes both fds
    terminal.become_terminal_owner(slave)


def preload_modules(config: Config, process: Process) -> None:
    """Everything the children import, loaded before they refuse imports."""
    from pyrunc import errors, log, lsm  # noqa: F401
    from pyrunc.linux import procfs  # noqa: F401
    from pyrunc.process import child

    child.preload_modules(config)
    if process.terminal:
        from pyrunc import terminal  # noqa: F401


def launch(spec: ExecSpec, cgroups: CgroupJoiner) -> int:
    """Fork the joiner, put it in the container's cgroup, return the process's host pid once it
    is about to execve. The caller owns nothing afterwards: the process is the caller's child
    (we are a subreaper) or, once we exit, the child of the caller's subreaper."""
    from pyrunc.linux.consts import PR_SET_CHILD_SUBREAPER

    syscalls.prctl(PR_SET_CHILD_SUBREAPER, 1, step="become child subreaper")
    parent_chan, child_chan = sync.SyncChannel.pair()
    joiner = os.fork()
    if joiner == 0:
        try:
            parent_chan.close()
            run_joiner(child_chan, spec)
        finally:
            os._exit(1)
    child_chan.close()
    process_pid = 0
    ready = False
    try:
        reason = sync.move_into_cgroup(parent_chan, cgroups, joiner)
        if reason is not None:
            raise ExecError(reason)
        while True:
            try:
                msg = parent_chan.recv()
            except sync.ChannelClosed:
                raise ExecError("the exec process exited unexpectedly") from None
            if msg["type"] == sync.ERROR:
                raise ExecError(msg["message"])
            # The joiner's INIT_PID and the process's READY share the channel and may come in
            # either order.
            if msg["type"] == sync.INIT_PID:
                process_pid = int(msg["pid"])
                _reap(joiner)
                joiner = 0
            elif msg["type"] == sync.READY:
                ready = True
            elif msg["type"] == sync.SECCOMP_LISTENER:
                _send_listener(spec, msg)
                parent_chan.send(sync.SECCOMP_LISTENER_DONE)
            else:
                raise ExecError(f"protocol error: unexpected message {msg['type']!r}")
            if ready and process_pid:
                return process_pid
    except BaseException:
        for pid in (process_pid, joiner):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _reap(pid)
        raise
    finally:
        parent_chan.close()


def _send_listener(spec: ExecSpec, msg: dict[str, Any]) -> None:
    """SCMP_ACT_NOTIFY in the container's profile: the exec process's own notification fd goes
    to the same agent, with the container's state."""
    from pyrunc import seccomp

    fds = msg.get("fds") or []
    try:
        profile = spec.config.raw["linux"]["seccomp"]
        if not fds:
            raise ExecError("seccomp: the exec process sent no notification fd")
        seccomp.send_to_listener(profile["listenerPath"], fds[0], spec.container_state,
                                 profile.get("listenerMetadata") or "")
    finally:
        for fd in fds:
            os.close(fd)


class ExecError(Exception):
    """exec failed; str() is the one line to show."""


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
