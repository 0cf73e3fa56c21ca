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
import resource
import signal
from typing import Any, NoReturn

from pyrunc.linux import syscalls
from pyrunc.linux.consts import (
    CLONE_NEWUSER,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
)
from pyrunc.process import sync
from pyrunc.process.launchspec import LaunchSpec
from pyrunc.spec.model import Config, Process


def _report_and_exit(chan: sync.SyncChannel, exc: BaseException, where: str) -> NoReturn:
    """Send the failure to the runtime as one line and leave without running any cleanup code."""
    try:
        from pyrunc.errors import describe

        chan.send(sync.ERROR, message=describe(exc, where))
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child
        pass
    os._exit(1)


# --- the intermediate process ------------------------------------------------------------------

def run_intermediate(chan: sync.SyncChannel, spec: LaunchSpec,
                     ns_fds: list[tuple[str, int]]) -> NoReturn:
    """Enter the namespaces in the kernel's order, then fork the init and exit."""
    from pyrunc import namespaces

    try:
        _default_signal_handlers()
        syscalls.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, step="set parent-death signal")
        chan.expect(sync.CGROUP_JOINED)
        process = spec.config.process
        assert process is not None
        if process.oom_score_adj is not None:
            _write_oom_score_adj(process.oom_score_adj)

        linux = spec.config.linux
        namespaces.join_namespaces(ns_fds, only={"user"})
        if linux.creates("user"):
            syscalls.unshare(CLONE_NEWUSER, step="create user namespace")
            chan.send(sync.IDMAP_REQUEST)
            chan.expect(sync.IDMAP_DONE)
        if linux.namespace("user") is not None:
            # Become root of the user namespace so the rest of the setup is privileged in it.
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        namespaces.join_namespaces(ns_fds)
        flags = namespaces.unshare_flags(linux, exclude=("user",))
        if flags:
            syscalls.unshare(flags, step="create namespaces " + ",".join(
                t for t in namespaces.CLONE_FLAGS if linux.creates(t) and t != "user"))
        if linux.creates("time"):
            namespaces.write_time_offsets(linux)

        pid = os.fork()
        if pid == 0:
            try:
                run_init(chan, spec)
            finally:
                os._exit(1)
        chan.send(sync.INIT_PID, pid=pid)
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - everything is reported, nothing escapes
        _report_and_exit(chan, exc, "create namespaces")


def _write_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as exc:
        raise syscalls.KernelError(exc.errno or 0, f"set oom_score_adj to {value}") from None


# --- the init process --------------------------------------------------------------------------

def run_init(chan: sync.SyncChannel, spec: LaunchSpec) -> NoReturn:
    """Build the container around this process, park until start, exec the user program."""
    steps = _Steps()
    step = "container init"
    try:
        config = spec.config
        process = config.process
        assert process is not None
        os.setsid()
        step = steps.enter("set up namespaces")
        _setup_in_namespaces(spec)

        step = steps.enter("prepare rootfs")
        from pyrunc import rootfs

        rootfs.prepare_rootfs(config)

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
        rootfs.finish_rootfs(config)

        step = steps.enter("set up process")
        _set_rlimits(process)
        if config.linux.memory_policy is not None:
            policy = config.linux.memory_policy   # inherited by the program across execve
            syscalls.set_mempolicy(policy.mode | policy.flags, policy.nodes)
        # Before a seccomp filter can be loaded: profiles written before close_range(2)
        # existed deny it.
        _close_inherited_fds(3 + spec.listen_fds + spec.preserve_fds)
        seccomp_filter = _build_seccomp_filter(config)
        if seccomp_filter is not None and not process.no_new_privileges:
            # Loading a filter without no_new_privs needs CAP_SYS_ADMIN: before caps are dropped.
            seccomp_filter.load()
        if process.no_new_privileges:
            syscalls.prctl(PR_SET_NO_NEW_PRIVS, 1, step="set no_new_privs")
        _become_user(process, fix_stdio=spec.fix_stdio_owner and not process.terminal)
        _chdir(process.cwd)
        env = build_env(process, spec)
        executable = find_executable(process.args[0], env)
        steps.enter("wait for start")
        chan.send(sync.READY)
        chan.close()
    except BaseException as exc:  # noqa: BLE001
        _report_and_exit(chan, exc, step)

    # From here on the runtime has gone: errors can only be logged.
    try:
        _wait_for_start(spec.state_dir_fd)
        if config.hooks["startContainer"]:
            from pyrunc import hooks

            hook_state["status"] = "created"
            hooks.run_hooks("startContainer", config.hooks["startContainer"], hook_state)
        _reset_signals()
        if seccomp_filter is not None and process.no_new_privileges:
            seccomp_filter.load()   # as late as possible: the filter then covers only the program
        os.execve(executable, list(process.args), env)
    except BaseException as exc:  # noqa: BLE001
        from pyrunc import log
        from pyrunc.errors import describe

        log.error(describe(exc, f"start container {spec.container_id}"))
        os._exit(127)


class _Steps:
    """Names the init's steps; with --debug each one is logged with the time it started."""

    def __init__(self) -> None:
        import time

        self._clock = time.monotonic
        self._start = self._clock()

    def enter(self, name: str) -> str:
        from pyrunc import log

        log.debug(f"init: {name}", elapsed_ms=round((self._clock() - self._start) * 1000, 2))
        return name


def preload_modules(config: Config) -> None:
    """Import everything the init will need, in the runtime before it forks.

    After pivot_root the host's files are gone, and even before it the init may have become a
    mapped user that cannot read the Python installation (say, under a 0700 /root).
    """
    import stat  # noqa: F401 - used by _check_executable

    from pyrunc import capabilities, errors, log, rootfs  # noqa: F401

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
    terminal.bind_console(slave_path)
    terminal.become_terminal_owner(slave)


