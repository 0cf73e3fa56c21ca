"""`linux.resources.unified`: cgroup v2 files written as given, after every other limit (so they
win), each key one file of the container's cgroup. Multi-line values go one line per write."""

from __future__ import annotations

import errno
import os

from pyrunc.cgroups.fs import fail, read
from pyrunc.spec.resources import Resources

P = "/linux/resources/unified"


def apply(directory: str, r: Resources) -> None:
    for key, value in r.unified.items():
        _write_lines(directory, key, value)


def _write_lines(directory: str, key: str, value: str) -> None:
    path = os.path.join(directory, key)
    step = f"set {P}/{key}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM):
            _explain(directory, key, exc)
        fail(exc, f"{step} ({path})")
    try:
        lines = value.splitlines(keepends=True) or [value]
        for line in lines:
            try:
                os.write(fd, line.encode())
            except OSError as exc:
                fail(exc, f"{step} ({line.strip()} > {path})")
    finally:
        os.close(fd)


def _explain(directory: str, key: str, exc: OSError) -> None:
    """A missing file: say whether the key's controller is there at all, as runc does."""
    controller = key.partition(".")[0]
    try:
        available = read(directory, "cgroup.controllers").split()
    except OSError:
        return
    if controller != "cgroup" and controller not in available:
        from pyrunc.cgroups import CgroupError

        name = errno.errorcode.get(exc.errno or 0, "")
        raise CgroupError(f"set {P}/{key}: controller {controller!r} is not available in "
                          f"{directory}: {name}") from None
