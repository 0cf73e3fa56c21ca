"""The typed channel between the runtime and the processes it forks.

A SOCK_SEQPACKET socketpair keeps message boundaries, so each message is one JSON object in one
datagram. When every child holding the other end is gone, `recv` sees EOF — which is how the
runtime learns that a child died without saying why, and how the init learns that the runtime
died (it then exits instead of waiting forever).
"""

from __future__ import annotations

# `_socket` rather than `socket`: the `socket` module builds its enums at import (~4 ms of
# `create`) and adds nothing this channel uses. fastjson rather than `json`, for the same reason.
import _socket
import os
import select
import sys

from pyrunc import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cgroups import CgroupJoiner

# Message kinds, in the order a successful creation sends them.
CGROUP_JOINED = "cgroup-joined"      # runtime -> intermediate: you are in the container's cgroup
IDMAP_REQUEST = "idmap-request"      # intermediate -> runtime: write my uid_map/gid_map
IDMAP_DONE = "idmap-done"            # runtime -> intermediate
TIMENS_REQUEST = "timens-request"    # intermediate -> runtime: write my timens_offsets
TIMENS_DONE = "timens-done"          # runtime -> intermediate
INIT_PID = "init-pid"                # intermediate -> runtime: the init's host pid
RUN_HOOKS = "run-hooks"              # init -> runtime: mounts done, run prestart/createRuntime
HOOKS_DONE = "hooks-done"            # runtime -> init: carries the state for createContainer
MOUNT_SOURCE_REQUEST = "mount-source-request"  # init -> runtime: open this bind source for me
MOUNT_SOURCE = "mount-source"        # runtime -> init: the O_PATH fd (SCM_RIGHTS) or an errno
IDMAPPED_MOUNT_REQUEST = "idmapped-mount-request"  # init -> runtime: mount N's idmapped tree
SECCOMP_LISTENER = "seccomp-listener"  # init -> runtime: the notify fd, for listenerPath
SECCOMP_LISTENER_DONE = "seccomp-listener-done"  # runtime -> init
READY = "ready"                      # init -> runtime: parked, waiting for `start`
ERROR = "error"                      # child -> runtime: {"message": "..."}


_SO_SNDBUFFORCE = 32
_SEND_BUFFER = 4 << 20

#: The most fds one message may carry (the console master, a pidfd, a seccomp listener, ...).
_MAX_FDS = 16


class ChannelClosed(Exception):
    """The other side went away without a word."""


