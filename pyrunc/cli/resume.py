"""`pyrunc resume`: let a paused container's processes run again."""

from __future__ import annotations

from pyrunc.cli.flags import container_id_arg

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cli.main import Context

USAGE = "<container-id>"
DESCRIPTION = """\
   Thaw the cgroup of a container that `pause` froze. Only a paused container can be
   resumed.
"""
FLAGS: list[Any] = []


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import control

    control.resume(ctx.root, container_id_arg(args, "resume"))
    return 0
