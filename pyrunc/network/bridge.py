"""The `bridge` network mode: a Linux bridge, one veth pair per container, leased addresses.

    host netns                                  container netns
    bridge BR (gateway: first address) ── pnv<hash> ═══ veth ═══ eth0 (leased address)
                                                                  default route via gateway

`up` runs as the createRuntime hook (the container's netns is /proc/<pid>/ns/net), `down` as
the poststop hook. Both hold the bridge's lease lock throughout, so concurrent creates and
teardowns never see a half-made bridge, and the last teardown removes the bridge pyrunc
created, its lease directory and (with it) the subnet's route. When the container was
SIGKILLed its netns is already gone, and the kernel took the veth pair with it; `down`
still releases the lease and the bridge.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from typing import Any, NamedTuple

from pyrunc.network import leases, nft
from pyrunc.network.netlink import (
    NetworkError,
    describe,
    failures,
    iproute,
    link_index,
    netns_fd,
    same_netns,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

CONTAINER_IF = "eth0"
DEFAULT_BRIDGE = "pyrunc0"
DEFAULT_SUBNET = "10.99.0.0/24"


class BridgeOptions(NamedTuple):
    bridge: str = DEFAULT_BRIDGE
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network(DEFAULT_SUBNET)
    publish: tuple[nft.Publish, ...] = ()
    nat: bool = False
    state_root: str = leases.DEFAULT_STATE_ROOT

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 1


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise NetworkError(f"--subnet {text!r}: {exc}") from None
    if subnet.prefixlen > 30:
        raise NetworkError(f"--subnet {text!r}: too small (at most /30)")
    return subnet


def host_if_name(container_id: str) -> str:
    """The host end's name: stable for an id (teardown finds it) and at most 15 bytes."""
    return "pnv" + hashlib.sha256(container_id.encode()).hexdigest()[:11]


def up(opts: BridgeOptions, container_id: str, pid: int) -> ipaddress.IPv4Address:
    """Connect the container's netns to the bridge; returns its address. All or nothing."""
    netns_path = f"/proc/{pid}/ns/net"
    if same_netns("/proc/thread-self/ns/net", netns_path):
        raise NetworkError("network mode bridge: the container shares the host's network "
                           "namespace; add {\"type\": \"network\"} to /linux/namespaces")
    directory = leases.bridge_dir(opts.state_root, opts.bridge)
    host_if = host_if_name(container_id)
    undo: list[Callable[[], None]] = []
    with leases.locked(directory):
        host = iproute()
        try:
            try:
                bridge_index = _ensure_bridge(host, opts, directory)
                address = leases.allocate(directory, opts.subnet, container_id)
                _add_veth(host, host_if, netns_path, bridge_index, undo)
                _configure_inside(netns_path, address, opts)
                undo.append(lambda: nft.remove(host_if))
                nft.apply(host_if, opts.bridge, opts.subnet, address, list(opts.publish),
                          opts.nat)
            except BaseException:
                expected: tuple[type[Exception], ...] = (NetworkError, *failures())
                for step in reversed(undo):
                    try:
                        step()
                    except expected:   # best effort: the first error is the one to report
                        pass
                # The lease, and the bridge and directory when nobody else uses them.
                _release(host, opts, directory, container_id)
                raise
        finally:
            host.close()
    return address


def down(opts: BridgeOptions, container_id: str) -> None:
    """Remove the container's veth, rules and lease; the bridge too when it was the last."""
    directory = leases.bridge_dir(opts.state_root, opts.bridge)
    host_if = host_if_name(container_id)
    with leases.locked(directory):
        host = iproute()
        try:
            index = link_index(host, host_if)
            if index is not None:
                try:
                    host.link("del", index=index)   # takes the container's end with it
                except failures() as exc:
                    raise describe(f"delete veth {host_if}", exc) from None
            nft.remove(host_if)
            _release(host, opts, directory, container_id)
        finally:
            host.close()


def _release(host: Any, opts: BridgeOptions, directory: str, container_id: str) -> None:
    """Drop the lease; with the last one gone, remove a bridge pyrunc made and the directory."""
    if leases.release(directory, container_id):
        return
    if os.path.exists(os.path.join(directory, "subnet")):
        index = link_index(host, opts.bridge)
        if index is not None:
            try:
                host.link("del", index=index)
            except failures() as exc:
                raise describe(f"delete bridge {opts.bridge}", exc) from None
    leases.remove_directory(directory)


def _ensure_bridge(host: Any, opts: BridgeOptions, directory: str) -> int:
    """The bridge's ifindex; created (with the gateway address, up) when missing."""
    marker = os.path.join(directory, "subnet")
    index = link_index(host, opts.bridge)
    if index is not None:
        link = host.get_links(index)[0]
        kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        if kind != "bridge":
            raise NetworkError(f"--bridge {opts.bridge}: a {kind or 'non-bridge'} link of that "
                               "name exists")
        if os.path.exists(marker):
            with open(marker) as f:
                recorded = f.read().strip()
            if recorded != str(opts.subnet):
                raise NetworkError(f"--subnet {opts.subnet}: bridge {opts.bridge} already "
                                   f"serves {recorded}")
        return int(index)
    step = f"create bridge {opts.bridge}"
    try:
        host.link("add", ifname=opts.bridge, kind="bridge")
        with open(marker, "w") as f:   # ours now: the last teardown (or a failed up) removes it
            f.write(f"{opts.subnet}\n")
        index = link_index(host, opts.bridge)
        if index is None:
            raise NetworkError(f"create bridge {opts.bridge}: it is not there afterwards")
        step = f"bridge {opts.bridge}: add address {opts.gateway}/{opts.subnet.prefixlen}"
        host.addr("add", index=index, address=str(opts.gateway), prefixlen=opts.subnet.prefixlen)
        step = f"bridge {opts.bridge}: set up"
        host.link("set", index=index, state="up")
    except failures() as exc:
        raise describe(step, exc) from None
    return int(index)


def _add_veth(host: Any, host_if: str, netns_path: str, bridge_index: int,
              undo: list[Callable[[], None]]) -> None:
    """A veth pair: `host_if` on the bridge, its peer born inside the container as eth0."""
    step = f"create veth {host_if} with peer {CONTAINER_IF} in the container"
    try:
        with netns_fd(netns_path) as target:
            host.link("add", ifname=host_if, kind="veth",
                      peer={"ifname": CONTAINER_IF, "net_ns_fd": target})
        index = link_index(host, host_if)
        undo.append(lambda: host.link("del", index=index))
        step = f"veth {host_if}: attach to the bridge and set up"
        host.link("set", index=index, master=bridge_index, state="up")
    except NetworkError:
        raise
    except failures() as exc:
        raise describe(step, exc) from None


def _configure_inside(netns_path: str, address: ipaddress.IPv4Address,
                      opts: BridgeOptions) -> None:
    """eth0: the leased address, up, and the default route through the bridge."""
    inside = iproute(netns_path)
    step = f"container {CONTAINER_IF}: add address {address}/{opts.subnet.prefixlen}"
    try:
        index = link_index(inside, CONTAINER_IF)
        inside.addr("add", index=index, address=str(address), prefixlen=opts.subnet.prefixlen)
        step = f"container {CONTAINER_IF}: set up"
        inside.link("set", index=index, state="up")
        step = f"container: add default route via {opts.gateway}"
        inside.route("add", dst="0.0.0.0/0", gateway=str(opts.gateway))
    except failures() as exc:
        raise describe(step, exc) from None
    finally:
        inside.close()
