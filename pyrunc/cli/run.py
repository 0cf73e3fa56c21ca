"""`pyrunc run`: create and start a container; in the foreground, wait for it like a shell would.

Two forms: runc's `pyrunc run [-b DIR] ID`, and `pyrunc run DIR` for a person with a bundle —
the id is then the directory's name, made unique under --root.

In the foreground pyrunc is the container's child subreaper: it forwards every signal it
receives to the init, proxies the terminal when `process.terminal` is set, waits for the init,
deletes the container (unless --keep) and exits with the init's status — 128+N if it was killed
by signal N, like a shell.
"""

from __future__ import annotations

import os

from pyrunc.cli.create import FLAGS as CREATE_FLAGS
from pyrunc.cli.create import create_options, enter_bundle
from pyrunc.cli.flags import Flag, UsageError
from pyrunc.container.state import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # the C module: `signal` itself builds enums, ms of every create

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import Any

    from pyrunc.cli.main import Context
    from pyrunc.terminal import TerminalProxy

USAGE = "[command options] <container-id> | <bundle-dir>"
DESCRIPTION = """\
   Create and start a container. In the foreground pyrunc passes signals on, waits for
   the container, deletes it and exits with its status. `pyrunc run DIR` runs the bundle in
   DIR with an id made from the directory's name.
"""
FLAGS = [f for f in CREATE_FLAGS if f.key != "detach"] + [
    Flag("detach, d", help="return once the container runs instead of waiting for it"),
    Flag("keep", help="keep the stopped container (for `state`, `delete` later)"),
    Flag("no-subreaper", help="do not adopt the container's orphaned processes"),
]

#: Signals a foreground run keeps for itself rather than forwarding.
_NOT_FORWARDED = {signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG, signal.SIGKILL, signal.SIGSTOP}


def _id_and_bundle(ctx: Context, opts: dict[str, Any], args: list[str]) -> str:
    """Work out the container id; in the `run DIR` form also set opts['bundle']."""
    if len(args) != 1:
        raise UsageError('"run" requires exactly 1 argument(s)')
    arg = args[0]
    if not opts["bundle"] and os.path.isfile(os.path.join(arg, "config.json")) and \
            ("/" in arg or os.path.isdir(arg)):
        opts["bundle"] = arg
        return unique_id(ctx.root, os.path.basename(os.path.abspath(arg)))
    return arg


def unique_id(root: str, name: str) -> str:
    """The bundle directory's name as an id: odd characters replaced, a suffix if taken."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-")
    base = "".join(c if c in allowed else "-" for c in name).strip(".") or "container"
    candidate, n = base, 1
    while os.path.exists(os.path.join(root, candidate)):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import lifecycle
    from pyrunc.linux import syscalls
    from pyrunc.linux.consts import PR_SET_CHILD_SUBREAPER

    if ctx.systemd_cgroup:
        raise ContainerError("--systemd-cgroup: the systemd cgroup driver is not supported yet; "
                             "use a plain cgroupsPath without --systemd-cgroup")
    container_id = _id_and_bundle(ctx, opts, args)
    options = create_options(opts)
    enter_bundle(options.bundle)
    if opts["detach"]:
        lifecycle.create(ctx.root, container_id, options, rootless=ctx.is_rootless)
        lifecycle.start(ctx.root, container_id)
        return 0

    from pyrunc.spec.load import read_config

    options.foreground = True
    # From now on a signal must reach the container, not kill pyrunc half-way and orphan it:
    # held until the container's process exists, then passed on.
    pending: list[int] = []
    _handle_signals(lambda signum, _frame: pending.append(signum))
    terminal = bool((read_config(options.bundle).get("process") or {}).get("terminal"))
    console_ours = console_theirs = None
    if terminal and options.console_socket is None:
        import socket

        console_ours, console_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        options.console_fd = console_theirs.fileno()
    try:
        pid = lifecycle.create(ctx.root, container_id, options,
                               rootless=ctx.is_rootless)
    finally:
        if console_theirs is not None:
            console_theirs.close()
    # create() made us a subreaper for its own cleanup; --no-subreaper turns that off now.
    if opts["no_subreaper"]:
        syscalls.prctl(PR_SET_CHILD_SUBREAPER, 0, step="stop being a child subreaper")
    proxy = None
    try:
        if console_ours is not None:
            from pyrunc import terminal as term

            master = term.receive_console_master(console_ours, timeout=10)
            console_ours.close()
            proxy = term.TerminalProxy(master)
        _forward_signals(pid, proxy)
        lifecycle.start(ctx.root, container_id)
        for signum in pending:   # as runc does: signals that came early go to the program
            os.kill(pid, signum)
        status = _wait_in_foreground(pid, proxy)
    except BaseException:
        _quiet_delete(ctx.root, container_id)
        raise
    finally:
        if proxy is not None:
            proxy.close()
    if not opts["keep"]:
        _quiet_delete(ctx.root, container_id)
    return status


def _quiet_delete(root: str, container_id: str) -> None:
    from pyrunc import log
    from pyrunc.container import lifecycle

    try:
        lifecycle.delete(root, container_id, force=True)
    except Exception as exc:  # noqa: BLE001 - report, the exit status matters more
        log.warning(f"delete container {container_id}: {exc}")


def _forward_signals(pid: int, proxy: TerminalProxy | None) -> None:
    """Every signal pyrunc receives goes to the init; SIGWINCH resizes the terminal instead."""

    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGWINCH:
            if proxy is not None:
                proxy.resize()
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    _handle_signals(forward)


def _handle_signals(handler: Callable[[int, FrameType | None], None]) -> None:
    """Install `handler` for every signal a foreground run passes on (and SIGWINCH)."""
    for sig in signal.valid_signals():
        if sig not in _NOT_FORWARDED or sig == signal.SIGWINCH:
            try:
                signal.signal(sig, handler)
            except (OSError, ValueError):
                pass


def _wait_in_foreground(pid: int, proxy: TerminalProxy | None) -> int:
    """Pump the terminal and reap until the init exits; return the shell-style status."""
    import select

    from pyrunc.cli.main import resume_gc
    from pyrunc.linux import syscalls

    resume_gc()   # the container may run for days, and the terminal proxy loops meanwhile

    pidfd = syscalls.pidfd_open(pid)
    try:
        while True:
            if proxy is not None:
                poller = select.poll()
                for fd, events in proxy.fds_to_watch().items():
                    poller.register(fd, events)
                poller.register(pidfd, select.POLLIN)
                for fd, events in poller.poll():
                    if fd != pidfd:
                        proxy.handle_ready(fd, events)
            else:
                select.select([pidfd], [], [])
            status = _reap(pid)
            if status is not None:
                if proxy is not None:
                    proxy.drain()
                return status
    finally:
        os.close(pidfd)


def _reap(pid: int) -> int | None:
    """Reap any orphans handed to us; return the init's status once it has exited."""
    while True:
        try:
            reaped, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            # Not our child (--no-subreaper): it is gone once its pidfd said so.
            return 0 if _gone(pid) else None
        if reaped == 0:
            return None
        if reaped == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


def _gone(pid: int) -> bool:
    from pyrunc.container.state import process_start_time

    return process_start_time(pid) is None
