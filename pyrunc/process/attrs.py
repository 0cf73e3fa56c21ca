"""Process attributes, shared by a container's init and by processes `exec` adds to it.

What makes a process the one config.json describes, applied in an order the kernel accepts:
rlimits, capabilities and identity (`become_user`), the working directory (checked to be inside
the container), the environment, the executable, the seccomp filter, and the signal state
execve inherits. Also the two guards every process pyrunc forks into a container needs before
it touches anything there: `close_fds_except` and `forbid_imports`.
"""

from __future__ import annotations

import os
import resource

from pyrunc import trace
from pyrunc.linux import syscalls
from pyrunc.linux.consts import PR_SET_DUMPABLE, PR_SET_KEEPCAPS
from pyrunc.process import sync
from pyrunc.spec.model import Config, Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
else:
    import _signal as signal  # the C module: `signal` itself builds enums, ms of every create

if TYPE_CHECKING:
    from typing import NoReturn

    from pyrunc.seccomp import Filter


class _NoImportsInTheContainer:
    """A meta-path finder that refuses every import (see `forbid_imports`)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        raise ImportError(f"pyrunc: refusing to import {name!r} inside the container: every "
                          "module the container's processes run must be loaded before they "
                          "enter it")


def forbid_imports() -> None:
    """Make any further import fail, before this process joins or builds the container.

    Once the process is in another mount namespace, or after pivot_root, `import x` would search
    sys.path inside the *container's* files, and run what an image planted there with the
    runtime's privileges. Everything the children need is imported beforehand
    (`preload_modules`); a module forgotten there fails loudly instead of loading from the image.
    """
    import sys

    sys.path[:] = []
    sys.path_hooks[:] = []
    sys.path_importer_cache.clear()
    sys.meta_path[:] = [_NoImportsInTheContainer()]


def _rlimit_value(value: int) -> int:
    """OCI writes "unlimited" as the kernel's RLIM_INFINITY, 2**64-1; Python spells it -1."""
    return resource.RLIM_INFINITY if value >= 2**63 else value


def build_seccomp_filter(config: Config) -> Filter | None:
    """Build (not load) linux.seccomp with libseccomp, so a bad profile fails create."""
    profile = config.raw.get("linux", {}).get("seccomp")
    if not profile:
        return None
    from pyrunc import seccomp

    return seccomp.build_filter(profile)


def set_rlimits(process: Process) -> None:
    for rlimit in process.rlimits:
        number = getattr(resource, rlimit.type, None)
        if number is None:
            raise ValueError(f"unknown rlimit type {rlimit.type}")
        try:
            with trace.span("rlimit", type=rlimit.type, soft=rlimit.soft, hard=rlimit.hard):
                resource.setrlimit(number, (_rlimit_value(rlimit.soft),
                                            _rlimit_value(rlimit.hard)))
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


def become_user(process: Process, *, fix_stdio: bool) -> None:
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
        with trace.span("set user", uid=user.uid, gid=user.gid,
                        groups=list(user.additional_gids)):
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


def enter_cwd(cwd: str) -> None:
    """chdir to process.cwd, then check that we really are inside the container's root.

    A cwd such as /proc/self/fd/N follows a magic link: had any host directory fd still been
    open, it would land outside the root (the CVE-2024-21626 class). The kernel then reports
    the directory as unreachable: getcwd(2) fails or returns a path that does not start at "/".
    """
    step = f"chdir to cwd ({cwd!r}) set in config.json"
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise syscalls.KernelError(exc.errno or 0, step, cwd) from None
    try:
        where = os.getcwd()
    except OSError as exc:
        raise syscalls.KernelError(exc.errno or 0, f"{step}: the directory is outside the "
                                   "container's root", cwd) from None
    if not where.startswith("/"):
        raise syscalls.KernelError(2, f"{step}: the directory is outside the container's root",
                                   cwd)


