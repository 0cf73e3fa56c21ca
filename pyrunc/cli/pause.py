"""`pyrunc pause`: freeze every process of a container (cgroup freezer)."""

from __future__ import annotations

from pyrunc.cli.flags import container_id_arg

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cli.main import Context

USAGE = "<container-id>"
DESCRIPTION = """\
   Freeze every process in the container's cgroup: v1 through freezer.state, v2 through
   cgroup.freeze. Returns once the kernel reports the whole cgroup frozen; `state` then says
   "paused". Works on a running or a created container; `resume` undoes it.
"""
FLAGS: list[Any] = []


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import control

    control.pause(ctx.root, container_id_arg(args, "pause"))
    return 0
