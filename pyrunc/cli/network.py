"""`pyrunc network up|down MODE[:ARG]`: the network modes, run as a container's hooks.

A subcommand rather than a separate `pyrunc-net` program: the hook then runs exactly the
pyrunc that wrote the config (`pyrunc spec --network` puts its own absolute path in the
hooks), so the hook and the state files it reads (`container:<id>` looks the other container
up under `--root`) never come from two different versions; nothing extra is installed or kept
on PATH; and it shares the global flags (`--root`, `--log`, `--debug`) and the one-line error
handling of every other command. runc has no `network` command, so no caller is surprised.

It reads the runtime-spec state of the container on stdin, as every hook does: `up` is the
createRuntime hook (the container's netns is /proc/<pid>/ns/net), `down` the poststop hook.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pyrunc.cli.flags import Flag, UsageError

if TYPE_CHECKING:
    from pyrunc.cli.main import Context

USAGE = "[command options] up|down none|host|container:<id>|bridge[:NAME]"
DESCRIPTION = """   Set up (up) or tear down (down) a container's network, as its createRuntime and
   poststop hook; the container's state is read from stdin. `pyrunc spec --network MODE`
   writes these hooks into a config. Only `bridge` builds anything: a bridge (created when
   missing), a veth pair, an address leased from --subnet and a default route.
"""
FLAGS = [
    Flag("subnet", "str", "", help="bridge: IPv4 subnet to lease addresses from "
         "(default 10.99.0.0/24; the first address is the bridge's)"),
    Flag("publish, p", "list", help="bridge: HOST_PORT:CONTAINER_PORT[/tcp|udp] (needs nft)"),
    Flag("nat", help="bridge: masquerade the subnet's outbound traffic (needs nft)"),
    Flag("state-dir", "str", "", help="bridge: where leases live (default /run/pyrunc-net)"),
]


def bridge_options(name: str, opts: dict[str, Any]) -> Any:
    from pyrunc.network import bridge, leases, nft

    return bridge.BridgeOptions(
        bridge=name or bridge.DEFAULT_BRIDGE,
        subnet=bridge.parse_subnet(opts["subnet"] or bridge.DEFAULT_SUBNET),
        publish=tuple(nft.Publish.parse(p) for p in opts["publish"]),
        nat=bool(opts["nat"]),
        state_root=opts["state_dir"] or leases.DEFAULT_STATE_ROOT)


def bridge_flags(opts: dict[str, Any]) -> list[str]:
    """The bridge flags of `opts` as arguments for the hooks (`pyrunc spec`)."""
    args = ["--subnet", opts["subnet"]] if opts["subnet"] else []
    for publish in opts["publish"]:
        args += ["--publish", publish]
    if opts["nat"]:
        args.append("--nat")
    if opts["state_dir"]:
        args += ["--state-dir", opts["state_dir"]]
    return args


def _read_state() -> dict[str, Any]:
    import json

    try:
        state = json.loads(sys.stdin.read())
    except ValueError as exc:
        raise UsageError(f"network: stdin is not a container state (JSON): {exc}") from None
    if not isinstance(state, dict) or not state.get("id"):
        raise UsageError("network: stdin is not a container state (no id)")
    return state


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.network.modes import Mode, check

    if len(args) != 2 or args[0] not in ("up", "down"):
        raise UsageError("network needs two arguments: up|down MODE")
    action, mode = args[0], Mode.parse(args[1])
    if mode.name != "bridge" and any(opts[k] for k in ("subnet", "publish", "nat", "state_dir")):
        raise UsageError(f"network mode {mode.name}: --subnet, --publish, --nat and "
                         "--state-dir are for bridge")
    state = _read_state()
    pid = int(state.get("pid") or 0)
    if mode.name == "bridge":
        from pyrunc.network import bridge

        options = bridge_options(mode.arg, opts)
        if action == "down":
            bridge.down(options, state["id"])
            return 0
        if pid <= 0:
            raise UsageError("network up: the state on stdin has no pid")
        bridge.up(options, state["id"], pid)
        return 0
    if action == "up":
        if pid <= 0:
            raise UsageError("network up: the state on stdin has no pid")
        check(mode, pid, ctx.root)
    return 0
