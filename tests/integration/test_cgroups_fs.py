"""The cgroupfs drivers against the host's real cgroup hierarchies (root only).

Every cgroup made here lives under an absolute path of the test's own (/pyrunc-test/<uuid> or a
unique top-level directory) and is removed afterwards; a relative path is only resolved, never
created, because on the development host it would land inside the supervisor's memory cgroup.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from pyrunc import cgroups
from pyrunc.cgroups import CREATED_KEY, UNIFIED, CgroupError, cgroup_manager, load_manager
from pyrunc.cgroups.v2 import FsV2Manager

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups"),
    pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup"), reason="no cgroup filesystem"),
]


def _hierarchy_dirs(manager: cgroups.CgroupManager) -> dict[str, str]:
    return {k: v for k, v in manager.paths().items() if k != CREATED_KEY}


def _cgroup_lines(pid: int) -> dict[str, str]:
    """Hierarchy name -> path, from /proc/<pid>/cgroup (v1 lines split per controller)."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [UNIFIED]:
                out[name] = path
    return out


def _leftovers(paths: list[str]) -> list[str]:
    return [p for p in paths if os.path.exists(p)]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A child process to put into cgroups; always killed and reaped."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture
def cgroup_path() -> Iterator[str]:
    """/pyrunc-test/<uuid>; whatever a failing test leaves there is removed (leaf first)."""
    path = f"/pyrunc-test/{uuid.uuid4().hex[:12]}"
    manager = cgroup_manager(path, "unused")
    try:
        yield path
    finally:
        for d in _hierarchy_dirs(manager).values():
            for sub, _, _ in os.walk(d, topdown=False) if os.path.isdir(d) else ():
                os.rmdir(sub)
            parent = os.path.dirname(d)
            try:
                os.rmdir(parent)  # /pyrunc-test, only if empty (another test may use it)
            except OSError:
                pass


def test_process_joins_every_hierarchy_and_is_listed(cgroup_path: str,
                                                     sleeper: subprocess.Popen[bytes]) -> None:
    manager = cgroup_manager(cgroup_path, "ignored-id")
    manager.create()
    try:
        manager.add_process(sleeper.pid)
        seen = _cgroup_lines(sleeper.pid)
        for name in _hierarchy_dirs(manager):
            assert seen[name] == cgroup_path, f"{name}: {seen[name]}"
        assert sleeper.pid in manager.pids()
    finally:
        manager.kill_all(signal.SIGKILL)
        sleeper.wait(timeout=5)
        manager.destroy()
    assert _leftovers(list(_hierarchy_dirs(manager).values())) == []


def test_v1_cpuset_is_inherited_so_tasks_can_join(cgroup_path: str) -> None:
    manager = cgroup_manager(cgroup_path, "x")
    cpuset = _hierarchy_dirs(manager).get("cpuset")
    if cpuset is None or cgroups.is_v2_host():
        pytest.skip("no v1 cpuset hierarchy")
    manager.create()
    try:
        with open(os.path.join(cpuset, "cpuset.cpus")) as f:
            assert f.read().strip()
        with open(os.path.join(cpuset, "cpuset.mems")) as f:
            assert f.read().strip()
    finally:
        manager.destroy()


def test_freeze_thaw_and_state_survive_a_reload(cgroup_path: str,
                                                sleeper: subprocess.Popen[bytes]) -> None:
    manager = cgroup_manager(cgroup_path, "x")
    manager.create()
    try:
        manager.add_process(sleeper.pid)
        reloaded = load_manager(json.loads(json.dumps(manager.paths())))
        assert reloaded.paths() == manager.paths()
        assert not reloaded.is_frozen()
        reloaded.freeze()
        assert reloaded.is_frozen()
        assert manager.is_frozen()
        reloaded.thaw()
        assert not reloaded.is_frozen()
        assert sleeper.poll() is None
    finally:
        manager.kill_all(signal.SIGKILL)
        sleeper.wait(timeout=5)
        manager.destroy()


def test_kill_all_sigkill_kills_a_frozen_cgroup_and_thaws_it(
        cgroup_path: str, sleeper: subprocess.Popen[bytes]) -> None:
    manager = cgroup_manager(cgroup_path, "x")
    manager.create()
    try:
        manager.add_process(sleeper.pid)
        manager.freeze()
        load_manager(manager.paths()).kill_all(signal.SIGKILL)
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
        assert not manager.is_frozen()
        assert manager.pids() == []
    finally:
        manager.destroy()


