"""Netlink sockets bound to a chosen network namespace, without forking.

A netlink socket belongs to the network namespace its creator was in when it was opened, and
stays there. So to talk to a container's namespace we join it for just the moment it takes to
open the socket, then return to our own: cheaper than pyroute2's own `netns=` (which forks a
helper per socket) and it accepts any namespace path, such as /proc/<pid>/ns/net.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

from pyrunc.linux import syscalls
from pyrunc.linux.consts import CLONE_NEWNET

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


class NetworkError(Exception):
    """A networking step failed; str() is one line naming the step (and the errno)."""


@contextmanager
def netns_fd(path: str) -> Iterator[int]:
    """An fd of the network namespace at `path` (closed on exit)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"open network namespace {path}: {_errname(exc)}") from None
    try:
        yield fd
    finally:
        os.close(fd)


def iproute(netns_path: str | None = None) -> Any:
    """An IPRoute whose socket lives in the namespace at `netns_path` (None: our own)."""
    from pyroute2 import IPRoute

    if netns_path is None:
        return IPRoute()
    with netns_fd(netns_path) as target, netns_fd("/proc/thread-self/ns/net") as home:
        syscalls.setns(target, CLONE_NEWNET, step=f"join network namespace {netns_path}")
        try:
            return IPRoute()
        finally:
            syscalls.setns(home, CLONE_NEWNET, step="return to the runtime's network namespace")


def same_netns(path_a: str, path_b: str) -> bool:
    """True when both paths name one network namespace (same nsfs inode and device)."""
    a, b = os.stat(path_a), os.stat(path_b)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def link_index(ipr: Any, name: str) -> int | None:
    """The ifindex of link `name` in `ipr`'s namespace, or None."""
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def failures() -> tuple[type[Exception], ...]:
    """What a netlink request raises: pyroute2's NetlinkError (not an OSError) or OSError.

    A function, so that pyroute2 is imported only where a request was really made.
    """
    from pyroute2.netlink.exceptions import NetlinkError

    return (OSError, NetlinkError)


def _errname(exc: OSError) -> str:
    import errno

    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"{name} ({exc.strerror})" if exc.strerror else name


def describe(step: str, exc: Exception) -> NetworkError:
    """One line for a failed netlink or system call: the step, then the errno name."""
    import errno

    if isinstance(exc, OSError) and exc.errno:
        return NetworkError(f"{step}: {_errname(exc)}")
    code = getattr(exc, "code", None)   # NetlinkError: the kernel's errno
    if isinstance(code, int) and code in errno.errorcode:
        return NetworkError(f"{step}: {errno.errorcode[code]} ({os.strerror(code)})")
    return NetworkError(f"{step}: {exc}")
