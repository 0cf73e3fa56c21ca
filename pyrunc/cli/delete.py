"""`pyrunc delete`: release everything a stopped (or, with --force, any) container holds."""

from __future__ import annotations

from typing import Any

from pyrunc.cli.flags import Flag, container_id_arg

USAGE = "[command options] <container-id>"
DESCRIPTION = """   The delete command deletes any resources held by the container. A created container is
   killed and deleted; a running or paused one needs --force.
"""
FLAGS = [Flag("force, f", help="Forcibly deletes the container if it is still running "
              "(uses SIGKILL)")]


def run(ctx: Any, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import lifecycle

    lifecycle.delete(ctx.root, container_id_arg(args, "delete"), force=opts["force"])
    return 0