def test_kill_all_other_signal_reaches_every_process(cgroup_path: str) -> None:
    manager = cgroup_manager(cgroup_path, "x")
    manager.create()
    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    try:
        for p in procs:
            manager.add_process(p.pid)
        assert sorted(p.pid for p in procs) == manager.pids()
        manager.kill_all(signal.SIGTERM)
        assert [p.wait(timeout=5) for p in procs] == [-signal.SIGTERM] * 2
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        manager.destroy()


def test_pids_includes_sub_cgroups_and_destroy_removes_them(
        cgroup_path: str, sleeper: subprocess.Popen[bytes]) -> None:
    manager = cgroup_manager(cgroup_path, "x")
    manager.create()
    pids_dir = _hierarchy_dirs(manager).get("pids") or _hierarchy_dirs(manager)[UNIFIED]
    sub = os.path.join(pids_dir, "inner")
    try:
        os.mkdir(sub)
        with open(os.path.join(sub, "cgroup.procs"), "w") as f:
            f.write(str(sleeper.pid))
        assert manager.pids() == [sleeper.pid]
    finally:
        manager.kill_all(signal.SIGKILL)
        sleeper.wait(timeout=5)
        manager.destroy()
    assert not os.path.exists(sub)
    assert _leftovers(list(_hierarchy_dirs(manager).values())) == []


def test_destroy_removes_the_parents_it_created_but_not_others() -> None:
    top = f"/pyrunc-test-{uuid.uuid4().hex[:12]}"
    first = cgroup_manager(f"{top}/mid/a", "a")
    second = cgroup_manager(f"{top}/mid/b", "b")
    first.create()
    second.create()
    try:
        assert CREATED_KEY in first.paths()       # it made top and top/mid
        assert CREATED_KEY not in second.paths()  # they already existed
        load_manager(first.paths()).destroy()     # top/mid still holds b: kept
        tops = {os.path.dirname(os.path.dirname(d)) for d in _hierarchy_dirs(first).values()}
        assert all(os.path.isdir(t) for t in tops)
        second.destroy()                          # b made no parents: top stays...
        assert all(os.path.isdir(t) for t in tops)
    finally:
        second.destroy()
        first.destroy()                           # ...until its maker is destroyed again
    assert _leftovers(sorted(tops)) == []


def test_destroy_of_missing_cgroup_and_kill_all_on_it_are_fine(cgroup_path: str) -> None:
    manager = cgroup_manager(cgroup_path, "x")
    manager.destroy()
    manager.kill_all(signal.SIGKILL)
    manager.kill_all(signal.SIGTERM)
    assert manager.pids() == []
    assert not manager.is_frozen()


def test_relative_path_is_resolved_under_own_cgroup_without_creating_it() -> None:
    own = _cgroup_lines(os.getpid())
    manager = cgroup_manager(None, "some-id")
    for name, directory in _hierarchy_dirs(manager).items():
        assert directory.endswith(os.path.join(own[name], "some-id").replace("//", "/"))
        assert not os.path.exists(directory)


def test_dot_dot_cannot_climb_out_of_the_callers_cgroup() -> None:
    own = _cgroup_lines(os.getpid())
    for name, directory in _hierarchy_dirs(cgroup_manager("../../escape", "x")).items():
        assert directory.endswith(os.path.join(own[name], "escape").replace("//", "/"))
    absolute = _hierarchy_dirs(cgroup_manager("/../../etc/x", "x"))
    assert all(d.endswith("/etc/x") and "/.." not in d for d in absolute.values())


@pytest.mark.parametrize("path", ["/", ".", "/.."])
def test_root_or_own_cgroup_is_refused(path: str) -> None:
    with pytest.raises(CgroupError, match="needs a cgroup of its own"):
        cgroup_manager(path, "x")


def test_systemd_form_is_refused() -> None:
    with pytest.raises(CgroupError, match="systemd cgroup driver is not supported"):
        cgroup_manager("machine.slice:libpod:abc", "abc")


