"""The child side of container creation: the intermediate process and the container's init.

    runtime (pyrunc create)
      └─ intermediate   joins/creates namespaces (user first), then forks the init and exits
           └─ init      pid 1 of the new pid namespace: builds the rootfs, drops privileges,
                        parks on the exec fifo until `pyrunc start`, then execve()s the user program

Two processes are needed because the pid and time namespaces only apply to the *children* of the
process that unshares them. Both report every failure to the runtime over the sync channel as
one line, then `os._exit` — a forked child must never return into the CLI's code.
"""

from __future__ import annotations

import os

from pyrunc.linux import syscalls
from pyrunc.linux.consts import (
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
)
from pyrunc.process import attrs, sync
from pyrunc.process.launchspec import LaunchSpec
from pyrunc.spec.model import Config, Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # the C module: `signal` itself builds enums, ms of every create

if TYPE_CHECKING:
    from typing import NoReturn

    from pyrunc.seccomp import Filter


def run_intermediate(chan: sync.SyncChannel, spec: LaunchSpec,
                     ns_fds: list[tuple[str, int]]) -> NoReturn:
    """Enter the namespaces in the kernel's order, then fork the init and exit."""
    from pyrunc import namespaces, trace

    trace.set_role("intermediate")

    step = "load the container process's modules"
    try:
        # Here rather than in the runtime: the runtime is meanwhile moving this process into
        # the container's cgroup, and the first such move of a burst waits out an RCU grace
        # period (cgroup_threadgroup_rwsem, several ms) in which these imports come for free.
        # This process is still in the host's namespaces with the runtime's privileges.
        preload_modules(spec.config)
        # Also in that wait: building linux.seccomp with libseccomp (a few ms for a default
        # profile of containerd or podman). Only user-space memory, which the init inherits;
        # the init loads it into the kernel when its turn comes.
        step = "build the seccomp filter"
        seccomp_filter = attrs.build_seccomp_filter(spec.config)
        step = "create namespaces"
        # Before anything of the container can see this process: no container process may open
        # /proc/<pid>/{exe,fd,mem,root} of ours (the interpreter, host fds) until execve.
        attrs.enter_guarded(chan, _fds_to_keep(spec, ns_fds), "container process")
        syscalls.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, step="set parent-death signal")
        chan.expect(sync.CGROUP_JOINED)
        process = spec.config.process
        assert process is not None
        if process.oom_score_adj is not None:
            _write_oom_score_adj(process.oom_score_adj)

        linux = spec.config.linux
        if linux.creates("user"):
            # Namespaces given by path belong to the host's (or another) user namespace: join
            # them while we still hold the host's capabilities, then create ours.
            namespaces.join_namespaces(ns_fds)
            namespaces.create_user_namespace()
            rootless = os.geteuid() != 0
            if rootless:
                # An unprivileged parent can write our /proc files (uid_map, setgroups) only
                # while we are dumpable: for those writes and no longer (as runc does).
                syscalls.prctl(PR_SET_DUMPABLE, 1, step="let the parent write the id maps")
            chan.send(sync.IDMAP_REQUEST)
            chan.expect(sync.IDMAP_DONE)
            if rootless:
                syscalls.prctl(PR_SET_DUMPABLE, 0, step="make the container process "
                               "non-dumpable again")
        else:
            # A user namespace joined by path comes first: it grants the capabilities over the
            # namespaces it owns that joining those needs.
            namespaces.join_namespaces(ns_fds, only={"user"})
        if linux.namespace("user") is not None:
            # Become root of the user namespace so the rest of the setup is privileged in it.
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        namespaces.join_namespaces(ns_fds)
        flags = namespaces.unshare_flags(linux, exclude=("user",))
        if flags:
            syscalls.unshare(flags, step="create namespaces " + ",".join(
                t for t in namespaces.CLONE_FLAGS if linux.creates(t) and t != "user"))
        if linux.creates("time") and linux.time_offsets:
            # Written by the runtime: it holds CAP_SYS_TIME over the new time namespace even
            # when that belongs to a new user namespace, where this process's /proc/self files
            # are no longer its own (it is non-dumpable).
            chan.send(sync.TIMENS_REQUEST)
            chan.expect(sync.TIMENS_DONE)

        attrs.fork_and_report(chan, lambda: run_init(chan, spec, seccomp_filter), "init")
    except BaseException as exc:  # noqa: BLE001 - everything is reported, nothing escapes
        attrs.report_and_exit(chan, exc, step)


def _write_oom_score_adj(value: int) -> None:
    """Through a procfs handle of this process's own, as every /proc write of the runtime."""
    from pyrunc.linux import procfs

    step = f"set oom_score_adj to {value}"
    try:
        handle = procfs.open_procfs()
    except OSError as exc:
        raise syscalls.describe_oserror(exc, step) from None
    try:
        procfs.write_file(handle, "self/oom_score_adj", str(value).encode(), step)
    finally:
        os.close(handle)