def _rlimit_value(value: int) -> int:
    """OCI writes "unlimited" as the kernel's RLIM_INFINITY, 2**64-1; Python spells it -1."""
    return resource.RLIM_INFINITY if value >= 2**63 else value


def _build_seccomp_filter(config: Config) -> Any:
    """Build (not load) linux.seccomp with libseccomp, so a bad profile fails create."""
    profile = config.raw.get("linux", {}).get("seccomp")
    if not profile:
        return None
    from pyrunc import seccomp

    return seccomp.build_filter(profile)


def _set_rlimits(process: Process) -> None:
    for rlimit in process.rlimits:
        number = getattr(resource, rlimit.type, None)
        if number is None:
            raise ValueError(f"unknown rlimit type {rlimit.type}")
        try:
            resource.setrlimit(number, (_rlimit_value(rlimit.soft), _rlimit_value(rlimit.hard)))
        except (OSError, ValueError, OverflowError) as exc:
            err = getattr(exc, "errno", None) or 1
            raise syscalls.KernelError(err, f"setrlimit {rlimit.type} to soft={rlimit.soft} "
                                            f"hard={rlimit.hard}") from None


def _give_stdio_to(uid: int) -> None:
    """Let a non-root program reopen its own stdio (/dev/stdout, /proc/self/fd/1), as runc does.

    /dev/null is left alone, and so is anything the kernel will not let us chown (a file
    owned by an unmapped user: EINVAL; a read-only or foreign filesystem: EPERM, EROFS).
    """
    import errno
    import stat

    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_uid == uid or (stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)):
            continue
        try:
            os.fchown(fd, uid, -1)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
                raise syscalls.KernelError(exc.errno or 0, f"chown stdio fd {fd} to uid {uid}") \
                    from None


def _become_user(process: Process, *, fix_stdio: bool) -> None:
    """Capabilities and identity, in the order that keeps the capabilities we want to keep."""
    from pyrunc import capabilities

    caps = process.capabilities
    if caps is not None:
        capabilities.apply_bounding(caps)
    syscalls.prctl(PR_SET_KEEPCAPS, 1, step="keep capabilities across setuid")
    user = process.user
    if fix_stdio:
        _give_stdio_to(user.uid)
    try:
        os.setgroups(list(user.additional_gids))
    except PermissionError:
        # In a user namespace whose setgroups is denied; only fatal if groups were asked for.
        if user.additional_gids:
            raise
    try:
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as exc:
        raise syscalls.KernelError(exc.errno or 0, f"set user to uid={user.uid} gid={user.gid}") \
            from None
    syscalls.prctl(PR_SET_KEEPCAPS, 0, step="clear keep-capabilities")
    if caps is not None:
        capabilities.apply_capabilities(caps)
    if user.umask is not None:
        os.umask(user.umask)
    else:
        os.umask(0o022)


def _chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise syscalls.KernelError(exc.errno or 0, f"chdir to cwd ({cwd!r}) set in config.json",
                                   cwd) from None


def build_env(process: Process, spec: LaunchSpec) -> dict[str, str]:
    """The program's environment: config env, HOME if missing, LISTEN_FDS for socket activation."""
    env: dict[str, str] = {}
    for item in process.env:
        key, _, value = item.partition("=")
        env[key] = value
    if "HOME" not in env:
        env["HOME"] = _home_of(process.user.uid)
    if spec.listen_fds:
        env["LISTEN_FDS"] = str(spec.listen_fds)
        env["LISTEN_PID"] = "1"
    return env


def _home_of(uid: int) -> str:
    """The uid's home directory from the container's /etc/passwd, or "/" (what runc does)."""
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def find_executable(name: str, env: dict[str, str]) -> str:
    """Resolve args[0] in the container the way execvp would, with runc's error wording.

    Done before `create` returns, so "not found" is a create-time error (podman maps it to 127).
    """
    if "/" in name:
        _check_executable(name, name)
        return name
    for directory in env.get("PATH", "").split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            _check_executable(candidate, name)
            return candidate
        except OSError:
            continue
    raise FileNotFoundError(f'exec: "{name}": executable file not found in $PATH')


def _check_executable(path: str, name: str) -> None:
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f'exec: "{name}": stat {path}: no such file or directory') from None
    if stat.S_ISDIR(st.st_mode):
        raise PermissionError(f'exec: "{name}": is a directory: permission denied')
    if not os.access(path, os.X_OK):
        raise PermissionError(f'exec: "{name}": permission denied')


def _close_inherited_fds(first: int) -> None:
    """Mark every fd >= first close-on-exec: only stdio and the passed fds reach the program.

    Close-on-exec rather than close: the sync channel and the fifo are still needed until then.
    """
    syscalls.close_range(first, 0xFFFFFFFF, cloexec=True)
    for fd in range(3, first):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass


def _wait_for_start(state_dir_fd: int) -> None:
    """Block until `pyrunc start` opens the exec fifo for reading, then tell it we are going."""
    from pyrunc.container.state import EXEC_FIFO

    fd = os.open(EXEC_FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=state_dir_fd)
    os.write(fd, b"0")
    os.close(fd)
    os.close(state_dir_fd)


def _default_signal_handlers() -> None:
    """Drop the Python handlers inherited from the runtime (a foreground run's forwarding,
    Python's own SIGINT → KeyboardInterrupt): a signal to the parked init must act on it, e.g.
    SIGINT kill it with status 130, not be forwarded or turned into an exception."""
    for sig in signal.valid_signals():
        try:
            if callable(signal.getsignal(sig)):
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass


def _reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; ignored signals survive execve, so undo that."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
