"""Changing the flags of a bind mount, as runc 1.5 does when some of them are locked.

A bind mount starts with the flags of its source; a second mount(2) with MS_REMOUNT|MS_BIND
sets the ones config.json asks for (and clears the others). In a user namespace the kernel
locks ro/nosuid/nodev/noexec and the access-time flags a mount had when the namespace got it
(MNT_LOCK_*): a remount that drops one of them is EPERM. runc then re-reads the mount's flags
and retries with the locked ones kept, unless the config explicitly asked to clear one of them
(`rw` on a locked read-only source, `dev`/`exec`/`suid` on a locked nodev/noexec/nosuid one),
or asked for an access-time mode other than the locked one: then it fails, rather than give a
mount that is not what was asked for. pyrunc does the same.
"""

from __future__ import annotations

import os

from pyrunc.linux.consts import (
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_RELATIME,
    MS_REMOUNT,
    MS_STRICTATIME,
)
from pyrunc.linux.syscalls import KernelError, describe_oserror, mount
from pyrunc.mountopts import ms_flags_from_statvfs

#: The access-time modes, exactly one of which a mount has (strictatime is "neither of the others").
ATIME_MODES = MS_NOATIME | MS_RELATIME | MS_STRICTATIME
ATIME_FLAGS = ATIME_MODES | MS_NODIRATIME
#: What the kernel can lock on a mount inherited by a less privileged namespace.
LOCKABLE_FLAGS = MS_RDONLY | MS_NODEV | MS_NOEXEC | MS_NOSUID | ATIME_FLAGS

_NAMES = ((MS_RDONLY, "ro"), (MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec"),
          (MS_NOATIME, "noatime"), (MS_RELATIME, "relatime"), (MS_STRICTATIME, "strictatime"),
          (MS_NODIRATIME, "nodiratime"))


def flag_names(flags: int) -> str:
    """``ro,nodev`` for MS_RDONLY|MS_NODEV (the lockable flags only)."""
    return ",".join(name for flag, name in _NAMES if flags & flag) or "none"


def current_flags(path: str) -> int:
    """The mount flags `path`'s mount has now (statvfs does not report strictatime: it is the
    mode when neither noatime nor relatime is set)."""
    try:
        flags = ms_flags_from_statvfs(os.statvfs(path).f_flag)
    except OSError as exc:
        raise describe_oserror(exc, f"statvfs {path}") from None
    if not flags & ATIME_MODES:
        flags |= MS_STRICTATIME
    return flags


def remount_bind(path: str, flags: int, step: str, *, cleared: int = 0) -> None:
    """Give the bind mount at `path` exactly `flags` (MS_* behaviour flags).

    `cleared` are the flags the options explicitly turned off (``rw``, ``dev``…): those must
    not come back as locked flags. `path` is already resolved (a /proc/self/fd path).
    """
    flags |= MS_REMOUNT | MS_BIND
    try:
        mount(None, path, None, flags, step=step)
        return
    except KernelError as exc:
        first = exc
    have = current_flags(path)
    cannot_clear = have & cleared & LOCKABLE_FLAGS
    if cannot_clear:
        raise KernelError(first.errno or 1, f"{step}: cannot clear locked flags "
                          f"{flag_names(cannot_clear)}", path)
    if flags & ATIME_FLAGS and flags & ATIME_FLAGS != have & ATIME_FLAGS:
        raise KernelError(first.errno or 1, f"{step}: cannot change locked atime flags "
                          f"{flag_names(have & ATIME_FLAGS)}", path)
    locked = have & LOCKABLE_FLAGS
    mount(None, path, None, flags | locked,
          step=f"{step} (with locked flags {flag_names(locked)} re-applied)")
