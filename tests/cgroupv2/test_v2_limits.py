"""linux.resources on a pure cgroup v2 host: the v2 files with runc's conversions, and the kernel
enforcing memory and pids limits inside the container. Runs in hack/vm's guest (see
test_vm_lane.py); skips elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cgroupv2_support import V2_ROOT, pure_v2_only, wait_for

from pyrunc_testing import reap_children

pytestmark = pure_v2_only


def cgroup_file(cgroup_path: str, name: str) -> str:
    return (V2_ROOT / cgroup_path.lstrip("/") / name).read_text().strip()


def set_resources(resources: dict[str, Any]) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["resources"].update(resources)
    return edit


def huge_page_size() -> str | None:
    """The smallest huge page size the guest kernel has, as the hugetlb files name it."""
    from pyrunc.cgroups.hugepages import host_page_sizes

    sizes = host_page_sizes()
    return sizes[0] if sizes and "hugetlb" in (V2_ROOT / "cgroup.controllers").read_text() \
        else None


def block_device() -> tuple[int, int] | None:
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        fields = line.split()
        if len(fields) == 4 and not fields[3].startswith(("loop", "ram", "zram")):
            return int(fields[0]), int(fields[1])
    return None


def test_limits_land_in_the_v2_files_with_runcs_conversions(runtime, bundle, cgroup_path):
    limits: dict[str, Any] = {
        "memory": {"limit": 96 << 20, "swap": 128 << 20, "reservation": 48 << 20},
        "cpu": {"shares": 512, "quota": 20000, "period": 50000, "burst": 1000, "idle": 0,
                "cpus": "0", "mems": "0"},
        "pids": {"limit": 0},             # runc writes 0 as 1
        "blockIO": {"weight": 500},
        "unified": {"memory.high": str(80 << 20), "pids.max": "33"},   # unified wins
    }
    size = huge_page_size()
    assert size, "the lane's guest kernel has huge pages and the hugetlb controller"
    limits["hugepageLimits"] = [{"pageSize": size, "limit": 0}]
    disk = block_device()
    if disk:   # io.max needs a real device; the lane's guest may have none
        dev = {"major": disk[0], "minor": disk[1]}
        limits["blockIO"].update(throttleReadBpsDevice=[dict(dev, rate=1 << 20)],
                                 throttleWriteIOPSDevice=[dict(dev, rate=120)])
    runtime("create", "-b", str(bundle("sleep", "60", edit=set_resources(limits))), "v2all")
    try:
        got = {name: cgroup_file(cgroup_path, name) for name in (
            "memory.max", "memory.swap.max", "memory.low", "memory.high", "cpu.weight",
            "cpu.max", "cpu.max.burst", "cpu.idle", "cpuset.cpus", "cpuset.mems", "pids.max")}
        assert got == {
            "memory.max": str(96 << 20),
            "memory.swap.max": str(32 << 20),        # memory+swap minus memory
            "memory.low": str(48 << 20),
            "memory.high": str(80 << 20),
            "cpu.weight": "59",                      # runc's shares->weight curve at 512
            "cpu.max": "20000 50000",
            "cpu.max.burst": "1000",
            "cpu.idle": "0",
            "cpuset.cpus": "0",
            "cpuset.mems": "0",
            "pids.max": "33",
        }
        directory = V2_ROOT / cgroup_path.lstrip("/")
        if (directory / "io.bfq.weight").exists():
            assert cgroup_file(cgroup_path, "io.bfq.weight").split()[-1] == "500"
        elif (directory / "io.weight").exists():
            assert cgroup_file(cgroup_path, "io.weight") == "default 4950"   # 10..1000 -> 1..10000
        if disk:
            assert cgroup_file(cgroup_path, "io.max") == \
                f"{disk[0]}:{disk[1]} rbps={1 << 20} wbps=max riops=max wiops=120"
        assert cgroup_file(cgroup_path, f"hugetlb.{size}.max") == "0"
        if (directory / f"hugetlb.{size}.rsvd.max").exists():      # Linux 5.7+
            assert cgroup_file(cgroup_path, f"hugetlb.{size}.rsvd.max") == "0"
    finally:
        runtime("delete", "--force", "v2all")


def test_memory_over_memory_max_is_oom_killed_inside(runtime, bundle, cgroup_path):
    script = "head -c 192m /dev/zero | tail > /dev/null; echo tail-exit=$?"
    limits = {"memory": {"limit": 24 << 20, "swap": 24 << 20}}
    out = Path(runtime.root).parent / "oom.out"
    with open(out, "w") as f:
        runtime("create", "-b", str(bundle("sh", "-c", script, edit=set_resources(limits))),
                "oom", stdout_file=f)
    try:
        runtime("start", "oom")
        events = V2_ROOT / cgroup_path.lstrip("/") / "memory.events"

        def oom_killed() -> bool:
            reap_children()
            fields = dict(line.split() for line in events.read_text().splitlines())
            return int(fields["oom_kill"]) >= 1
        wait_for(oom_killed, "the OOM kill in memory.events", timeout=120)
        wait_for(lambda: "tail-exit=" in out.read_text(), "the shell to report", timeout=60)
        assert "tail-exit=137" in out.read_text()
    finally:
        runtime("delete", "--force", "oom")


def test_pids_max_makes_fork_fail_inside(runtime, bundle):
    script = "for i in 1 2 3 4 5 6; do sleep 30 & done; echo forked; kill $(jobs -p)"
    b = bundle("sh", "-c", script, edit=set_resources({"pids": {"limit": 3}}))
    result = runtime("run", "-b", str(b), "pids", check=False, timeout=120)
    assert "can't fork" in result.stderr, result.stderr


@pytest.mark.parametrize("resources, words", [
    ({"unified": {"nosuch.file": "1"}}, "/linux/resources/unified/nosuch.file: controller "
                                        "'nosuch' is not available in"),
    ({"memory": {"limit": 64 << 20, "swap": 32 << 20}},
     "/linux/resources/memory/swap: memory+swap limit 33554432 must be >= memory limit"),
])
def test_v2_refusals_are_one_line_and_leave_nothing(runtime, bundle, resources, words):
    result = runtime("run", "-b", str(bundle("true", edit=set_resources(resources))), "bad",
                     check=False, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and words in lines[0], result.stderr
    assert not (runtime.root / "bad").exists()   # and the cgroup_path fixture: no directory
