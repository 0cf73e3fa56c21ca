"""`pyrunc spec`: write a starting config.json into a bundle directory."""

from __future__ import annotations

import json
import os
from typing import Any

from pyrunc.cli.flags import Flag, UsageError
from pyrunc.container.state import ContainerError

USAGE = "[command options]"
DESCRIPTION = """   Write a starting config.json (a shell on a terminal, in new namespaces) into a bundle.
   Edit it (process.args, mounts, namespaces ...) and put the container's root filesystem in
   the "rootfs" directory next to it; then `pyrunc run <bundle>`.
"""
FLAGS = [
    Flag("bundle, b", "str", help="bundle directory to write config.json into"),
    Flag("rootless", help="for an unprivileged user: a user namespace mapping you to root"),
]


def run(ctx: Any, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.spec.defaults import default_config

    if args:
        raise UsageError(f"spec takes no arguments, got {len(args)}")
    bundle = opts["bundle"] or "."
    path = os.path.join(bundle, "config.json")
    if not os.path.isdir(bundle):
        raise ContainerError(f"chdir {bundle}: ENOENT (no such file or directory)")
    if os.path.exists(path):
        raise ContainerError("File config.json exists. Remove it first")
    text = json.dumps(default_config(rootless=opts["rootless"]), indent="\t")
    with open(path, "x") as f:
        f.write(text)
    return 0
