"""`pyrunc spec`: write a starting config.json into a bundle directory."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from pyrunc.cli.flags import Flag, UsageError
from pyrunc.container.state import ContainerError

if TYPE_CHECKING:
    from pyrunc.cli.main import Context

USAGE = "[command options]"
DESCRIPTION = """\
   Write a starting config.json (a shell on a terminal, in new namespaces) into a bundle.
   Edit it (process.args, mounts, namespaces ...) and put the container's root filesystem in
   the "rootfs" directory next to it; then `pyrunc run <bundle>`.
"""
FLAGS = [
    Flag("bundle, b", "str", help="bundle directory to write config.json into"),
    Flag("rootless", help="for an unprivileged user: a user namespace mapping you to root"),
    Flag("network", "str", help="none, host, container:<id> or bridge[:NAME]: write that "
         "mode's namespaces and `pyrunc network` hooks"),
    Flag("subnet", "str", help="with --network bridge: the subnet to lease addresses from"),
    Flag("publish, p", "list", help="with --network bridge: HOST_PORT:CONTAINER_PORT[/proto]"),
    Flag("nat", help="with --network bridge: masquerade outbound traffic"),
    Flag("state-dir", "str", help="with --network bridge: where leases live"),
]


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.spec.defaults import default_config

    if args:
        raise UsageError(f"spec takes no arguments, got {len(args)}")
    bundle = opts["bundle"] or "."
    path = os.path.join(bundle, "config.json")
    if not os.path.isdir(bundle):
        raise ContainerError(f"chdir {bundle}: ENOENT (no such file or directory)")
    if os.path.exists(path):
        raise ContainerError("File config.json exists. Remove it first")
    config = default_config(rootless=opts["rootless"])
    bridge_only = ("subnet", "publish", "nat", "state_dir")
    if opts["network"]:
        from pyrunc.cli.network import bridge_flags, bridge_options
        from pyrunc.network.modes import Mode, apply_to_config

        mode = Mode.parse(opts["network"])
        if mode.name != "bridge" and any(opts[k] for k in bridge_only):
            raise UsageError("--subnet, --publish, --nat and --state-dir need --network bridge")
        if mode.name == "bridge":
            bridge_options(mode.arg, opts)   # refuse a bad subnet or port now, not at create
        apply_to_config(config, mode, ctx.root, bridge_flags(opts))
    elif any(opts[k] for k in bridge_only):
        raise UsageError("--subnet, --publish, --nat and --state-dir need --network bridge")
    text = json.dumps(config, indent="\t")
    with open(path, "x") as f:
        f.write(text)
    return 0
