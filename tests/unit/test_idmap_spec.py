"""How config.json's idmapped mounts are read and checked (pyrunc.spec.idmap), without root
where the answer does not depend on it."""

from __future__ import annotations

import os
from typing import Any

import pytest

from pyrunc.spec.idmap import IdmapError, MountIdmap, check_idmapped_mounts, mount_idmap
from pyrunc.spec.model import Config, IDMapping

MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
OTHER = [{"containerID": 0, "hostID": 200000, "size": 10}]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="runc refuses idmapped mounts rootless")


def config(mount: dict[str, Any], *, userns: dict[str, Any] | None = None) -> Config:
    linux: dict[str, Any] = {"namespaces": [{"type": "mount"}]}
    if userns is not None:
        linux["namespaces"].append({"type": "user", **userns})
        if "path" not in userns:
            linux["uidMappings"] = linux["gidMappings"] = MAP
    doc = {"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "process": {"args": ["true"]},
           "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}, mount],
           "linux": linux}
    return Config.from_json(doc, "/bundle")


def bind(options: list[str], uid: Any = MAP, gid: Any = MAP, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"destination": "/data", "source": "/srv", "options": options, **extra}
    if uid is not None:
        m["uidMappings"] = uid
    if gid is not None:
        m["gidMappings"] = gid
    return m


def ids(raw: list[dict[str, int]]) -> tuple[IDMapping, ...]:
    return tuple(IDMapping.from_json(m) for m in raw)


def test_a_plain_bind_is_not_idmapped() -> None:
    c = config(bind(["rbind"], uid=None, gid=None))
    assert mount_idmap(c, c.mounts[1]) is None
    check_idmapped_mounts(c)


@pytest.mark.parametrize("options, recursive", [
    (["rbind"], False),              # mappings alone: idmap, not ridmap
    (["rbind", "idmap"], False),
    (["rbind", "ridmap"], True),
])
def test_mappings_on_the_mount_are_used_as_given(options: list[str], recursive: bool) -> None:
    c = config(bind(options, uid=OTHER), userns={})
    assert mount_idmap(c, c.mounts[1]) == MountIdmap(ids(OTHER), ids(MAP), recursive)


def test_idmap_without_mappings_takes_the_new_user_namespaces_mappings() -> None:
    c = config(bind(["bind", "ridmap"], uid=None, gid=None), userns={})
    assert mount_idmap(c, c.mounts[1]) == MountIdmap(ids(MAP), ids(MAP), True)


def test_idmap_without_mappings_in_a_joined_user_namespace_takes_that_namespace() -> None:
    c = config(bind(["bind", "idmap"], uid=None, gid=None), userns={"path": "/proc/1/ns/user"})
    assert mount_idmap(c, c.mounts[1]) == MountIdmap((), (), False, "/proc/1/ns/user")


@as_root
def test_no_user_namespace_is_needed_when_the_mount_has_mappings() -> None:
    check_idmapped_mounts(config(bind(["bind", "idmap"])))


@as_root
@pytest.mark.parametrize("mount, pointer", [
    ({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "uidMappings": MAP,
      "gidMappings": MAP}, "/mounts/1/uidMappings"),
    ({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]},
     "/mounts/1/options"),
    (bind(["bind", "idmap"], uid=None, gid=None), "/mounts/1/options"),
    (bind(["bind"], uid=[]), "/mounts/1/uidMappings"),
    (bind(["bind"], gid=None), "/mounts/1/gidMappings"),
])
def test_refusals_name_the_field(mount: dict[str, Any], pointer: str) -> None:
    with pytest.raises(IdmapError) as info:
        check_idmapped_mounts(config(mount))
    assert str(info.value).startswith(pointer + ": "), info.value


def test_rootless_idmapped_mounts_are_refused_as_runc_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(IdmapError, match="rootless"):
        check_idmapped_mounts(config(bind(["bind", "idmap"]), userns={}))
