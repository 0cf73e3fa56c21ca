"""Rootless pyrunc and cgroups on a pure cgroup v2 host: none, or one delegated to the user.

A v2 host can delegate a subtree to a user the way systemd does for a user session: the
directory and its cgroup.procs, cgroup.subtree_control and cgroup.threads belong to the user, and
the user's processes already live inside it (the kernel lets a process move others only between
cgroups whose common ancestor's cgroup.procs it may write). A rootless container may then have a
cgroup of its own below that, with limits. Without delegation it runs in the user's own cgroup,
and a cgroupsPath it may not create is an error (runc's rules). Runs in hack/vm's guest.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cgroupv2_support import V2_ROOT, pure_v2_only, wait_for
from rootless_user import RootlessUser, system_pyrunc

pytestmark = [*pure_v2_only,
              pytest.mark.skipif(shutil.which("useradd") is None, reason="needs useradd")]

DELEGATED_FILES = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")


@pytest.fixture
def user() -> Iterator[RootlessUser]:
    account = RootlessUser(subids=False)
    yield account
    left = account.remove()
    assert not left, f"the rootless test left behind: {left}"


@pytest.fixture
def delegated(user: RootlessUser) -> Iterator[Path]:
    """/pyrunc-test/rl-<hex>, delegated to `user`, with a leaf `shell` for the user's commands."""
    parent = V2_ROOT / "pyrunc-test"
    parent.mkdir(exist_ok=True)
    for directory in (V2_ROOT, parent):
        (directory / "cgroup.subtree_control").write_text("+pids +memory")
    subtree = parent / f"rl-{uuid.uuid4().hex[:8]}"
    subtree.mkdir()
    (subtree / "shell").mkdir()
    for path in (subtree, *(subtree / name for name in DELEGATED_FILES),
                 subtree / "shell", subtree / "shell" / "cgroup.procs"):
        os.chown(path, user.uid, user.gid)
    yield subtree
    left = sorted(str(p) for p in subtree.iterdir() if p.is_dir() and p.name != "shell")
    for directory in sorted(subtree.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if directory.is_dir():
            wait_for(lambda d=directory: not (d / "cgroup.procs").read_text().split(),
                     f"{directory} to empty")
            directory.rmdir()
    subtree.rmdir()
    try:
        parent.rmdir()
    except OSError:
        pass   # other tests' cgroups are still there
    assert not left, f"cgroups left behind: {left}"


def in_cgroup(cgroup: Path, argv: list[str]) -> list[str]:
    """argv, started in `cgroup` (the root shell moves itself there, then becomes the user)."""
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *argv]


def test_rootless_container_gets_a_cgroup_in_a_delegated_subtree(
        user: RootlessUser, delegated: Path) -> None:
    pyrunc = system_pyrunc()
    bundle = user.bundle("bb", ["sleep", "60"])
    config = json.loads((bundle / "config.json").read_text())
    cgroups_path = "/" + str((delegated / "ctr").relative_to(V2_ROOT))
    config["linux"]["cgroupsPath"] = cgroups_path
    config["linux"]["resources"] = {"pids": {"limit": 20}}
    user.write_config(bundle, config)

    result = user.run([pyrunc, "run", "--detach", "--bundle", str(bundle), "rl-deleg"],
                      wrap=lambda argv: in_cgroup(delegated / "shell", argv))
    assert result.returncode == 0, result.stderr
    try:
        pid = json.loads(user.run([pyrunc, "state", "rl-deleg"], check=True).stdout)["pid"]
        container_cgroup = delegated / "ctr"
        assert (container_cgroup / "pids.max").read_text().strip() == "20"
        assert str(pid) in (container_cgroup / "cgroup.procs").read_text().split()
        assert container_cgroup.stat().st_uid == user.uid   # made by the user, not by root
        assert Path(f"/proc/{pid}/cgroup").read_text().strip() in (
            f"0::{cgroups_path}", "0::/")   # "/" when the config gives it a cgroup namespace
    finally:
        user.run([pyrunc, "delete", "--force", "rl-deleg"])
    assert not (delegated / "ctr").exists()


def test_rootless_without_cgroups_path_runs_in_the_users_cgroup(user: RootlessUser) -> None:
    bundle = user.bundle("bb", ["cat", "/proc/self/cgroup"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "cgroup"]   # show the host's path
    user.write_config(bundle, config)
    result = user.run([system_pyrunc(), "run", "--bundle", str(bundle), "rl-nocg"], check=True)
    assert result.stdout == user.run(["cat", "/proc/self/cgroup"], check=True).stdout


def test_rootless_cgroups_path_not_delegated_is_an_error(user: RootlessUser) -> None:
    bundle = user.bundle("bb", ["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["cgroupsPath"] = f"/pyrunc-test/{user.name}"
    user.write_config(bundle, config)
    result = user.run([system_pyrunc(), "run", "--bundle", str(bundle), "rl-cg"])
    assert result.returncode != 0
    assert "rootless" in result.stderr and "/linux/cgroupsPath" in result.stderr
    assert not (V2_ROOT / "pyrunc-test" / user.name).exists()
