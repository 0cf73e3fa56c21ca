"""`pyrunc kill`: send a signal to the container's init (or, with --all, to all its processes)."""

from __future__ import annotations

from pyrunc.cli.flags import Flag, UsageError
from pyrunc.container.state import ContainerError
from pyrunc.linux.consts import SIGTERM

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cli.main import Context

USAGE = "[command options] <container-id> [signal]"
DESCRIPTION = """\
   Send a signal to the container's first process. The signal is a number or a name,
   with or without SIG and in any case: 9, KILL, SIGKILL and sigkill are the same.
"""
FLAGS = [Flag("all, a", help="signal every process in the container's cgroup")]
INTERSPERSED = False


def parse_signal(text: str) -> int:
    """9, KILL, SIGKILL, sigkill, RTMIN+3 -> signal number.

    Callers (containerd, podman) send numbers. Names are looked up in the C module `_signal`,
    whose SIG* constants are the members of `signal.Signals`: `signal` itself builds that enum
    (with `enum`, `functools` and `collections`), ~3 ms of a command that should be instant.
    """
    if text.isdigit():
        number = int(text)
        # 0 only checks that the process exists; NSIG is at least 65 on every architecture.
        if 0 <= number <= 64:
            return number
    if TYPE_CHECKING:
        import signal
    else:
        import _signal as signal

    if text.isdigit():
        if int(text) < signal.NSIG:
            return int(text)
        raise ContainerError(f'unknown signal "{text}"')
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
        base = signal.SIGRTMIN if name.startswith("SIGRTMIN") else signal.SIGRTMAX
        try:
            offset = int(name[9:])
        except ValueError:
            raise ContainerError(f'unknown signal "{text}"') from None
        return base + offset if name.startswith("SIGRTMIN") else base - offset
    value = getattr(signal, name, None) if not name.startswith("SIG_") else None
    if not isinstance(value, int):
        raise ContainerError(f'unknown signal "{text}"')
    return int(value)


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import lifecycle

    # urfave/cli stops at the id for this command, but flags right after it are still accepted.
    while len(args) > 1 and args[1] in ("--all", "-all", "-a", "--all=true", "-all=true"):
        opts["all"] = True
        del args[1]
    if not args or len(args) > 2:
        raise UsageError('"kill" requires a minimum of 1 and a maximum of 2 arguments')
    sig = parse_signal(args[1]) if len(args) == 2 else SIGTERM
    lifecycle.kill(ctx.root, args[0], sig, all_processes=opts["all"])
    return 0