# --- the init process --------------------------------------------------------------------------

def run_init(chan: sync.SyncChannel, spec: LaunchSpec,
             seccomp_filter: Filter | None) -> NoReturn:
    """Build the container around this process, park until start, exec the user program.

    `seccomp_filter` is linux.seccomp, already built (not loaded) by the intermediate."""
    from pyrunc import trace

    offset = spec.config.linux.time_offsets.get("monotonic", (0, 0))[0] \
        if spec.config.linux.creates("time") else 0
    trace.set_role("init", offset)
    steps = _Steps()
    step = "container init"
    try:
        config = spec.config
        process = config.process
        assert process is not None
        os.setsid()
        step = steps.enter("open procfs")
        from pyrunc.linux import procfs

        procfs_fd = procfs.open_procfs()
        step = steps.enter("set up namespaces")
        _setup_in_namespaces(spec)

        step = steps.enter("prepare rootfs")
        from pyrunc import rootfs
        from pyrunc.process import mountsource

        rootfs.prepare_rootfs(config, request_source=lambda src: mountsource.request(chan, src),
                              request_tree=lambda i: mountsource.request_idmapped(chan, i))

        hook_state: dict[str, object] = {}
        if _needs_the_runtime_after_mounts(config):
            step = steps.enter("run createRuntime hooks")
            chan.send(sync.RUN_HOOKS)
            hook_state = chan.expect(sync.HOOKS_DONE)["state"]
        if config.hooks["createContainer"]:
            step = steps.enter("run createContainer hooks")
            from pyrunc import hooks

            hooks.run_hooks("createContainer", config.hooks["createContainer"], hook_state)

        step = steps.enter("enter rootfs")
        rootfs.enter_rootfs(config, no_pivot=spec.no_pivot)
        if process.terminal:
            step = steps.enter("set up terminal")
            _setup_terminal(spec, process)
        if config.hostname:
            syscalls.sethostname(config.hostname)
        if config.domainname:
            syscalls.setdomainname(config.domainname)
        step = steps.enter("finish rootfs")
        rootfs.finish_rootfs(config, procfs_fd)

        step = steps.enter("set up process")
        attrs.set_rlimits(process)
        if config.linux.memory_policy is not None:
            policy = config.linux.memory_policy   # inherited by the program across execve
            syscalls.set_mempolicy(policy.mode | policy.flags, policy.nodes)
        # Before a seccomp filter can be loaded: profiles written before close_range(2)
        # existed deny it.
        attrs.close_inherited_fds(3 + spec.listen_fds + spec.preserve_fds)
        if seccomp_filter is not None and not process.no_new_privileges:
            # Loading a filter without no_new_privs needs CAP_SYS_ADMIN: before caps are dropped.
            attrs.hand_over_listener(chan, seccomp_filter.load())
            seccomp_filter = None
        if process.no_new_privileges:
            syscalls.prctl(PR_SET_NO_NEW_PRIVS, 1, step="set no_new_privs")
        attrs.become_user(process, fix_stdio=spec.fix_stdio_owner and not process.terminal)
        attrs.enter_cwd(process.cwd)
        env = attrs.build_env(process, spec.listen_fds)
        executable = attrs.find_executable(process.args[0], env)
        if seccomp_filter is not None and seccomp_filter.notify:
            # The notification fd must reach its agent through the runtime, which is still
            # here until READY: with SCMP_ACT_NOTIFY rules the filter is loaded now (as runc
            # always does), not after the wait.
            attrs.hand_over_listener(chan, seccomp_filter.load())
            seccomp_filter = None
        steps.enter("wait for start")
        chan.send(sync.READY)
        chan.close()
    except BaseException as exc:  # noqa: BLE001
        attrs.report_and_exit(chan, exc, step)

    # From here on the runtime has gone: errors can only be logged.
    try:
        from pyrunc.process import park

        park.before_waiting()
        _wait_for_start(spec.fifo_fd, procfs_fd)
        raw_process = config.raw.get("process") or {}
        if raw_process.get("apparmorProfile") or raw_process.get("selinuxLabel"):
            from pyrunc import lsm

            lsm.apply_exec_labels(procfs_fd, raw_process.get("apparmorProfile"),
                                  raw_process.get("selinuxLabel"))
        os.close(procfs_fd)
        if seccomp_filter is not None and process.no_new_privileges:
            # As runc does: after the wait, before the startContainer hooks, which the filter
            # then covers along with the program.
            seccomp_filter.load()
        if config.hooks["startContainer"]:
            from pyrunc import hooks

            hook_state["status"] = "created"
            hooks.run_hooks("startContainer", config.hooks["startContainer"], hook_state,
                            default_env=[f"{k}={v}" for k, v in env.items()])
        attrs.reset_signals_for_exec()
        attrs.execve(executable, list(process.args), env)
    except BaseException as exc:  # noqa: BLE001
        from pyrunc import log
        from pyrunc.errors import describe

        log.error(describe(exc, f"start container {spec.container_id}"))
        os._exit(127)


