"""Idmapped bind mounts (mounts[].uidMappings/gidMappings, options idmap and ridmap), seen from
inside real containers.

A mount mapping ``containerID hostID size`` shows a file whose on-disk owner is `containerID`
as owned by kernel id `hostID` (and a file created by `hostID` is stored as `containerID`);
inside a user namespace that kernel id then appears through the container's own maps. The
tests chown files on the host, stat them inside with busybox, create files inside and stat
them on the host.

Sources and bundles live in one 0755 directory under /tmp (ext4 here, which supports idmapped
mounts; the submount is a tmpfs, which does since Linux 6.3) that a container root mapped to
host uid 100000 can traverse; the tmpfs the ridmap tests mount on the host is unmounted after.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyrunc_testing import host_mounts_mentioning, make_bundle, needs_root

pytestmark = [needs_root, pytest.mark.integration]

USER_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
STAT = "stat -c '%n %u:%g' "


class Place:
    """A traversable directory holding bundles and bind sources for one test."""

    def __init__(self, top: Path, cgroup_path: str) -> None:
        self.top = top
        self.cgroup_path = cgroup_path
        self._count = 0

    def source(self, files: dict[str, tuple[int, int]]) -> Path:
        """A directory (owned 0:0, mode 0755) with empty files of the given owners."""
        self._count += 1
        src = self.top / f"src{self._count}"
        src.mkdir(mode=0o755)
        os.chmod(src, 0o755)
        for name, (uid, gid) in files.items():
            path = src / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            os.chown(path, uid, gid)
        return src

    def bundle(self, script: str, mounts: list[dict[str, Any]], *, userns: bool = False,
               user: tuple[int, int] | None = None) -> Path:
        self._count += 1
        path = make_bundle(self.top / f"bundle{self._count}", ["sh", "-c", script],
                           cgroups_path=self.cgroup_path)
        config = json.loads((path / "config.json").read_text())
        if userns:
            config["linux"]["namespaces"].append({"type": "user"})
            config["linux"]["uidMappings"] = USER_MAP
            config["linux"]["gidMappings"] = USER_MAP
        if user is not None:
            config["process"]["user"] = {"uid": user[0], "gid": user[1]}
        for m in mounts:
            # The rootfs belongs to host root: a mapped container root could not create it.
            (path / "rootfs" / m["destination"].lstrip("/")).mkdir(parents=True, exist_ok=True)
        config["mounts"].extend(mounts)
        (path / "config.json").write_text(json.dumps(config))
        return path


@pytest.fixture
def place(cgroup_path: str) -> Iterator[Place]:
    top = Path(tempfile.mkdtemp(prefix="pyrunc-idmap-"))
    os.chmod(top, 0o755)
    yield Place(top, cgroup_path)
    leaked = host_mounts_mentioning(str(top))
    for line in leaked:   # the test failed half-way: do not leave the tmpfs behind
        subprocess.run(["umount", "-l", line.split()[4]], check=False)
    shutil.rmtree(top, ignore_errors=True)
    assert not leaked, f"mounts leaked into the host namespace: {leaked}"


@contextlib.contextmanager
def host_tmpfs(target: Path, owner: tuple[int, int] = (0, 0)) -> Iterator[Path]:
    """A tmpfs on the host at `target` with a file `f` of `owner`, unmounted afterwards."""
    target.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(target)],
                   check=True)
    try:
        (target / "f").touch()
        os.chown(target / "f", *owner)
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def idmapped(src: Path, options: list[str], mapping: list[dict[str, int]] | None = USER_MAP,
             dest: str = "/data") -> dict[str, Any]:
    m: dict[str, Any] = {"destination": dest, "type": "bind", "source": str(src),
                         "options": options}
    if mapping is not None:
        m["uidMappings"] = mapping
        m["gidMappings"] = mapping
    return m


def owners(out: str) -> dict[str, str]:
    """`stat -c '%n %u:%g'` lines -> {path: "uid:gid"}."""
    return dict(line.split(" ", 1) for line in out.splitlines() if line.startswith("/"))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and "warning:" not in line]


# --- without a user namespace: the mount's own user namespace does the mapping -----------------

def test_without_a_user_namespace_files_show_as_the_mapped_host_ids(runtime, place):
    src = place.source({"root": (0, 0), "u1000": (1000, 1001)})
    b = place.bundle(STAT + "/data/root /data/u1000; " + STAT + "/plain/root",
                     [idmapped(src, ["bind", "idmap"]),
                      {"destination": "/plain", "type": "bind", "source": str(src),
                       "options": ["bind"]}])
    seen = owners(runtime("run", "-b", str(b), "idmap-nouserns").stdout)
    assert seen == {"/data/root": "100000:100000", "/data/u1000": "101000:101001",
                    "/plain/root": "0:0"}


def test_without_a_user_namespace_files_created_through_the_mount_get_the_unmapped_owner(
        runtime, place):
    src = place.source({})
    os.chmod(src, 0o777)
    b = place.bundle("touch /data/made && " + STAT + "/data/made",
                     [idmapped(src, ["bind", "idmap"])], user=(100005, 100007))
    assert owners(runtime("run", "-b", str(b), "idmap-create").stdout) == {
        "/data/made": "100005:100007"}
    st = os.stat(src / "made")
    assert (st.st_uid, st.st_gid) == (5, 7)


def test_mappings_without_an_option_are_an_idmapped_mount(runtime, place):
    src = place.source({"root": (0, 0)})
    b = place.bundle(STAT + "/data/root", [idmapped(src, ["bind"])])
    assert owners(runtime("run", "-b", str(b), "idmap-implied").stdout) == {
        "/data/root": "100000:100000"}


# --- with the container's user namespace -------------------------------------------------------

def test_in_a_user_namespace_the_same_mapping_shows_host_owners_unchanged(runtime, place):
    src = place.source({"root": (0, 0), "u1000": (1000, 1000)})
    b = place.bundle(STAT + "/data/root /data/u1000 /plain/root; touch /data/made",
                     [idmapped(src, ["bind", "idmap"]),
                      {"destination": "/plain", "type": "bind", "source": str(src),
                       "options": ["bind"]}], userns=True)
    seen = owners(runtime("run", "-b", str(b), "idmap-same").stdout)
    # Without the idmap, host uid 0 is outside the container's maps: the overflow id.
    assert seen == {"/data/root": "0:0", "/data/u1000": "1000:1000", "/plain/root": "65534:65534"}
    st = os.stat(src / "made")   # made by the container's root, host uid 100000
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_idmap_option_without_mappings_takes_the_containers_user_namespace(runtime, place):
    src = place.source({"u7": (7, 8)})
    b = place.bundle(STAT + "/data/u7", [idmapped(src, ["bind", "idmap"], mapping=None)],
                     userns=True)
    assert owners(runtime("run", "-b", str(b), "idmap-implicit").stdout) == {"/data/u7": "7:8"}


def test_idmap_without_mappings_in_a_joined_user_namespace_uses_that_namespace(runtime, place):
    from pyrunc.linux.userns import new_user_namespace

    src = place.source({"u3": (3, 4)})
    b = place.bundle(STAT + "/data/u3 /plain/u3",
                     [idmapped(src, ["bind", "idmap"], mapping=None),
                      {"destination": "/plain", "type": "bind", "source": str(src),
                       "options": ["bind"]}])
    userns = new_user_namespace("0 100000 65536\n", "0 100000 65536\n", what="the test")
    try:
        config = json.loads((b / "config.json").read_text())
        config["linux"]["namespaces"].append(
            {"type": "user", "path": f"/proc/{os.getpid()}/fd/{userns}"})
        (b / "config.json").write_text(json.dumps(config))
        seen = owners(runtime("run", "-b", str(b), "idmap-joined").stdout)
    finally:
        os.close(userns)
    assert seen == {"/data/u3": "3:4", "/plain/u3": "65534:65534"}


def test_a_mapping_other_than_the_containers_gets_a_user_namespace_of_its_own(runtime, place):
    # On-disk 0..99 -> host 100010..100109 -> container 10..109 (the container maps 100000+).
    src = place.source({"root": (0, 0), "u5": (5, 5), "u500": (500, 500)})
    os.chmod(src, 0o777)
    shifted = [{"containerID": 0, "hostID": 100010, "size": 100}]
    b = place.bundle(STAT + "/data/root /data/u5 /data/u500; touch /data/made",
                     [idmapped(src, ["bind", "idmap"], mapping=shifted)], userns=True,
                     user=(12, 12))
    seen = owners(runtime("run", "-b", str(b), "idmap-other").stdout)
    assert seen == {"/data/root": "10:10", "/data/u5": "15:15", "/data/u500": "65534:65534"}
    st = os.stat(src / "made")   # container uid 12 = host 100012 = on-disk 2
    assert (st.st_uid, st.st_gid) == (2, 2)


# --- idmap covers the top mount, ridmap the whole rbind tree -----------------------------------

@pytest.mark.parametrize("option, sub_owner", [("idmap", "0:0"), ("ridmap", "100000:100000")])
def test_ridmap_maps_submounts_and_idmap_only_the_top_mount(runtime, place, option, sub_owner):
    src = place.source({"top": (0, 0)})
    with host_tmpfs(src / "sub"):
        b = place.bundle(STAT + "/data/top /data/sub/f",
                         [idmapped(src, ["rbind", option])])
        seen = owners(runtime("run", "-b", str(b), f"idmap-{option}").stdout)
    assert seen == {"/data/top": "100000:100000", "/data/sub/f": sub_owner}


def test_idmapped_mount_keeps_its_flags(runtime, place):
    src = place.source({"root": (0, 0)})
    b = place.bundle("grep ' /data ' /proc/self/mountinfo; touch /data/x 2>&1 || true",
                     [idmapped(src, ["bind", "ro", "nosuid", "idmap"])])
    out = runtime("run", "-b", str(b), "idmap-ro").stdout
    line = next(row for row in out.splitlines() if " /data " in row)
    assert {"ro", "nosuid"} <= set(line.split()[5].split(","))
    assert "idmapped" in line.split()[5].split(",")
    assert "Read-only file system" in out
    assert not (src / "x").exists()


# --- refused, with one line naming the field, leaving nothing behind ---------------------------

def _refused(runtime, b: Path, cid: str) -> str:
    result = runtime("create", "-b", str(b), cid, check=False)
    assert result.returncode == 1, result
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert not (runtime.root / cid).exists()
    return lines[0]


def test_mappings_on_a_tmpfs_mount_are_refused(runtime, place):
    b = place.bundle("true", [{"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                               "options": ["idmap"], "uidMappings": USER_MAP,
                               "gidMappings": USER_MAP}])
    line = _refused(runtime, b, "idmap-tmpfs")
    assert "/mounts/" in line and "/uidMappings" in line and "bind" in line, line


def test_idmap_option_without_mappings_or_user_namespace_is_refused(runtime, place):
    src = place.source({})
    b = place.bundle("true", [idmapped(src, ["bind", "ridmap"], mapping=None)])
    line = _refused(runtime, b, "idmap-nomap")
    assert "/options" in line and "user namespace" in line, line


def test_empty_mappings_are_refused(runtime, place):
    src = place.source({})
    m = idmapped(src, ["bind", "idmap"])
    m["gidMappings"] = []
    line = _refused(runtime, place.bundle("true", [m]), "idmap-empty")
    assert "/gidMappings" in line, line


def test_a_mapping_the_kernel_refuses_names_the_mount_and_errno(runtime, place):
    src = place.source({})
    overlapping = [{"containerID": 0, "hostID": 100000, "size": 10},
                   {"containerID": 5, "hostID": 200000, "size": 10}]
    b = place.bundle("true", [idmapped(src, ["bind", "idmap"], mapping=overlapping)])
    line = _refused(runtime, b, "idmap-overlap")
    assert "/mounts/" in line and "uid_map" in line and "EINVAL" in line, line


def test_a_filesystem_without_idmap_support_is_refused_with_the_errno(runtime, place):
    # procfs does not support idmapped mounts: mount_setattr answers EINVAL.
    b = place.bundle("true", [{"destination": "/data", "type": "bind", "source": "/proc/sys",
                               "options": ["rbind", "idmap"], "uidMappings": USER_MAP,
                               "gidMappings": USER_MAP}])
    line = _refused(runtime, b, "idmap-procfs")
    assert "MOUNT_ATTR_IDMAP" in line and "EINVAL" in line and "/proc/sys" in line, line


def test_features_report_idmapped_mounts(runtime):
    doc = json.loads(runtime("features").stdout)
    assert doc["linux"]["mountExtensions"] == {"idmap": {"enabled": True}}
    assert {"idmap", "ridmap"} <= set(doc["mountOptions"])
