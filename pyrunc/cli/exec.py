"""`pyrunc exec`: run another process in a container (what `podman exec`, `ctr task exec` and
Kubernetes probes end up calling)."""

from __future__ import annotations

import os
import socket

from pyrunc.cli.flags import Flag, UsageError
from pyrunc.container.state import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cli.main import Context
    from pyrunc.container.execute import ExecOptions

USAGE = "[command options] <container-id> <command> [command options]  || " \
        "-p process.json <container-id>"
DESCRIPTION = """   Start another process in a running container: it enters every namespace and the
   cgroup of the container's first process, with the user, capabilities, rlimits and
   seccomp profile its description gives. In the foreground pyrunc waits for it and exits
   with its status; with --detach it returns once the process runs (the pid file has its
   pid). With --process the JSON file describes the process and the other per-process
   flags are ignored, as runc does.
"""
FLAGS = [
    Flag("console-socket", "str", help="AF_UNIX socket to send the pty master to (with --tty)"),
    Flag("pidfd-socket", "str", help="AF_UNIX socket to send a pidfd of the new process to"),
    Flag("cwd", "str", help="working directory inside the container"),
    Flag("env, e", "list", help="add an environment variable (KEY=value; repeatable)"),
    Flag("tty, t", help="give the process a pseudo-terminal"),
    Flag("user, u", "str", help="UID[:GID] to run as"),
    Flag("additional-gids, g", "list", help="an additional group id (repeatable)"),
    Flag("process, p", "str", help="a JSON file with the whole process description"),
    Flag("detach, d", help="return once the process runs; do not wait for it"),
    Flag("pid-file", "str", help="write the new process's pid to this file"),
    Flag("process-label", "str", help="SELinux label of the process"),
    Flag("apparmor", "str", help="AppArmor profile of the process"),
    Flag("no-new-privs", help="set no_new_privs for the process"),
    Flag("cap, c", "list", help="add a capability (repeatable)"),
    Flag("preserve-fds", "int", help="also pass the N file descriptors after stdio"),
    Flag("cgroup", "list", help="a sub-cgroup of the container to join (not supported yet)"),
    Flag("ignore-paused", help="exec even if the container is paused"),
]
INTERSPERSED = False
#: runc exits 255 when exec fails, so that callers can tell it from the program's own status.
ERROR_STATUS = 255


def process_from_flags(base: dict[str, Any], opts: dict[str, Any], command: list[str]
                       ) -> dict[str, Any]:
    """The container's process with runc's per-exec overrides applied."""
    process = dict(base)
    if not command:
        raise UsageError("exec: no command given (and no --process file)")
    process["args"] = command
    process["terminal"] = bool(opts["tty"])
    if opts["cwd"]:
        process["cwd"] = opts["cwd"]
    process["env"] = list(process.get("env") or []) + list(opts["env"])
    user = dict(process.get("user") or {})
    if opts["user"]:
        uid, _, gid = opts["user"].partition(":")
        try:
            user["uid"] = int(uid)
            if gid:
                user["gid"] = int(gid)
        except ValueError:
            raise UsageError(f"--user {opts['user']!r}: must be UID[:GID] (numbers)") from None
    if opts["additional_gids"]:
        try:
            user["additionalGids"] = [int(g) for g in opts["additional_gids"]]
        except ValueError:
            raise UsageError("--additional-gids: must be numbers") from None
    process["user"] = user
    if opts["cap"]:
        caps = {k: list(v or []) for k, v in (process.get("capabilities") or {}).items()}
        for name in opts["cap"]:
            for kind in ("bounding", "effective", "permitted"):
                caps.setdefault(kind, []).append(name)
            # Ambient needs inheritable, which --cap does not set: only where the config has it.
            if caps.get("inheritable"):
                caps.setdefault("ambient", []).append(name)
        process["capabilities"] = caps
    if opts["no_new_privs"]:
        process["noNewPrivileges"] = True
    if opts["apparmor"]:
        process["apparmorProfile"] = opts["apparmor"]
    if opts["process_label"]:
        process["selinuxLabel"] = opts["process_label"]
    return process


def _read_process_file(path: str) -> dict[str, Any]:
    import json

    try:
        with open(path, "rb") as f:
            process = json.loads(f.read())
    except OSError as exc:
        raise ContainerError(f"read process file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ContainerError(f"process file {path} is not valid JSON: {exc}") from None
    if not isinstance(process, dict):
        raise ContainerError(f"process file {path} must hold a JSON object")
    return process


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import execute

    if not args:
        raise UsageError("exec: a container id is required")
    container_id, command = args[0], args[1:]
    if opts["preserve_fds"] < 0:
        raise UsageError("--preserve-fds must not be negative")
    if opts["cgroup"]:
        raise ContainerError("--cgroup: joining a sub-cgroup is not supported yet")
    if opts["process"]:
        process = _read_process_file(opts["process"])
    else:
        process = process_from_flags(execute.base_process(ctx.root, container_id), opts,
                                     command)
    options = execute.ExecOptions(
        process, detach=opts["detach"],
        pid_file=os.path.abspath(opts["pid_file"]) if opts["pid_file"] else None,
        console_socket=os.path.abspath(opts["console_socket"]) if opts["console_socket"]
        else None,
        preserve_fds=opts["preserve_fds"], ignore_paused=opts["ignore_paused"],
        pidfd_socket=os.path.abspath(opts["pidfd_socket"]) if opts["pidfd_socket"] else None,
        rootless=ctx.is_rootless)
    if opts["detach"]:
        execute.exec_in_container(ctx.root, container_id, options)
        return 0
    return _exec_in_foreground(ctx, container_id, options)


def _exec_in_foreground(ctx: Context, container_id: str,
                        options: ExecOptions) -> int:
    """Like a foreground run: signals go to the process, a tty is proxied, its status is ours."""
    from pyrunc.cli.run import _forward_signals, _handle_signals, _wait_in_foreground
    from pyrunc.container import execute

    pending: list[int] = []
    _handle_signals(lambda signum, _frame: pending.append(signum))
    console_ours = console_theirs = None
    if options.process.get("terminal") and options.console_socket is None:
        console_ours, console_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        options.console_fd = console_theirs.fileno()
    try:
        pid = execute.exec_in_container(ctx.root, container_id, options)
    finally:
        if console_theirs is not None:
            console_theirs.close()
    proxy = None
    try:
        if console_ours is not None:
            from pyrunc import terminal as term

            master = term.receive_console_master(console_ours, timeout=10)
            console_ours.close()
            proxy = term.TerminalProxy(master)
        _forward_signals(pid, proxy)
        for signum in pending:
            os.kill(pid, signum)
        return _wait_in_foreground(pid, proxy)
    finally:
        if proxy is not None:
            proxy.close()
