"""Bind-mount sources opened by the runtime for an init that cannot reach them itself.

In a new user namespace the container's root is an ordinary host user (say uid 100000): a
bind source under a directory it may not search (a 0700 home, pytest's tmp dirs) cannot even
be looked up by the init. runc 1.5 answers such an init's request from the host side: a
thread of the runtime joins the container's mount namespace (so the source is resolved there,
seeing every mount made earlier in the list, exactly at its turn), opens it O_PATH with the
runtime's credentials and passes the fd back; the init then mounts /proc/self/fd/<n>, which
needs no permission on the path. pyrunc does the same with a short-lived forked helper rather
than a thread (setns(CLONE_NEWNS) must not change the runtime's own root and cwd):

    init ── MOUNT_SOURCE_REQUEST {source} ──▶ runtime ── fork ─▶ helper: setns(mnt), open(O_PATH)
    init ◀── MOUNT_SOURCE {errno?} + fd ───── runtime ◀── fd ── helper exits

Only bind mounts whose source the init cannot stat ask for this (as runc); a source that does
not exist for the runtime either still fails, now with the runtime's errno.

Idmapped mounts always come this way (IDMAPPED_MOUNT_REQUEST {mount: index}): the helper makes
the detached, idmapped tree (see `pyrunc.rootfs.idmap`) and the init attaches it. The init
names only the index: what is mounted, with which mapping, the runtime reads from its own copy
of the config.
"""

from __future__ import annotations

# Not `socket` or `json`: their imports cost milliseconds of every create (see sync.py).
import _socket
import os

from pyrunc import fastjson
from pyrunc.linux import syscalls
from pyrunc.linux.consts import CLONE_NEWNS
from pyrunc.process import sync

TYPE_CHECKING = False  # not `typing`: see pyrunc/records.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyrunc.rootfs.idmap import UsernsFds
    from pyrunc.spec.model import Config


def request(chan: sync.SyncChannel, source: str) -> int:
    """Init side: ask the runtime to open `source`; return the O_PATH fd (close-on-exec)."""
    chan.send(sync.MOUNT_SOURCE_REQUEST, source=source)
    msg, fd = _receive_mount_source(chan)
    if fd is None:
        err = int(msg.get("errno") or 5)
        raise syscalls.KernelError(err, f"open bind source {source} from the host side "
                                        f"({msg.get('message', '')})", source)
    return fd


def _receive_mount_source(chan: sync.SyncChannel) -> tuple[dict[str, Any], int | None]:
    """The runtime's MOUNT_SOURCE answer: the message and its fd (None when it sent an errno)."""
    msg, fd = chan.recv_with_fd()
    if msg["type"] == sync.ERROR:
        raise sync.ChildError(msg["message"])
    if msg["type"] != sync.MOUNT_SOURCE:
        raise sync.ChildError(f"protocol error: expected {sync.MOUNT_SOURCE}, got {msg['type']}")
    return msg, fd


def serve(chan: sync.SyncChannel, init_pid: int, source: str) -> None:
    """Runtime side: open `source` in the init's mount namespace and send the fd (or errno)."""
    try:
        fd = open_in_mount_namespace(init_pid, source)
    except OSError as exc:
        chan.send(sync.MOUNT_SOURCE, errno=exc.errno or 5, message=str(exc))
        return
    try:
        chan.send_with_fd(sync.MOUNT_SOURCE, fd)
    finally:
        os.close(fd)


def request_idmapped(chan: sync.SyncChannel, index: int) -> int:
    """Init side: ask the runtime for the idmapped tree of mount `index`; return its fd."""
    chan.send(sync.IDMAPPED_MOUNT_REQUEST, mount=index)
    msg, fd = _receive_mount_source(chan)
    if fd is None:
        raise syscalls.KernelError(int(msg.get("errno") or 5),
                                   str(msg.get("message") or f"idmapped mount /mounts/{index}"))
    return fd


def serve_idmapped(chan: sync.SyncChannel, init_pid: int, config: Config, index: int,
                   userns: UsernsFds) -> None:
    """Runtime side: build mount `index`'s idmapped tree in the init's mount namespace, send it."""
    from pyrunc.rootfs import idmap
    from pyrunc.spec.idmap import mount_idmap

    try:
        m = config.mounts[index]
        mapping = mount_idmap(config, m)
        if mapping is None:
            raise syscalls.KernelError(22, f"/mounts/{index} is not an idmapped mount")
        source = os.path.abspath(m.source or "")
        what = f"idmapped mount /mounts/{index} ({source} on {m.destination})"
        userns_fd = userns.get(mapping, what)
        rbind = "rbind" in m.options
        fd = open_in_mount_namespace(init_pid, source, lambda path: idmap.open_idmapped_tree(
            path, mapping, userns_fd, rbind=rbind, what=what))
    except (OSError, IndexError) as exc:
        message = getattr(exc, "step", None) or str(exc)
        chan.send(sync.MOUNT_SOURCE, errno=getattr(exc, "errno", None) or 5, message=message)
        return
    try:
        chan.send_with_fd(sync.MOUNT_SOURCE, fd)
    finally:
        os.close(fd)


def _open_path(path: str) -> int:
    return os.open(path, os.O_PATH | os.O_CLOEXEC)


def open_in_mount_namespace(pid: int, path: str,
                            opener: Callable[[str], int] = _open_path) -> int:
    """opener(path) (by default open(path, O_PATH)) as this process, but resolved in process
    `pid`'s mount namespace."""
    ns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        helper = os.fork()
        if helper == 0:
            _helper(ours, theirs, ns, path, opener)
        theirs.close()
        data, fds = sync.recv_fds(ours, 4096, 1)
        _reap(helper)
    finally:
        os.close(ns)
        ours.close()
        if theirs.fileno() >= 0:
            theirs.close()
    if fds:
        return fds[0]
    reply = fastjson.loads(data or b'{"errno": 5, "message": "mount source helper died"}')
    raise syscalls.KernelError(int(reply["errno"]), reply["message"], path)


def _helper(ours: _socket.socket, theirs: _socket.socket, ns: int, path: str,
            opener: Callable[[str], int]) -> None:
    """The forked helper: never returns."""
    try:
        ours.close()
        syscalls.setns(ns, CLONE_NEWNS, step="join the container's mount namespace")
        fd = opener(path)
        sync.send_fds(theirs, b"fd", [fd])
    except OSError as exc:
        err = exc.errno or 5
        step = getattr(exc, "step", None) or f"open {path}"
        try:
            theirs.send(fastjson.dumps({"errno": err, "message": step}).encode())
        except OSError:
            pass
    except BaseException:  # noqa: BLE001 - a forked child must not return into the caller
        pass
    finally:
        os._exit(0)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
