"""pyrunc on a pure cgroup v2 host: the container's cgroup, its view of it, freezing, killing.

Every test here skips unless cgroup2 is the only hierarchy (`/sys/fs/cgroup/cgroup.controllers`
exists). On other machines `test_vm_lane.py` runs this module inside hack/vm's guest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cgroupv2_support import V2_ROOT, pure_v2_only, wait_for

pytestmark = pure_v2_only


def cgroup_dir(cgroup_path: str) -> Path:
    return V2_ROOT / cgroup_path.lstrip("/")


def procs(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def mountinfo_entry(text: str, mount_point: str) -> tuple[str, set[str]]:
    """(fstype, per-mount options) of the last mount at `mount_point` in mountinfo `text`."""
    found: tuple[str, set[str]] | None = None
    for line in text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 6 or fields[4] != mount_point:
            continue
        after = line.split(" - ", 1)[1].split()
        found = (after[0], set(fields[5].split(",")))
    assert found is not None, f"no mount at {mount_point} in:\n{text}"
    return found


def without_namespace(kind: str) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                         if n["type"] != kind]
    return edit


def test_init_is_in_its_own_cgroup_before_create_returns(runtime, bundle, cgroup_path):
    path = bundle("true")
    runtime("create", "--bundle", str(path), "c1")
    directory = cgroup_dir(cgroup_path)
    pid = runtime.state("c1")["pid"]
    assert Path(f"/proc/{pid}/cgroup").read_text() == f"0::{cgroup_path}\n"
    assert procs(directory) == [pid]
    # The driver enables the root's controllers on the way down, so the container's cgroup has them.
    root_controllers = set((V2_ROOT / "cgroup.controllers").read_text().split())
    assert set((directory / "cgroup.controllers").read_text().split()) == root_controllers
    runtime("delete", "c1")
    assert not directory.exists()
    assert not alive(pid)


def test_cgroup_namespace_shows_the_container_cgroup_as_root(runtime, bundle):
    path = bundle("cat", "/proc/self/cgroup", "/sys/fs/cgroup/cgroup.procs", "/proc/self/mountinfo")
    out = runtime("run", "--bundle", str(path), "c2").stdout
    own, members, mountinfo = out.split("\n", 2)
    assert own == "0::/"
    # The mount's root is the container's cgroup, whose only process is the container's init.
    assert members == "1"
    fstype, options = mountinfo_entry(mountinfo, "/sys/fs/cgroup")
    assert fstype == "cgroup2"
    assert "ro" in options


def test_cgroup2_mount_without_ro_is_writable(runtime, bundle):
    def rw(config: dict[str, Any]) -> None:
        for m in config["mounts"]:
            if m["destination"] == "/sys/fs/cgroup":
                m["options"] = [o for o in m.get("options", []) if o != "ro"]
    path = bundle("cat", "/proc/self/mountinfo", edit=rw)
    out = runtime("run", "--bundle", str(path), "c3").stdout
    fstype, options = mountinfo_entry(out, "/sys/fs/cgroup")
    assert fstype == "cgroup2"
    assert "rw" in options and "ro" not in options


def test_without_cgroup_namespace_the_full_path_shows(runtime, bundle, cgroup_path):
    path = bundle("cat", "/proc/self/cgroup", edit=without_namespace("cgroup"))
    out = runtime("run", "--bundle", str(path), "c4").stdout
    assert out == f"0::{cgroup_path}\n"


def test_state_is_paused_while_the_cgroup_is_frozen(runtime, bundle, cgroup_path):
    path = bundle("sleep", "100")
    runtime("run", "--detach", "--bundle", str(path), "c5")
    directory = cgroup_dir(cgroup_path)
    assert runtime.state("c5")["status"] == "running"
    (directory / "cgroup.freeze").write_text("1")
    wait_for(lambda: "frozen 1" in (directory / "cgroup.events").read_text(), "the cgroup to freeze")
    assert runtime.state("c5")["status"] == "paused"
    (directory / "cgroup.freeze").write_text("0")
    wait_for(lambda: "frozen 0" in (directory / "cgroup.events").read_text(), "the cgroup to thaw")
    assert runtime.state("c5")["status"] == "running"
    runtime("delete", "--force", "c5")
    assert not directory.exists()


def test_delete_force_of_a_frozen_container(runtime, bundle, cgroup_path):
    path = bundle("sleep", "100")
    runtime("run", "--detach", "--bundle", str(path), "c7")
    directory = cgroup_dir(cgroup_path)
    pid = runtime.state("c7")["pid"]
    (directory / "cgroup.freeze").write_text("1")
    wait_for(lambda: "frozen 1" in (directory / "cgroup.events").read_text(), "the cgroup to freeze")
    runtime("delete", "--force", "c7")
    assert not directory.exists()
    assert not alive(pid)


def test_relative_cgroups_path_is_under_the_callers_cgroup(runtime, bundle):
    own = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
    own_dir = cgroup_dir(own)
    enabled_before = set((own_dir / "cgroup.subtree_control").read_text().split())
    name = f"pyrunc-rel-{os.getpid()}"
    expected = os.path.join(own, name)
    path = bundle("true", edit=lambda config: config["linux"].update(cgroupsPath=name))
    try:
        runtime("create", "--bundle", str(path), "c8")
        pid = runtime.state("c8")["pid"]
        assert Path(f"/proc/{pid}/cgroup").read_text() == f"0::{expected}\n"
        # The caller's own cgroup (it has processes) is left as it was: no controllers enabled.
        assert set((own_dir / "cgroup.subtree_control").read_text().split()) == enabled_before
        runtime("delete", "c8")
        assert not cgroup_dir(expected).exists()
    finally:
        runtime("delete", "--force", "c8", check=False)
        if cgroup_dir(expected).exists():
            cgroup_dir(expected).rmdir()
        # Leave the caller's cgroup as it was for the tests that follow.
        for controller in set((own_dir / "cgroup.subtree_control").read_text().split()) - enabled_before:
            (own_dir / "cgroup.subtree_control").write_text("-" + controller)


@pytest.mark.parametrize("sig", ["KILL", "TERM"])
def test_kill_all_kills_every_process_of_the_cgroup(runtime, bundle, cgroup_path, sig):
    path = bundle("sh", "-c", "sleep 100 & sleep 100", edit=without_namespace("pid"))
    runtime("run", "--detach", "--bundle", str(path), "c6")
    directory = cgroup_dir(cgroup_path)
    wait_for(lambda: len(procs(directory)) >= 2, "the background sleep to start")
    pids = procs(directory)
    runtime("kill", "--all", "c6", sig)
    wait_for(lambda: not procs(directory), "the cgroup to empty")
    wait_for(lambda: not any(alive(p) for p in pids), f"processes {pids} to die")
    runtime("delete", "--force", "c6")
    assert not directory.exists()
    assert runtime("state", "c6", check=False).returncode != 0


def test_features_reports_cgroup_v2_only(runtime):
    cgroup = json.loads(runtime("features").stdout)["linux"]["cgroup"]
    assert cgroup["v2"] is True
    assert cgroup["v1"] is False


def test_this_is_a_pure_v2_host():
    """Guard for the lane itself: no v1 hierarchy may be mounted, or the tests above prove less."""
    with open("/proc/self/mountinfo") as f:
        fstypes = {line.split(" - ", 1)[1].split()[0] for line in f}
    assert "cgroup" not in fstypes
    assert Path("/proc/self/cgroup").read_text().startswith("0::")
