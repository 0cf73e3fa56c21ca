"""Idmapped bind mounts (mounts[].uidMappings/gidMappings, options idmap/ridmap).

An idmapped mount shows the files of its source through a user namespace's id maps: with
``0 100000 65536``, a file owned by host uid 100000 appears owned by uid 0, and a file created
through the mount by uid 0 is stored as 100000. The kernel only sets MOUNT_ATTR_IDMAP on a
detached mount, so the bind cannot be a plain mount(2):

    runtime   user namespace with the mount's maps (made once per mapping, or the container's own)
    helper    (forked by the runtime, joined to the container's mount namespace)
              open_tree(source, OPEN_TREE_CLONE [| AT_RECURSIVE for rbind])   a detached copy
              mount_setattr(tree, MOUNT_ATTR_IDMAP, userns [, AT_RECURSIVE for ridmap])
    init      move_mount(tree → destination), then the bind's flags and propagation as usual

The runtime's side runs with the host's credentials (the container's root may not even reach
the source) and sees the source at its turn in the mount list, as runc 1.2+ does; the tree
travels to the init as an fd over the sync channel (see `pyrunc.process.mountsource`).
"""

from __future__ import annotations

import errno
import os

from pyrunc.linux import mountapi
from pyrunc.linux.syscalls import KernelError
from pyrunc.spec.idmap import MountIdmap, is_idmapped, mount_idmap
from pyrunc.spec.model import Config, IDMapping, Linux, Mount

__all__ = ["UsernsFds", "attach_tree", "format_map", "is_idmapped", "local_idmapped_tree",
           "open_idmapped_tree"]


def format_map(mappings: tuple[IDMapping, ...]) -> str:
    """The /proc/<pid>/uid_map text for `mappings`."""
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


class UsernsFds:
    """The user namespaces that one container creation's idmapped mounts take their maps from.

    Mounts with the same mapping share one namespace; a mapping equal to the container's own
    uses the container's user namespace; a joined namespace is opened by its path. Every fd is
    owned here until `close`.
    """

    def __init__(self, linux: Linux, init_pid: int) -> None:
        self._linux = linux
        self._init_pid = init_pid
        self._fds: dict[object, int] = {}

    def get(self, idmap: MountIdmap, what: str) -> int:
        key: object = idmap.userns_path or (idmap.uid_mappings, idmap.gid_mappings)
        if key not in self._fds:
            self._fds[key] = self._open(idmap, what)
        return self._fds[key]

    def _open(self, idmap: MountIdmap, what: str) -> int:
        path = idmap.userns_path
        if path is None and self._linux.creates("user") \
                and (idmap.uid_mappings, idmap.gid_mappings) \
                == (self._linux.uid_mappings, self._linux.gid_mappings):
            path = f"/proc/{self._init_pid}/ns/user"
        if path is not None:
            try:
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise KernelError(exc.errno or errno.EIO,
                                  f"{what}: open the user namespace {path}", path) from None
        from pyrunc.linux.userns import new_user_namespace

        return new_user_namespace(format_map(idmap.uid_mappings), format_map(idmap.gid_mappings),
                                  what=what)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def open_idmapped_tree(source: str, idmap: MountIdmap, userns_fd: int, *, rbind: bool,
                       what: str) -> int:
    """A detached, idmapped copy of the mount tree at `source` (an fd for `attach_tree`)."""
    flags = mountapi.OPEN_TREE_CLONE | mountapi.OPEN_TREE_CLOEXEC
    if rbind:
        flags |= mountapi.AT_RECURSIVE
    try:
        tree = mountapi.open_tree(source, flags)
    except KernelError as exc:
        raise KernelError(exc.errno or errno.EIO, f"{what}: open_tree(OPEN_TREE_CLONE) of the "
                          "source", source) from None
    try:
        mountapi.set_idmap(tree, userns_fd, recursive=idmap.recursive)
    except KernelError as exc:
        os.close(tree)
        hint = ""
        if exc.errno == errno.EINVAL:
            hint = " (the source's filesystem may not support idmapped mounts on this kernel)"
        raise KernelError(exc.errno or errno.EIO,
                          f"{what}: mount_setattr(MOUNT_ATTR_IDMAP){hint}", source) from None
    return tree


def attach_tree(tree_fd: int, dest: str, what: str) -> None:
    """move_mount(2) the detached tree onto `dest` (a checked path, or the /proc/self/fd link of
    one: it is opened, and the mount made onto the fd, which move_mount needs)."""
    try:
        target = os.open(dest, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError(exc.errno or errno.EIO, f"{what}: open the destination", dest) from None
    try:
        mountapi.move_mount_to_fd(tree_fd, target, dest)
    except KernelError as exc:
        raise KernelError(exc.errno or errno.EIO, f"{what}: move_mount onto the destination",
                          dest) from None
    finally:
        os.close(target)


def local_idmapped_tree(config: Config, m: Mount) -> int:
    """The idmapped tree of `m`, built by this process in its own mount namespace.

    For callers with no runtime to ask (the rootfs steps run on their own); a container's init
    asks the runtime instead (`pyrunc.process.mountsource.request_idmapped`).
    """
    mapping = mount_idmap(config, m)
    source = os.path.abspath(m.source or "")
    what = f"idmapped mount {source} on {m.destination}"
    if mapping is None:
        raise KernelError(errno.EINVAL, f"{what}: not an idmapped mount")
    userns = UsernsFds(config.linux, os.getpid())
    try:
        return open_idmapped_tree(source, mapping, userns.get(mapping, what),
                                  rbind="rbind" in m.options, what=what)
    finally:
        userns.close()
