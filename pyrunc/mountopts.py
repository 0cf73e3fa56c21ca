"""Mount option strings (the `options` of a config.json mount) → what the kernel calls take.

An option list mixes four kinds of words, each of which ends up in a different system call:

* mount(2) flags (``ro``, ``nosuid``, ``bind``…) and their negations (``rw``, ``suid``…), where a
  later word wins over an earlier one;
* propagation types (``rprivate``, ``slave``…), each applied by a mount(2) call of its own after the
  mount exists;
* recursive attributes (``rro``, ``rnosuid``…), applied to a whole mount tree by mount_setattr(2);
* everything else (``mode=755``, ``size=65536k``…), passed to the filesystem as its data string.

``idmap`` and ``ridmap`` are none of these: they ask for an idmapped bind mount (see
`pyrunc.rootfs.idmap`), made with open_tree(2) and mount_setattr(2) rather than mount(2).

Parsing is pure: `parse_mount_options` makes no system call, so it is unit-tested without root.
"""

from __future__ import annotations

import os

from pyrunc.linux.consts import (
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_STRICTATIME,
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import NamedTuple
else:
    from pyrunc.records import NamedTuple

# Flag values the shared constants module does not name (kernel uapi <linux/mount.h>).
_MS_POSIXACL = 1 << 16
_MS_I_VERSION = 1 << 23
_MOUNT_ATTR_RELATIME = 0x0
_MOUNT_ATTR_ATIME_MASK = 0x70  # MOUNT_ATTR__ATIME: the three-valued access-time field

#: option → (clears the flag?, MS_* flag)
_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID),
    "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV),
    "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC),
    "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "lazytime": (False, MS_LAZYTIME),
    "nolazytime": (True, MS_LAZYTIME),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "symfollow": (True, MS_NOSYMFOLLOW),
    "silent": (False, MS_SILENT),
    "loud": (True, MS_SILENT),
    "acl": (False, _MS_POSIXACL),
    "noacl": (True, _MS_POSIXACL),
    "iversion": (False, _MS_I_VERSION),
    "noiversion": (True, _MS_I_VERSION),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
}

#: propagation name → mount(2) flags; the plain names act on one mount, the r-forms on its subtree.
PROPAGATION_FLAGS: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

#: recursive option → (clears the attribute?, MOUNT_ATTR_* value)
_RECURSIVE_OPTIONS: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rnoatime": (False, MOUNT_ATTR_NOATIME),
    "ratime": (True, MOUNT_ATTR_NOATIME),
    "rrelatime": (False, _MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, _MOUNT_ATTR_RELATIME),
    "rstrictatime": (False, MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}

#: The access-time attributes: setting one of them means replacing the whole access-time field.
_ATIME_ATTRS = (MOUNT_ATTR_NOATIME, _MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME)

#: Options pyrunc acts on itself (not passed to the filesystem).
_EXTENSION_OPTIONS = ("tmpcopyup",)

#: idmapped-mount options → whether the mapping covers every mount of the tree (``ridmap``).
_IDMAP_OPTIONS = {"idmap": False, "ridmap": True}

#: Options that are recognised but refused, with the reason.
_UNSUPPORTED_OPTIONS: dict[str, str] = {}

#: Every option word pyrunc understands, for `pyrunc features` (mountOptions).
KNOWN_MOUNT_OPTIONS: tuple[str, ...] = tuple(sorted(
    {*_FLAG_OPTIONS, *PROPAGATION_FLAGS, *_RECURSIVE_OPTIONS, *_EXTENSION_OPTIONS,
     *_IDMAP_OPTIONS}))

#: The mount flags that say how a mount behaves (as opposed to what the call does: bind, remount).
BEHAVIOUR_FLAGS = (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS | MS_MANDLOCK
                   | MS_DIRSYNC | MS_NOSYMFOLLOW | MS_NOATIME | MS_NODIRATIME | MS_RELATIME
                   | MS_STRICTATIME | MS_LAZYTIME | _MS_POSIXACL | _MS_I_VERSION)


class UnsupportedMountOption(ValueError):
    """A mount option pyrunc recognises but cannot honour."""


