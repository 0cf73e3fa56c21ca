"""`pyrunc delete`: release everything a stopped (or, with --force, any) container holds."""

from __future__ import annotations

from pyrunc.cli.flags import Flag, container_id_arg

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cli.main import Context

USAGE = "[command options] <container-id>"
DESCRIPTION = """\
   Remove a container's cgroups and state and run its poststop hooks. A stopped or a
   created (never started) container is deleted as it is; a running or paused one needs
   --force, which kills its processes with SIGKILL first.
"""
FLAGS = [Flag("force, f", help="kill the container's processes first if it still runs")]


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import lifecycle

    lifecycle.delete(ctx.root, container_id_arg(args, "delete"), force=opts["force"])
    return 0