def _needs_the_runtime_after_mounts(config: Config) -> bool:
    """Whether the runtime has work between the mounts and pivot_root: the prestart and
    createRuntime hooks, moving linux.netDevices in, and the state every later hook receives.
    Without any, the round trip is skipped."""
    return bool(config.linux.net_devices) or any(
        config.hooks[phase] for phase in ("prestart", "createRuntime", "createContainer",
                                          "startContainer"))


class _Steps:
    """Names the init's steps; with --debug each one is logged with the time it started."""

    def __init__(self) -> None:
        import time

        self._clock = time.monotonic
        self._start = self._clock()

    def enter(self, name: str) -> str:
        from pyrunc import log

        log.debug(f"init: {name}", elapsed_ms=round((self._clock() - self._start) * 1000, 2))
        from pyrunc import trace

        if trace.on:
            trace.emit(f"init: {name}")
        return name


def preload_modules(config: Config) -> None:
    """Import everything the init will need, before the process that imports it refuses imports.

    After pivot_root the host's files are gone, and even before it the init may have become a
    mapped user that cannot read the Python installation (say, under a 0700 /root).
    """
    from pyrunc.process import park

    park.drop_config_validator()   # first: the imports below reuse its memory
    import errno  # noqa: F401 - used by _give_stdio_to
    import stat  # noqa: F401 - used by _check_executable
    import time  # noqa: F401 - used by _Steps

    from pyrunc import capabilities, devices, errors, log, lsm, namespaces, rootfs  # noqa: F401
    from pyrunc.linux import procfs  # noqa: F401
    from pyrunc.process import mountsource  # noqa: F401

    if any("tmpcopyup" in m.options for m in config.mounts):
        import shutil  # noqa: F401 - rootfs copies the directory's contents up
        import tempfile  # noqa: F401

    capabilities.last_cap()  # reads /proc/sys/kernel/cap_last_cap while the host's /proc is there
    if any(config.hooks[phase] for phase in ("createContainer", "startContainer")):
        from pyrunc import hooks

        hooks.preload()
    if config.process is not None and config.process.terminal:
        from pyrunc import terminal  # noqa: F401
    if config.raw.get("linux", {}).get("seccomp"):
        from pyrunc import seccomp

        seccomp.preload()   # dlopen libseccomp while the host's libraries are reachable


def _setup_in_namespaces(spec: LaunchSpec) -> None:
    """What must happen inside the new namespaces but before the rootfs exists."""
    from pyrunc import namespaces

    linux = spec.config.linux
    if linux.creates("network"):
        namespaces.bring_up_loopback()
    if not spec.no_new_keyring:
        try:
            syscalls.join_session_keyring(f"_ses.{spec.container_id}")
        except syscalls.KernelError as exc:
            # Keyrings are optional: kernels without them (ENOSYS) or denying them (EACCES in
            # some user namespaces) still run containers, as runc does.
            if exc.errno not in (38, 13):
                raise


def _setup_terminal(spec: LaunchSpec, process: Process) -> None:
    """Create the pty inside the container and hand its master to whoever listens."""
    from pyrunc import terminal

    if spec.console_fd is None:
        raise RuntimeError("process.terminal is set but there is no console socket")
    master, slave, slave_path = terminal.create_container_pty(process.console_size)
    terminal.chown_terminal(slave, process.user.uid)
    terminal.send_console_master(spec.console_fd, master, slave_path)
    from pyrunc import rootfs

    if rootfs.has_mount_namespace(spec.config):   # else the mount would land in the host's
        terminal.bind_console(slave_path, slave_fd=slave)
    terminal.become_terminal_owner(slave)


def _wait_for_start(fifo_fd: int, procfs_fd: int) -> None:
    """Block until `pyrunc start` opens the exec fifo for reading, then tell it we are going.

    The init holds only an O_PATH fd of the fifo itself — not of the state directory, which a
    cwd of /proc/self/fd/N or `..` could climb out of — and opens it for writing through procfs.
    """
    from pyrunc.linux import procfs

    fd = procfs.reopen(procfs_fd, fifo_fd, os.O_WRONLY)
    os.write(fd, b"0")
    os.close(fd)
    os.close(fifo_fd)


def _fds_to_keep(spec: LaunchSpec, ns_fds: list[tuple[str, int]]) -> set[int]:
    """The fds the container's processes legitimately hold until execve (with stdio, the
    channel and the log and trace fds, which `attrs.enter_guarded` adds); all others go."""
    keep = {spec.fifo_fd, *(fd for _, fd in ns_fds), *spec.keep_fds}
    keep.update(range(3, 3 + spec.listen_fds + spec.preserve_fds))
    if spec.console_fd is not None:
        keep.add(spec.console_fd)
    return keep
