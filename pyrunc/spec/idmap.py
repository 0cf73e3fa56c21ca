"""Which mounts are idmapped, with which mapping: config.md's `uidMappings`/`gidMappings` on a
mount and the `idmap`/`ridmap` options, read the way runc 1.2+ reads them.

* Mappings on a mount make it idmapped even without an option (then non-recursively); `ridmap`
  maps every mount of an rbind tree, `idmap` its top mount only (the last of the two wins).
* `idmap`/`ridmap` without mappings take the container's user namespace: its `linux`
  mappings when it creates one, the namespace itself when it joins one by path. A container
  without a user namespace has nothing to take: that is an error.
* The mapping does not have to match the container's user namespace, and the container does
  not need one: the mount gets a user namespace of its own for the mapping.
* Only bind mounts can be idmapped, and (as in runc) only by a runtime running as root.

Pure: no system call, so it is unit-tested without root. `pyrunc.rootfs.idmap` makes the mounts.
"""

from __future__ import annotations

import os

from pyrunc.mountopts import parse_mount_options
from pyrunc.spec.model import Config, IDMapping, Mount

TYPE_CHECKING = False  # not `typing`: see pyrunc/records.py
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from pyrunc.records import NamedTuple


class MountIdmap(NamedTuple):
    """How one mount is idmapped."""

    uid_mappings: tuple[IDMapping, ...]
    gid_mappings: tuple[IDMapping, ...]
    recursive: bool = False
    """``ridmap``: every mount of the tree gets the mapping, not only its top."""
    userns_path: str | None = None
    """Set instead of the mappings: the joined user namespace whose mapping the mount takes."""


class IdmapError(ValueError):
    """An idmapped mount config.json cannot have; `str()` is "<JSON pointer>: <why>"."""


def _wants_idmap(m: Mount) -> tuple[bool, bool]:
    """(idmapped?, recursive?) from the mount's own fields."""
    opts = parse_mount_options(m.options)
    mapped = opts.idmap or m.uid_mappings is not None or m.gid_mappings is not None
    return mapped, opts.idmap_recursive


def is_idmapped(m: Mount) -> bool:
    """True for a mount with uidMappings/gidMappings or the idmap/ridmap option."""
    return _wants_idmap(m)[0]


def mount_idmap(config: Config, m: Mount) -> MountIdmap | None:
    """The idmapping of mount `m` of `config`, or None when it is a plain mount.

    Assumes `check_idmapped_mounts` accepted the config.
    """
    mapped, recursive = _wants_idmap(m)
    if not mapped:
        return None
    if m.uid_mappings is not None or m.gid_mappings is not None:
        return MountIdmap(m.uid_mappings or (), m.gid_mappings or (), recursive)
    userns = config.linux.namespace("user")
    if userns is not None and userns.path is not None:
        return MountIdmap((), (), recursive, userns.path)
    return MountIdmap(config.linux.uid_mappings, config.linux.gid_mappings, recursive)


def check_idmapped_mounts(config: Config) -> None:
    """Refuse what runc refuses, naming the field; raises `IdmapError`."""
    for i, m in enumerate(config.mounts):
        mapped, _ = _wants_idmap(m)
        if not mapped:
            continue
        given = m.uid_mappings is not None or m.gid_mappings is not None
        field = f"/mounts/{i}/uidMappings" if given else f"/mounts/{i}/options"
        if not m.is_bind:
            raise IdmapError(f"{field}: idmapped mounts must be bind mounts "
                             f"(type {m.type or 'none'!r} without bind or rbind)")
        if os.geteuid() != 0:
            raise IdmapError(f"{field}: idmapped mounts are not supported for rootless "
                             "containers")
        if given:
            for name, maps in (("uidMappings", m.uid_mappings), ("gidMappings", m.gid_mappings)):
                if not maps:
                    raise IdmapError(f"/mounts/{i}/{name}: an idmapped mount needs both "
                                     "uidMappings and gidMappings, each with one range or more")
        elif config.linux.namespace("user") is None:
            raise IdmapError(f"{field}: idmap/ridmap without uidMappings and gidMappings takes "
                             "the container's user namespace mapping, and there is no user "
                             "namespace")
