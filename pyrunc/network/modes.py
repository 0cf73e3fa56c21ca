"""Docker's four network modes, as `pyrunc network` hooks and as `pyrunc spec --network`.

    none            a network namespace of its own with only `lo` (up)
    host            no network namespace: the host's interfaces, addresses, ports and routes
    container:<id>  the network namespace of another pyrunc container (same interfaces, same
                    addresses, same ports; each keeps its own other namespaces)
    bridge[:NAME]   a namespace of its own, wired to bridge NAME by a veth pair, with an
                    address leased from a subnet and a default route via the bridge

A namespace is chosen when the container is created, before any hook runs, so the spec side
writes the namespaces (`container:` names the other container's /proc/<pid>/ns/net) and the
hook side checks that the container got what its mode promises, failing `create` otherwise;
only `bridge` builds anything (see bridge.py).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from pyrunc.network.netlink import NetworkError, same_netns

MODES = ("none", "host", "container", "bridge")


class Mode(NamedTuple):
    name: str
    arg: str = ""

    @classmethod
    def parse(cls, text: str) -> Mode:
        name, sep, arg = text.partition(":")
        if name not in MODES:
            raise NetworkError(f"network mode {text!r}: expected one of none, host, "
                               "container:<id>, bridge[:NAME]")
        if name == "container" and not arg:
            raise NetworkError("network mode container: needs the other container's id "
                               "(container:<id>)")
        if name in ("none", "host") and sep:
            raise NetworkError(f"network mode {name} takes no argument")
        return cls(name, arg)


def container_netns_path(root: str, container_id: str) -> str:
    """/proc/<pid>/ns/net of a live pyrunc container under `root`."""
    from pyrunc.container.state import ContainerNotFound, StateDir, init_alive

    try:
        state = StateDir(root, container_id).load()
    except ContainerNotFound:
        raise NetworkError(f"network mode container:{container_id}: no such container under "
                           f"{root}") from None
    if not init_alive(state):
        raise NetworkError(f"network mode container:{container_id}: that container is not "
                           "running")
    return f"/proc/{state.init_pid}/ns/net"


def check(mode: Mode, pid: int, root: str) -> None:
    """createRuntime check for none/host/container: the container has what its mode says."""
    own = "/proc/thread-self/ns/net"
    theirs = f"/proc/{pid}/ns/net"
    if mode.name == "host":
        if not same_netns(own, theirs):
            raise NetworkError("network mode host: the container has a network namespace of "
                               "its own; remove the network entry from /linux/namespaces")
    elif mode.name == "none":
        if same_netns(own, theirs):
            raise NetworkError("network mode none: the container shares the host's network "
                               "namespace; add {\"type\": \"network\"} to /linux/namespaces")
        names = interfaces_of(pid)
        if names != ["lo"]:
            raise NetworkError(f"network mode none: the container's namespace has links "
                               f"{', '.join(names)}, expected only lo")
    elif mode.name == "container":
        target = container_netns_path(root, mode.arg)
        if not same_netns(target, theirs):
            raise NetworkError(f"network mode container:{mode.arg}: the container is not in "
                               f"that container's network namespace ({target}); write the "
                               "config again with `pyrunc spec --network`")


def interfaces_of(pid: int) -> list[str]:
    """The interface names in the network namespace of `pid`, from its /proc/<pid>/net/dev
    (which shows that process's namespace): no netlink, so no pyroute2 import for a check."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]   # two header lines
    except OSError as exc:
        raise NetworkError(f"read /proc/{pid}/net/dev: {exc.strerror}") from None
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def hook_command() -> list[str]:
    """An absolute command line that runs this pyrunc (hooks need an absolute path)."""
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "pyrunc")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "pyrunc"]


def apply_to_config(config: dict[str, Any], mode: Mode, root: str,
                    bridge_args: list[str]) -> None:
    """Write the namespaces and hooks of `mode` into a config dict (`pyrunc spec`)."""
    namespaces = [ns for ns in config["linux"]["namespaces"] if ns.get("type") != "network"]
    if mode.name in ("none", "bridge"):
        namespaces.append({"type": "network"})
    elif mode.name == "container":
        namespaces.append({"type": "network", "path": container_netns_path(root, mode.arg)})
    config["linux"]["namespaces"] = namespaces
    command = hook_command()
    if mode.name == "container":
        command += ["--root", root]
    command.append("network")
    text = f"{mode.name}:{mode.arg}" if mode.arg else mode.name
    hooks = config.setdefault("hooks", {})
    hooks.setdefault("createRuntime", []).append(
        {"path": command[0], "args": [*command, *bridge_args, "up", text]})
    if mode.name == "bridge":
        hooks.setdefault("poststop", []).append(
            {"path": command[0], "args": [*command, *bridge_args, "down", text]})
