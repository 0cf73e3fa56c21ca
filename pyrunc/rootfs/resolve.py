"""Resolving a destination inside the rootfs (`secure_join`): symlinks are followed, never out
of it.
"""

from __future__ import annotations

import errno
import os
import stat

from pyrunc.linux.syscalls import (
    KernelError,
)

#: How many symlinks `secure_join` follows before giving up (ELOOP), like the kernel's 40 but for a
#: whole path rather than one lookup.
MAX_SYMLINKS = 255


def secure_join(root: str, unsafe_path: str) -> str:
    """Resolve `unsafe_path` inside `root` as if `root` were "/" (as chroot would).

    Symlinks are followed, but an absolute target restarts at `root` and ".." never climbs above it.
    Components that do not exist are appended as they are. The result is always `root` or a path
    under it; it is not opened, so a caller that must not race with a writer re-checks it.
    """
    root = os.path.normpath(root)
    resolved = ""  # path below root, "" or starting with "/"
    pending = [c for c in unsafe_path.split("/") if c]
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = resolved.rsplit("/", 1)[0]
            continue
        candidate = resolved + "/" + part
        full = root + candidate if root != "/" else candidate
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            resolved = candidate
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved = candidate
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise KernelError(errno.ELOOP, f"resolve {unsafe_path} inside {root}", unsafe_path)
        target = os.readlink(full)
        if target.startswith("/"):
            resolved = ""
        pending[:0] = [c for c in target.split("/") if c]
    if root == "/":
        return resolved or "/"
    return root + resolved


def _is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")
