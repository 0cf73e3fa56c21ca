"""`linux.netDevices`: host interfaces lent to a container for its lifetime.

Moving a link to another network namespace makes the kernel drop its addresses and take it
down; so before the move pyrunc records each device's addresses, MTU and up state, and
re-applies them on the other side — in the container at create, on the host at delete.

What was moved is written into the container's state *before* the first move, and the
container's network namespace is pinned (bind-mounted onto `<state dir>/netns`): when the
init dies (SIGKILL, or a `create` killed half-way) the namespace, and the devices in it, stay
reachable until `delete` brings them home. Without the pin the kernel would destroy virtual
devices with the namespace and hand physical ones to the initial namespace, not ours.

Devices go back to the network namespace of the process that runs `delete` (runc does the
same), under their original names.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from pyrunc import log
from pyrunc.linux import syscalls
from pyrunc.network.netlink import (
    NetworkError,
    describe,
    failures,
    iproute,
    link_index,
    netns_fd,
)

#: Where the container's network namespace is pinned, inside its state directory.
PIN_NAME = "netns"
MS_BIND = 0x1000
MNT_DETACH = 0x2
IFF_UP = 0x1
_BAD_NAME_CHARS = frozenset("/: \t\n\r\v\f")


def check_config(net_devices: dict[str, str], creates_netns: bool, root: str,
                 container_id: str) -> None:
    """Refuse what cannot work, before anything is created (one line naming the field)."""
    if not net_devices:
        return
    if not creates_netns:
        raise NetworkError("/linux/netDevices: needs a new network namespace in "
                           "/linux/namespaces (the devices would stay in the host's)")
    if not _have_pyroute2():
        raise NetworkError("/linux/netDevices: moving devices needs the pyroute2 package, "
                           "which is not installed")
    seen: dict[str, str] = {}
    for host_name, name in net_devices.items():
        for pointer, value in ((f"/linux/netDevices/{host_name}", host_name),
                               (f"/linux/netDevices/{host_name}/name", name)):
            if not _valid_ifname(value):
                raise NetworkError(f"{pointer}: {value!r} is not a valid interface name "
                                   "(1-15 bytes, no '/', ':' or whitespace)")
        if name in seen:
            raise NetworkError(f"/linux/netDevices/{host_name}/name: {name!r} is also the "
                               f"name of {seen[name]}")
        seen[name] = host_name
    claims = _claimed_by_others(root, container_id)
    for host_name in net_devices:
        if host_name in claims:
            raise NetworkError(f"/linux/netDevices/{host_name}: the device is already in "
                               f"container {claims[host_name]}")


def move_in(net_devices: dict[str, str], pid: int, pin_path: str,
            record: Any) -> list[dict[str, Any]]:
    """Move every device into the netns of `pid`, all or none.

    `record(entries)` is called (to save them in the state) before the namespace is pinned
    and the first device moves, so a `delete --force` after a killed create finds them.
    Returns the entries.
    """
    netns_path = f"/proc/{pid}/ns/net"
    host = iproute()
    try:
        entries = [_snapshot(host, h, n) for h, n in net_devices.items()]
        inside = iproute(netns_path)
        try:
            for entry in entries:
                if link_index(inside, entry["name"]) is not None:
                    raise NetworkError(f"/linux/netDevices/{entry['host']}/name: "
                                       f"{entry['name']!r} already exists in the container")
            record(entries)
            _pin(netns_path, pin_path)
            moved: list[dict[str, Any]] = []
            try:
                with netns_fd(netns_path) as target:
                    for entry in entries:
                        _move(host, entry["host"], target, entry["name"], "into the container")
                        moved.append(entry)
                        _restore(inside, entry["name"], entry)
            except BaseException:
                _return_devices(inside, moved)
                raise
        finally:
            inside.close()
    finally:
        host.close()
    return entries


def move_back(entries: list[dict[str, Any]], state_dir_path: str, init_pid: int) -> None:
    """Return recorded devices to our network namespace; unpin. Only warns: delete goes on."""
    pin_path = os.path.join(state_dir_path, PIN_NAME)
    netns_path = _reachable_netns(pin_path, init_pid)
    if not _have_pyroute2():
        log.warning("network devices cannot be returned: the pyroute2 package is missing")
    elif netns_path is None:
        missing = [e["host"] for e in entries if not _on_host(e["host"])]
        if missing:
            log.warning(f"network devices {', '.join(missing)}: the container's network "
                        "namespace is gone, and them with it")
    else:
        try:
            inside = iproute(netns_path)
        except NetworkError as exc:
            log.warning(f"return network devices: {exc}")
        else:
            try:
                _return_devices(inside, entries)
            finally:
                inside.close()
    unpin(pin_path)


def unpin(pin_path: str) -> None:
    """Drop the namespace pin (lazily: nothing else may hold it open)."""
    try:
        syscalls.umount2(pin_path, MNT_DETACH)
    except OSError:
        pass
    try:
        os.unlink(pin_path)
    except FileNotFoundError:
        pass


# --- helpers -------------------------------------------------------------------------------

def _have_pyroute2() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyroute2") is not None


def _valid_ifname(name: object) -> bool:
    return isinstance(name, str) and 0 < len(name.encode()) <= 15 and \
        name not in (".", "..") and not set(name) & _BAD_NAME_CHARS


def _claimed_by_others(root: str, container_id: str) -> dict[str, str]:
    """Host device name -> id of another container (under the same --root) that holds it."""
    from pyrunc.container.state import ContainerError, ContainerState, StateDir, list_ids

    claims: dict[str, str] = {}
    for other in list_ids(root):
        if other == container_id:
            continue
        try:
            state: ContainerState = StateDir(root, other).load()
        except (OSError, ValueError, ContainerError):   # vanished or half-written: no claim
            continue
        for entry in state.net_devices:
            claims[entry["host"]] = other
    return claims


def _snapshot(ipr: Any, host_name: str, name: str) -> dict[str, Any]:
    """What a move loses: addresses (not IPv6 link-local, which the kernel regenerates),
    MTU and whether the link was up."""
    index = link_index(ipr, host_name)
    if index is None:
        raise NetworkError(f"/linux/netDevices/{host_name}: no such network device on the host")
    link = ipr.get_links(index)[0]
    addresses = []
    for msg in ipr.get_addr(index=index):
        address = msg.get_attr("IFA_ADDRESS")
        if msg["family"] == socket.AF_INET:
            address = msg.get_attr("IFA_LOCAL") or address
        if msg["family"] == socket.AF_INET6 and address.lower().startswith("fe80:"):
            continue
        addresses.append({"address": address, "prefixlen": msg["prefixlen"]})
    return {"host": host_name, "name": name, "addresses": addresses,
            "mtu": link.get_attr("IFLA_MTU"), "up": bool(link["flags"] & IFF_UP)}


def _move(ipr: Any, current: str, target_fd: int, new_name: str, where: str) -> None:
    index = link_index(ipr, current)
    if index is None:
        raise NetworkError(f"move network device {current} {where}: it is gone")
    try:
        ipr.link("set", index=index, net_ns_fd=target_fd, ifname=new_name)
    except failures() as exc:
        raise describe(f"move network device {current} {where} as {new_name}", exc) from None


def _restore(ipr: Any, name: str, entry: dict[str, Any]) -> None:
    """Re-apply MTU, addresses and up state to link `name` in `ipr`'s namespace."""
    index = link_index(ipr, name)
    if index is None:
        raise NetworkError(f"network device {name}: not found after the move")
    step = f"network device {name}: set MTU {entry['mtu']}"
    try:
        if entry["mtu"]:
            ipr.link("set", index=index, mtu=entry["mtu"])
        for addr in entry["addresses"]:
            step = f"network device {name}: add address {addr['address']}/{addr['prefixlen']}"
            ipr.addr("add", index=index, address=addr["address"], prefixlen=addr["prefixlen"])
        if entry["up"]:
            step = f"network device {name}: set up"
            ipr.link("set", index=index, state="up")
    except failures() as exc:
        raise describe(step, exc) from None


