"""Creating paths inside a container's rootfs without ever following a symlink.

`rootfs.secure_join` resolves a destination inside the rootfs (symlinks included, each one kept
inside the root). Between that and the mkdir that follows, the image's files could change: a
directory on the way swapped for a symlink to the host would make a plain `mkdir -p` create
directories *outside* the rootfs (the CVE-2024-45310 class). So creation walks the resolved path
one component at a time from an fd of its parent, opening each with O_NOFOLLOW: a component
that is now a symlink stops the walk with an error instead of being followed.
"""

from __future__ import annotations

import errno
import os

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(name: str, parent: int | None, path: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            # A plain OSError: the caller's step names what was being created.
            raise OSError(errno.ELOOP, "a component is not a directory (a symlink appeared "
                          "after the path was resolved?)", path) from None
        raise


def mkdir_all(path: str, mode: int = 0o755) -> None:
    """mkdir -p of an absolute, already resolved `path`, never following a symlink."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        for name in [c for c in path.split("/") if c]:
            if name in (".", ".."):
                raise OSError(errno.EINVAL, "not a resolved path", path)
            try:
                child = _open_dir(name, fd, path)
            except FileNotFoundError:
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:
                    pass
                child = _open_dir(name, fd, path)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def create_file(path: str, mode: int = 0o755) -> None:
    """Create an empty regular file at `path` (parents as directories), following no symlink."""
    parent, name = os.path.split(path)
    mkdir_all(parent)
    fd = os.open("/", _DIR_FLAGS)
    try:
        for component in [c for c in parent.split("/") if c]:
            child = _open_dir(component, fd, path)
            os.close(fd)
            fd = child
        created = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                          dir_fd=fd)
        os.close(created)
    finally:
        os.close(fd)
