"""Address leases for one bridge: a small text file guarded by flock.

`<state root>/netns-<inode>/<bridge>/` holds, for the bridge of that name in one network
namespace (bridges of the same name in two namespaces are different bridges):

    lock     flock(2) target; every change to this directory happens while holding it
    leases   one line per container: "<address> <container id>"
    subnet   the subnet, written when pyrunc created the bridge (so it also removes it)

Concurrent `create`s serialise on the lock, so two containers never get the same address.
The directory is removed with its last lease; a waiter whose lock file was removed meanwhile
notices (the file it locked has no links any more) and locks the new one instead.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
from contextlib import contextmanager

from pyrunc.network.netlink import NetworkError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_STATE_ROOT = "/run/pyrunc-net"


def bridge_dir(state_root: str, bridge: str) -> str:
    """The directory for `bridge` in the caller's own network namespace."""
    ino = os.stat("/proc/thread-self/ns/net").st_ino
    return os.path.join(state_root, f"netns-{ino}", bridge)


@contextmanager
def locked(directory: str) -> Iterator[None]:
    """Hold the directory's lock (creating the directory if needed)."""
    while True:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
        except FileNotFoundError:
            continue   # removed between makedirs and open by the last container's teardown
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def read(directory: str) -> dict[str, str]:
    """address -> container id."""
    try:
        with open(os.path.join(directory, "leases")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return {}
    leases = {}
    for line in lines:
        address, _, owner = line.partition(" ")
        if address and owner:
            leases[address] = owner
    return leases


def write(directory: str, leases: dict[str, str]) -> None:
    """Replace the lease file atomically (or remove it when empty)."""
    path = os.path.join(directory, "leases")
    if not leases:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(f"{address} {owner}\n" for address, owner in sorted(leases.items()))
    os.rename(tmp, path)


def allocate(directory: str, subnet: ipaddress.IPv4Network, owner: str) -> ipaddress.IPv4Address:
    """The lowest free address of `subnet` after the gateway (call with the lock held)."""
    leases = read(directory)
    for address, holder in leases.items():
        if holder == owner:
            return ipaddress.IPv4Address(address)
    hosts = subnet.hosts()
    next(hosts, None)   # the first host address is the bridge's own (the gateway)
    for candidate in hosts:
        if str(candidate) not in leases:
            leases[str(candidate)] = owner
            write(directory, leases)
            return candidate
    raise NetworkError(f"bridge subnet {subnet}: no free address left "
                       f"({len(leases)} leased)")


def release(directory: str, owner: str) -> int:
    """Drop `owner`'s lease (call with the lock held); returns how many leases remain."""
    leases = {a: o for a, o in read(directory).items() if o != owner}
    write(directory, leases)
    return len(leases)


def remove_directory(directory: str) -> None:
    """Remove the bridge's (now empty) directory and its netns directory if that is empty too."""
    for name in ("subnet", "lock"):
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    for path in (directory, os.path.dirname(directory)):
        try:
            os.rmdir(path)
        except OSError:
            return