def _return_devices(inside: Any, entries: list[dict[str, Any]]) -> None:
    """Move each entry found in `inside` back to our namespace under its host name."""
    host = iproute()
    try:
        with netns_fd("/proc/thread-self/ns/net") as home:
            for entry in entries:
                if link_index(inside, entry["name"]) is None:
                    if not _on_host(entry["host"]):
                        log.warning(f"network device {entry['name']} ({entry['host']} on the "
                                    "host) is no longer in the container")
                    continue
                try:
                    _move(inside, entry["name"], home, entry["host"], "back to the host")
                    _restore(host, entry["host"], entry)
                except NetworkError as exc:
                    log.warning(str(exc))
    finally:
        host.close()


def _on_host(name: str) -> bool:
    ipr = iproute()
    try:
        return link_index(ipr, name) is not None
    finally:
        ipr.close()


def _pin(netns_path: str, pin_path: str) -> None:
    """Bind-mount the container's netns onto `pin_path` so it outlives the init."""
    fd = os.open(pin_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    try:
        syscalls.mount(netns_path, pin_path, None, MS_BIND)
    except OSError as exc:
        os.unlink(pin_path)
        raise describe(f"pin network namespace {netns_path} at {pin_path}", exc) from None


def _reachable_netns(pin_path: str, init_pid: int) -> str | None:
    """The container's netns: the pin if it holds one, else the live init's, else None."""
    if os.path.exists(pin_path) and _is_netns(pin_path):
        return pin_path
    if init_pid > 0 and _is_netns(f"/proc/{init_pid}/ns/net"):
        return f"/proc/{init_pid}/ns/net"
    return None


def _is_netns(path: str) -> bool:
    """True when `path` is a namespace file (nsfs), not the plain file a lost pin leaves."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/thread-self/ns/net").st_dev
    except OSError:
        return False