def build_env(process: Process, listen_fds: int = 0) -> dict[str, str]:
    """The program's environment: config env, HOME if missing, LISTEN_FDS for socket activation."""
    env: dict[str, str] = {}
    for item in process.env:
        key, _, value = item.partition("=")
        env[key] = value
    if not env.get("HOME"):
        # Unset or empty: runc fills it in from the container's /etc/passwd either way.
        env["HOME"] = _home_of(process.user.uid)
    if listen_fds:
        env["LISTEN_FDS"] = str(listen_fds)
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
        try:
            _check_executable(name, name)
        except FileNotFoundError:
            raise FileNotFoundError(f"exec {name}: no such file or directory") from None
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
    # With the effective ids and capabilities, as execve will check: a user holding
    # CAP_DAC_OVERRIDE may run a binary whose x bits are not its own (faccessat2 AT_EACCESS).
    if not os.access(path, os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise PermissionError(f'exec: "{name}": permission denied')


def close_inherited_fds(first: int) -> None:
    """Mark every fd >= first close-on-exec: only stdio and the passed fds reach the program.

    Close-on-exec rather than close: the sync channel and the fifo are still needed until then.
    """
    syscalls.close_range(first, 0xFFFFFFFF, cloexec=True)
    for fd in range(3, first):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass


def close_fds_except(keep: set[int]) -> None:
    """Close every fd not in `keep`, before this process touches any path of the container.

    Close, not close-on-exec: an fd that is merely marked can still be reached through
    /proc/self/fd/N until execve (the CVE-2024-21626 class).
    """
    first = 0
    for fd in sorted(keep | {0xFFFFFFFF + 1}):
        if fd > first:
            syscalls.close_range(first, min(fd - 1, 0xFFFFFFFF))
        first = fd + 1


def default_signal_handlers() -> None:
    """Drop the Python handlers inherited from the runtime (a foreground run's forwarding,
    Python's own SIGINT → KeyboardInterrupt): a signal to the parked init must act on it, e.g.
    SIGINT kill it with status 130, not be forwarded or turned into an exception."""
    for sig in signal.valid_signals():
        try:
            if callable(signal.getsignal(sig)):
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass


def reset_signals_for_exec() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; ignored signals survive execve, so undo that."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def execve(executable: str, args: list[str], env: dict[str, str]) -> NoReturn:
    """The last step: the program replaces this process (traced before it, there is no after)."""
    if trace.on:
        trace.emit("execve", path=executable, args=args)
    os.execve(executable, args, env)


def hand_over_listener(chan: sync.SyncChannel, listener_fd: int | None) -> None:
    """Send a seccomp user-notification fd to the runtime, which passes it to listenerPath."""
    if listener_fd is None:
        return
    try:
        chan.send(sync.SECCOMP_LISTENER, fds=[listener_fd])
        chan.expect(sync.SECCOMP_LISTENER_DONE)
    finally:
        os.close(listener_fd)


def enter_guarded(chan: sync.SyncChannel, keep: set[int], what: str) -> None:
    """The first steps of every process pyrunc forks toward a container, before it touches
    anything of it: non-dumpable (no container process may open our /proc/<pid>/{exe,fd,mem}),
    no further imports, and only the fds in `keep` (plus stdio, the channel and the log and
    trace fds) left open."""
    from pyrunc import log, trace

    syscalls.prctl(PR_SET_DUMPABLE, 0, step=f"make the {what} non-dumpable")
    forbid_imports()
    keep = keep | {0, 1, 2, chan.fileno()}
    for fd in (log.log_fd(), trace.trace_fd()):
        if fd is not None:
            keep.add(fd)
    close_fds_except(keep)
    default_signal_handlers()


def report_and_exit(chan: sync.SyncChannel, exc: BaseException, where: str) -> NoReturn:
    """Send the failure to the runtime as one line and leave without running any cleanup code."""
    try:
        from pyrunc.errors import describe

        chan.send(sync.ERROR, message=describe(exc, where))
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child
        pass
    os._exit(1)


def fork_and_report(chan: sync.SyncChannel, child: Callable[[], object], role: str) -> NoReturn:
    """Fork the next process (the pid and time namespaces apply only to children), tell the
    runtime its pid, and leave: the runtime is our subreaper and will see the child."""
    from pyrunc import trace

    pid = os.fork()
    if pid == 0:
        trace.set_role(role)
        try:
            child()
        finally:
            os._exit(1)
    if trace.on:
        trace.emit(f"fork {role}", child=pid)
    chan.send(sync.INIT_PID, pid=pid)
    os._exit(0)
