"""`pyrunc state`: print a container's state as JSON. On containerd's hot path: keep it light."""

from __future__ import annotations

import sys

from pyrunc.cli.flags import container_id_arg

# `typing` (and the `re` it imports on 3.11) costs milliseconds on the `state` hot path; the
# annotations are never evaluated, so the names are only needed by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cli.main import Context

USAGE = "<container-id>"
DESCRIPTION = """\
   Print the container's state (runtime-spec state plus rootfs, created, owner) as JSON.
   The status comes from the kernel: a container whose process died is "stopped".
"""
FLAGS: list[Any] = []


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container.state import StateDir, runc_state, validate_id

    container_id = container_id_arg(args, "state")
    validate_id(container_id)
    state_dir = StateDir(ctx.root, container_id)
    from pyrunc import fastjson

    sys.stdout.write(fastjson.dumps(runc_state(state_dir, state_dir.load()), indent=2))
    return 0