def test_apply_resources_refuses_what_v1_cannot_hold_before_writing(cgroup_path: str) -> None:
    from pyrunc.spec.resources import Resources

    manager = cgroup_manager(cgroup_path, "x")
    manager.create()
    try:
        directory = _hierarchy_dirs(manager)["pids"]
        with pytest.raises(CgroupError, match=r"^/linux/resources/unified: "):
            manager.apply_resources(Resources.from_json(
                {"pids": {"limit": 7}, "unified": {"pids.max": "7"}}))
        if "net_cls" not in _hierarchy_dirs(manager):
            with pytest.raises(CgroupError, match=r"^set /linux/resources/network "
                               r"\(net_cls.classid\): the net_cls cgroup controller is not "
                               r"mounted on this host: ENOENT$"):
                manager.apply_resources(Resources.from_json(
                    {"pids": {"limit": 7}, "network": {"classID": 42}}))
        with open(os.path.join(directory, "pids.max")) as f:
            assert f.read().strip() == "max"   # nothing was written by the refused calls
        manager.apply_resources(Resources.from_json({"pids": {"limit": 7}}))
        with open(os.path.join(directory, "pids.max")) as f:
            assert f.read().strip() == "7"
    finally:
        manager.destroy()


# --- the v2 driver, exercised on the hybrid host's cgroup2 mount ---------------------------------

HYBRID_UNIFIED = "/sys/fs/cgroup/unified"
needs_hybrid = pytest.mark.skipif(
    not os.path.exists(os.path.join(HYBRID_UNIFIED, "cgroup.controllers")),
    reason="no cgroup2 mount at /sys/fs/cgroup/unified")


@pytest.fixture
def v2_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FsV2Manager, list[str]]]:
    """An FsV2Manager in the unified mount; enabling controllers is recorded, not done, so that the
    host's root cgroup.subtree_control is never changed by a test."""
    from pyrunc.cgroups import v2

    enabled: list[str] = []
    monkeypatch.setattr(v2, "_enable_controllers",
                        lambda directory, is_root=False: enabled.append(directory))
    top = os.path.join(HYBRID_UNIFIED, f"pyrunc-test-{uuid.uuid4().hex[:12]}")
    manager = v2.FsV2Manager(os.path.join(top, "c"))
    try:
        yield manager, enabled
    finally:
        for sub, _, _ in os.walk(top, topdown=False) if os.path.isdir(top) else ():
            os.rmdir(sub)


@needs_hybrid
def test_v2_create_enables_controllers_top_down_and_destroy_cleans_up(
        v2_manager: tuple[FsV2Manager, list[str]]) -> None:
    manager, enabled = v2_manager
    leaf = manager.paths()[UNIFIED]
    manager.create()
    assert enabled == [HYBRID_UNIFIED, os.path.dirname(leaf)]
    assert manager.paths()[CREATED_KEY] == os.path.dirname(leaf)
    load_manager(manager.paths()).destroy()
    assert not os.path.exists(os.path.dirname(leaf))


@needs_hybrid
def test_v2_freeze_kill_and_pids(v2_manager: tuple[FsV2Manager, list[str]],
                                 sleeper: subprocess.Popen[bytes]) -> None:
    m, _ = v2_manager
    m.create()
    if not os.path.exists(os.path.join(m.paths()[UNIFIED], "cgroup.kill")):
        m.destroy()
        pytest.skip("cgroup.kill needs Linux 5.14")
    try:
        m.add_process(sleeper.pid)
        assert _cgroup_lines(sleeper.pid)[UNIFIED].endswith("/c")
        assert m.pids() == [sleeper.pid]
        m.freeze()
        assert m.is_frozen()
        m.thaw()
        assert not m.is_frozen()
        m.kill_all(signal.SIGKILL)  # cgroup.kill
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
    finally:
        m.destroy()
    assert not os.path.exists(m.paths()[UNIFIED])


def test_planned_parents_are_in_the_state_before_they_exist(cgroup_path: str) -> None:
    """create saves the state before its mkdirs: the parents it is about to make must already
    be listed, so a manager loaded from that state (after a crash at any point) removes them."""
    top = f"{cgroup_path}-top"
    leaf = f"{top}/a/b"
    manager = cgroup_manager(leaf, "x")
    manager.plan_create()
    saved = manager.paths()
    planned = saved[CREATED_KEY].split("\n")
    # the outermost missing directory of each hierarchy: `top`, or /pyrunc-test above it
    assert planned and all(p.endswith((top, os.path.dirname(top))) for p in planned), planned
    assert not any(os.path.exists(p) for p in planned)
    load_manager(saved).destroy()               # a crash before any mkdir: nothing to remove
    manager.create()
    assert all(os.path.isdir(d) for d in _hierarchy_dirs(manager).values())
    load_manager(saved).destroy()               # a crash after the mkdirs: all of it goes
    assert _leftovers(planned + list(_hierarchy_dirs(manager).values())) == []
