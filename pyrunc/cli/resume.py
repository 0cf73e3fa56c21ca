"""`pyrunc resume`: let a paused container's processes run again."""

from __future__ import annotations

from typing import Any

from pyrunc.cli.flags import container_id_arg

USAGE = "<container-id>"
DESCRIPTION = """   Thaw the cgroup of a container that `pause` froze. Only a paused container can be
   resumed.
"""
FLAGS: list[Any] = []


def run(ctx: Any, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import control

    control.resume(ctx.root, container_id_arg(args, "resume"))
    return 0
