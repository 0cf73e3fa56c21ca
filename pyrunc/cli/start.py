"""`pyrunc start`: release a created container's init to exec the user's program."""

from __future__ import annotations

from pyrunc.cli.flags import container_id_arg

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cli.main import Context

USAGE = "<container-id>"
DESCRIPTION = """\
   Let a created container's process run: it runs the startContainer hooks and executes
   process.args. poststart hooks run before start returns.
"""
FLAGS: list[Any] = []


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import lifecycle

    lifecycle.start(ctx.root, container_id_arg(args, "start"))
    return 0