class MountOptions(NamedTuple):
    """One mount's options, sorted by the system call that applies them."""

    flags: int = 0
    """MS_* flags for mount(2) (including MS_BIND / MS_REC for bind and rbind)."""
    clear_flags: int = 0
    """MS_* flags the options explicitly turn off (rw, suid, dev, …)."""
    propagation: tuple[int, ...] = ()
    """Propagation changes, each one mount(2) call, in the order given."""
    attr_set: int = 0
    """MOUNT_ATTR_* to set on the whole tree with mount_setattr(2)."""
    attr_clr: int = 0
    """MOUNT_ATTR_* to clear on the whole tree with mount_setattr(2)."""
    data: str = ""
    """Filesystem-specific options, comma-separated (``mode=755,size=65536k``)."""
    copy_up: bool = False
    """``tmpcopyup``: fill a new tmpfs with what the directory under it held."""
    idmap: bool = False
    """``idmap`` or ``ridmap`` was given: the bind mount gets an id mapping."""
    idmap_recursive: bool = False
    """``ridmap`` (the last of the two wins, as in runc): every mount of an rbind tree is
    idmapped, not only its top."""

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)

    @property
    def is_recursive_bind(self) -> bool:
        return self.flags & (MS_BIND | MS_REC) == MS_BIND | MS_REC

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY)

    @property
    def behaviour_flags(self) -> int:
        """The flags that a bind mount can only get through a second, MS_REMOUNT call."""
        return self.flags & BEHAVIOUR_FLAGS

    @property
    def has_recursive_attrs(self) -> bool:
        return bool(self.attr_set or self.attr_clr)


def parse_mount_options(options: Iterable[str]) -> MountOptions:
    """Sort `options` into flags, propagation changes, recursive attributes and data.

    Raises `UnsupportedMountOption` for options that pyrunc recognises but refuses.
    """
    flags = clear = attr_set = attr_clr = 0
    propagation: list[int] = []
    data: list[str] = []
    copy_up = idmap = idmap_recursive = False
    for option in options:
        if option in _UNSUPPORTED_OPTIONS:
            raise UnsupportedMountOption(f"mount option {option!r}: {_UNSUPPORTED_OPTIONS[option]}")
        if option in _FLAG_OPTIONS:
            clears, flag = _FLAG_OPTIONS[option]
            if clears:
                flags &= ~flag
                clear |= flag
            else:
                flags |= flag
                clear &= ~flag
        elif option in PROPAGATION_FLAGS:
            propagation.append(PROPAGATION_FLAGS[option])
        elif option in _RECURSIVE_OPTIONS:
            # runc 1.5's mapping: a later option undoes an earlier one, and every access-time
            # option (setting or clearing one) replaces the whole three-valued access-time
            # field, which mount_setattr(2) only changes when MOUNT_ATTR__ATIME is in attr_clr
            # (a partial mask there is EINVAL). So `ratime` and `rnostrictatime` end up as
            # relatime (MOUNT_ATTR_RELATIME is 0), as the kernel's default is.
            clears, attr = _RECURSIVE_OPTIONS[option]
            if clears:
                attr_clr |= attr
                attr_set &= ~attr
            else:
                attr_set |= attr
                attr_clr &= ~attr
            if attr in _ATIME_ATTRS:
                attr_clr |= _MOUNT_ATTR_ATIME_MASK
        elif option == "tmpcopyup":
            copy_up = True
        elif option in _IDMAP_OPTIONS:
            idmap, idmap_recursive = True, _IDMAP_OPTIONS[option]
        elif option:
            data.append(option)
    return MountOptions(flags=flags, clear_flags=clear, propagation=tuple(propagation),
                        attr_set=attr_set, attr_clr=attr_clr, data=",".join(data),
                        copy_up=copy_up, idmap=idmap, idmap_recursive=idmap_recursive)


def propagation_flags(name: str) -> int:
    """mount(2) flags for a `linux.rootfsPropagation` value (``rslave``…); ValueError if unknown."""
    try:
        return PROPAGATION_FLAGS[name]
    except KeyError:
        raise ValueError(f"unknown mount propagation {name!r}") from None


#: statvfs(3) ST_* bits → mount(2) MS_* bits (they differ for relatime and nosymfollow).
_STATVFS_TO_MS = (
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_SYNCHRONOUS, MS_SYNCHRONOUS),
    (os.ST_MANDLOCK, MS_MANDLOCK),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
    (0x2000, MS_NOSYMFOLLOW),  # ST_NOSYMFOLLOW (glibc 2.34)
)

#: Flags that a less privileged mount namespace inherits locked: a bind remount inside a user
#: namespace must repeat them or the kernel answers EPERM.
LOCKED_FLAGS = (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME
                | MS_RELATIME)


def ms_flags_from_statvfs(f_flag: int) -> int:
    """Convert `os.statvfs(path).f_flag` into the MS_* flags that mount(2) understands."""
    result = 0
    for st, ms in _STATVFS_TO_MS:
        if f_flag & st:
            result |= ms
    return result