class SyncChannel:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    @staticmethod
    def pair() -> tuple[SyncChannel, SyncChannel]:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        for sock in (a, b):
            # One datagram must fit the send buffer: room for a large hook state (annotations).
            try:
                sock.setsockopt(_socket.SOL_SOCKET, _SO_SNDBUFFORCE, _SEND_BUFFER)
            except OSError:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, _SEND_BUFFER)
        return SyncChannel(a), SyncChannel(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, kind: str, fds: list[int] | None = None, **data: Any) -> None:
        """One message; `fds` travel beside it as SCM_RIGHTS (the peer gets its own copies)."""
        payload = fastjson.dumps({"type": kind, **data}).encode()
        if fds:
            send_fds(self.sock, payload, fds)
        else:
            self.sock.send(payload)

    def send_with_fd(self, kind: str, fd: int, **data: Any) -> None:
        """One message carrying one file descriptor (SCM_RIGHTS)."""
        send_fds(self.sock, fastjson.dumps({"type": kind, **data}).encode(), [fd])

    def recv_with_fd(self) -> tuple[dict[str, Any], int | None]:
        """One message and the fd it carries, if any (received close-on-exec)."""
        data, fds = recv_fds(self.sock, 1 << 16, 1)
        if not data:
            for fd in fds:
                os.close(fd)
            raise ChannelClosed()
        for extra in fds[1:]:
            os.close(extra)
        return fastjson.loads(data), (fds[0] if fds else None)

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message; passed fds are in its "fds" list (close them when done)."""
        if timeout is not None:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                raise TimeoutError("timed out waiting for the container process")
        # A datagram is read whole or not at all: peek at its real size first (MSG_TRUNC makes
        # the kernel report it even when it exceeds the buffer), so no message is ever cut.
        length = self._peek_length()
        data, fds = recv_fds(self.sock, length + 1, _MAX_FDS, cloexec=False)
        if not data:
            raise ChannelClosed()
        msg: dict[str, Any] = fastjson.loads(data)
        if fds:
            msg["fds"] = fds
        return msg

    def _peek_length(self) -> int:
        """The size of the datagram waiting to be read (0 at EOF).

        recv_into with MSG_TRUNC returns the datagram's full length while copying one byte,
        and, as every socket method, is retried when a signal interrupts the wait (a signal
        to a foreground `run` while it creates is held for the container, not an error).
        """
        return self.sock.recv_into(bytearray(1), 1, _socket.MSG_PEEK | _socket.MSG_TRUNC)

    def expect(self, kind: str) -> dict[str, Any]:
        """Receive one message that must be `kind` (an ERROR from the peer becomes an exception)."""
        msg = self.recv()
        if msg["type"] == ERROR:
            raise ChildError(msg["message"])
        if msg["type"] != kind:
            raise ChildError(f"protocol error: expected {kind}, got {msg['type']}")
        return msg

    def pending_error(self) -> str | None:
        """The ERROR the peer already sent, if one is waiting (it failed, and exited, while we
        were busy elsewhere)."""
        try:
            msg = self.recv(timeout=0)
        except (TimeoutError, ChannelClosed, OSError):
            return None
        return str(msg["message"]) if msg.get("type") == ERROR else None

    def close(self) -> None:
        self.sock.close()


def move_into_cgroup(chan: SyncChannel, cgroups: CgroupJoiner, pid: int) -> str | None:
    """Move the freshly forked child `pid` into the cgroup, then send it CGROUP_JOINED.

    The child works (imports its modules) while we wait in the move; if it failed meanwhile,
    the move or the send may fail, and the child's own ERROR (returned here) is the reason.
    """
    try:
        cgroups.add_process(pid)
    except OSError:
        reason = chan.pending_error()
        if reason is not None:
            return reason
        raise
    try:
        chan.send(CGROUP_JOINED)
    except OSError:
        pass   # it died while we waited: its ERROR is the next message
    return None


class ChildError(Exception):
    """An error reported by a child process; its text is already the one line to show."""


def send_fds(sock: _socket.socket, data: bytes, fds: list[int]) -> None:
    """One datagram with `fds` beside it (SCM_RIGHTS), as socket.send_fds sends it."""
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                           _pack_ints(fds))])


def recv_fds(sock: _socket.socket, bufsize: int, maxfds: int,
             cloexec: bool = True) -> tuple[bytes, list[int]]:
    """One datagram and the fds that came with it (close-on-exec unless told otherwise)."""
    flags = _socket.MSG_CMSG_CLOEXEC if cloexec else 0
    data, ancdata, _, _ = sock.recvmsg(bufsize, _socket.CMSG_SPACE(maxfds * 4), flags)
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.extend(_unpack_ints(payload))
    return data, fds


def _pack_ints(values: list[int]) -> bytes:
    """C ints in native order, as SCM_RIGHTS carries fds. Not `array`: importing it imports
    `collections.abc` (and `collections`), ~1.5 ms of every `create`.
    """
    return b"".join(value.to_bytes(4, sys.byteorder, signed=True) for value in values)


def _unpack_ints(payload: bytes) -> list[int]:
    """The whole C ints in `payload` (a truncated trailing one is dropped)."""
    return [int.from_bytes(payload[i:i + 4], sys.byteorder, signed=True)
            for i in range(0, len(payload) - 3, 4)]
