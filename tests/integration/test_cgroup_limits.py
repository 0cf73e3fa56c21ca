"""linux.resources on this hybrid (cgroup v1) host: every limit in its v1 file with runc's value,
the kernel enforcing them as seen from inside the container, the same files as runc writes, and
bad input refused with one line that names the field, leaving nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pyrunc_testing import CGROUP_PREFIX, make_bundle, needs_root, reap_children

pytestmark = [needs_root, pytest.mark.integration,
              pytest.mark.skipif(os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
                                 reason="cgroup v1 files: this host is pure cgroup v2")]

V1 = Path("/sys/fs/cgroup")


def block_device() -> tuple[int, int] | None:
    """(major, minor) of the first whole disk in /proc/partitions, for the throttle files."""
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        major, minor, _, name = line.split()
        if not name.startswith(("loop", "zram", "ram")):
            return int(major), int(minor)
    return None


def set_resources(resources: dict[str, Any]) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["resources"].update(resources)
    return edit


def v1_file(cgroup_path: str, controller: str, name: str) -> str:
    return (V1 / controller / cgroup_path.lstrip("/") / name).read_text().strip()


def wait_stopped(runtime: Any, cid: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while runtime.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, f"{cid} still running after {timeout} s"
        reap_children()
        time.sleep(0.05)


#: One config with a value for every v1 file this host has, and the file contents it gives.
ALL_LIMITS: dict[str, Any] = {
    "memory": {"limit": 96 << 20, "swap": 128 << 20, "reservation": 64 << 20,
               "swappiness": 20, "disableOOMKiller": True},
    "cpu": {"shares": 512, "quota": 30000, "period": 60000, "burst": 5000, "idle": 0,
            "cpus": "0", "mems": "0", "realtimePeriod": 500000},
    "pids": {"limit": 42},
}
EXPECTED = {
    ("memory", "memory.limit_in_bytes"): str(96 << 20),
    ("memory", "memory.memsw.limit_in_bytes"): str(128 << 20),
    ("memory", "memory.soft_limit_in_bytes"): str(64 << 20),
    ("memory", "memory.swappiness"): "20",
    ("cpu", "cpu.shares"): "512",
    ("cpu", "cpu.cfs_quota_us"): "30000",
    ("cpu", "cpu.cfs_period_us"): "60000",
    ("cpu", "cpu.cfs_burst_us"): "5000",
    ("cpu", "cpu.idle"): "0",
    ("cpu", "cpu.rt_period_us"): "500000",
    ("cpuset", "cpuset.cpus"): "0",
    ("cpuset", "cpuset.mems"): "0",
    ("pids", "pids.max"): "42",
}


def test_every_limit_lands_in_its_v1_file(runtime, bundle, cgroup_path):
    limits = json.loads(json.dumps(ALL_LIMITS))
    expected = dict(EXPECTED)
    disk = block_device()
    if disk is not None:
        dev = {"major": disk[0], "minor": disk[1]}
        limits["blockIO"] = {"throttleReadBpsDevice": [dict(dev, rate=1 << 20)],
                             "throttleWriteBpsDevice": [dict(dev, rate=2 << 20)],
                             "throttleReadIOPSDevice": [dict(dev, rate=300)],
                             "throttleWriteIOPSDevice": [dict(dev, rate=400)]}
        # (No weightDevice: BFQ refuses it, ENOTSUP, unless BFQ schedules that very disk.)
        limits["blockIO"]["weight"] = 500
        for name, rate in (("read_bps", 1 << 20), ("write_bps", 2 << 20),
                           ("read_iops", 300), ("write_iops", 400)):
            expected[("blkio", f"blkio.throttle.{name}_device")] = f"{disk[0]}:{disk[1]} {rate}"
    runtime("create", "-b", str(bundle("sleep", "60", edit=set_resources(limits))), "all")
    try:
        got = {key: v1_file(cgroup_path, *key) for key in expected}
        assert got == expected
        assert "oom_kill_disable 1" in v1_file(cgroup_path, "memory", "memory.oom_control")
        if disk is not None:
            # CFQ's file where the kernel has it, else BFQ's (this one's), as runc chooses.
            kind = "" if (V1 / "blkio" / cgroup_path.lstrip("/") / "blkio.weight").exists() \
                else "bfq."
            assert v1_file(cgroup_path, "blkio", f"blkio.{kind}weight").split()[-1] == "500"
        # The init is in the limited cgroups before it runs anything.
        pid = runtime.state("all")["pid"]
        assert f":memory:{cgroup_path}\n" in Path(f"/proc/{pid}/cgroup").read_text()
    finally:
        runtime("delete", "--force", "all")


def test_zero_pids_limit_and_unlimited_values_as_runc_writes_them(runtime, bundle, cgroup_path):
    limits = {"pids": {"limit": -1}, "memory": {"limit": -1}, "cpu": {"quota": -1}}
    runtime("create", "-b", str(bundle("sleep", "60", edit=set_resources(limits))), "unl")
    try:
        assert v1_file(cgroup_path, "pids", "pids.max") == "max"
        unlimited = v1_file(cgroup_path, "memory", "memory.limit_in_bytes")
        assert int(unlimited) > 1 << 60
        assert v1_file(cgroup_path, "memory", "memory.memsw.limit_in_bytes") == unlimited
        assert v1_file(cgroup_path, "cpu", "cpu.cfs_quota_us") == "-1"
    finally:
        runtime("delete", "--force", "unl")


def test_memory_over_the_limit_is_oom_killed_inside(runtime, bundle, cgroup_path):
    # `tail` keeps the whole newline-free input in memory: 256 MiB against a 32 MiB limit.
    script = "head -c 256m /dev/zero | tail > /dev/null; echo tail-exit=$?"
    limits = {"memory": {"limit": 32 << 20, "swap": 32 << 20}}
    b = bundle("sh", "-c", script, edit=set_resources(limits))
    out = runtime("run", "-b", str(b), "oom", timeout=120).stdout
    assert "tail-exit=137" in out   # 128 + SIGKILL, from the kernel's OOM killer


def test_oom_kill_is_counted_in_the_containers_memory_cgroup(runtime, bundle, cgroup_path):
    script = "head -c 256m /dev/zero | tail > /dev/null"
    limits = {"memory": {"limit": 32 << 20, "swap": 32 << 20}}
    runtime("create", "-b", str(bundle("sh", "-c", script, edit=set_resources(limits))), "oom2")
    try:
        runtime("start", "oom2")
        wait_stopped(runtime, "oom2", timeout=60)
        control = dict(line.split() for line in
                       v1_file(cgroup_path, "memory", "memory.oom_control").splitlines())
        assert int(control["oom_kill"]) >= 1
    finally:
        runtime("delete", "--force", "oom2")


def test_pids_max_makes_fork_fail_inside(runtime, bundle, cgroup_path):
    # sh itself plus 3 sleeps fill a limit of 4: the 4th fork must fail with EAGAIN.
    script = "for i in 1 2 3 4 5 6; do sleep 30 & done; echo forked; kill $(jobs -p)"
    b = bundle("sh", "-c", script, edit=set_resources({"pids": {"limit": 4}}))
    result = runtime("run", "-b", str(b), "pids", check=False, timeout=60)
    assert "can't fork" in result.stderr and "Resource temporarily unavailable" in result.stderr


def test_cpu_quota_throttles_a_busy_loop(runtime, bundle, cgroup_path):
    limits = {"cpu": {"quota": 5000, "period": 50000}}
    b = bundle("sh", "-c", "while :; do :; done", edit=set_resources(limits))
    runtime("create", "-b", str(b), "busy")
    try:
        runtime("start", "busy")
        deadline = time.monotonic() + 20
        stat: dict[str, str] = {}
        while time.monotonic() < deadline:
            stat = dict(line.split() for line in
                        v1_file(cgroup_path, "cpu", "cpu.stat").splitlines())
            if int(stat["nr_throttled"]) >= 3:
                break
            time.sleep(0.1)
        assert int(stat["nr_throttled"]) >= 3, stat
        assert int(stat["nr_periods"]) >= int(stat["nr_throttled"])
    finally:
        runtime("delete", "--force", "busy")


# --- the same files as runc ----------------------------------------------------------------------

CROSS_CHECK: dict[str, Any] = {
    "memory": {"limit": 80 << 20, "swap": 100 << 20, "reservation": 40 << 20, "swappiness": 30,
               "disableOOMKiller": True},
    "cpu": {"shares": 300, "quota": 25000, "period": 50000, "cpus": "0", "mems": "0",
            "realtimePeriod": 400000},
    "pids": {"limit": 17},
}


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_runc_writes_the_same_values_for_the_same_config(runtime, bundle, cgroup_path, tmp_path):
    limits = json.loads(json.dumps(CROSS_CHECK))
    keys = [k for k in EXPECTED if k[1] not in ("cpu.cfs_burst_us", "cpu.idle")]
    keys.append(("memory", "memory.oom_control"))
    disk = block_device()
    if disk is not None:
        limits["blockIO"] = {"throttleReadBpsDevice": [{"major": disk[0], "minor": disk[1],
                                                        "rate": 12345}],
                             "throttleWriteIOPSDevice": [{"major": disk[0], "minor": disk[1],
                                                          "rate": 77}]}
        keys += [("blkio", "blkio.throttle.read_bps_device"),
                 ("blkio", "blkio.throttle.write_iops_device")]
    runtime("create", "-b", str(bundle("sleep", "60", edit=set_resources(limits))), "ours")
    try:
        ours = {k: v1_file(cgroup_path, *k) for k in keys}
    finally:
        runtime("delete", "--force", "ours")

    runc_cgroup = f"{CGROUP_PREFIX}/runc-{uuid.uuid4().hex[:12]}"
    runc_bundle = make_bundle(tmp_path / "runc-bundle", ["sleep", "60"], cgroups_path=runc_cgroup)
    config = json.loads((runc_bundle / "config.json").read_text())
    config["linux"]["resources"].update(limits)
    (runc_bundle / "config.json").write_text(json.dumps(config))
    root = tmp_path / "runc-root"
    runc = ["runc", "--root", str(root)]
    try:
        # Files, not pipes: the detached container keeps runc's stdio open.
        with open(tmp_path / "runc.err", "w+") as err:
            done = subprocess.run([*runc, "run", "-d", "-b", str(runc_bundle), "theirs"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=err, timeout=60)
            err.seek(0)
            assert done.returncode == 0, err.read()
        theirs = {k: v1_file(runc_cgroup, *k) for k in keys}
    finally:
        subprocess.run([*runc, "delete", "--force", "theirs"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
        reap_children()
        for controller in os.listdir(V1):
            directory = V1 / controller / runc_cgroup.lstrip("/")
            if directory.is_dir():
                directory.rmdir()
    assert ours == theirs


# --- refused input: one line naming the field, nothing left behind -------------------------------

@pytest.mark.parametrize("resources, pointer, words", [
    ({"blockIO": {"weight": -10}}, "/linux/resources/blockIO/weight", ""),
    ({"cpu": {"shares": -2}}, "/linux/resources/cpu/shares", ""),
    ({"cpu": {"cpus": "0-x"}}, "/linux/resources/cpu/cpus", '"0-x" is not a cpu list'),
    ({"cpu": {"mems": "1,,2"}}, "/linux/resources/cpu/mems", "is not a memory node list"),
    ({"hugepageLimits": [{"pageSize": "3MB", "limit": 1 << 21}]},
     "/linux/resources/hugepageLimits/0/pageSize", "is not supported by this host"),
    ({"unified": {"memory.max": "1000000"}}, "/linux/resources/unified",
     "cannot be set on this host"),
    ({"unified": {"../../x": "1"}}, "/linux/resources/unified/..~1..~1x", "no slashes"),
    ({"devices": [{"allow": True, "access": ""}]}, "/linux/resources/devices/0/access",
     "at least one of r, w, m"),
])
def test_bad_resources_fail_with_one_line_naming_the_field(runtime, bundle, resources, pointer,
                                                           words):
    b = bundle("true", edit=set_resources(resources))
    result = runtime("run", "-b", str(b), "bad", check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and pointer in lines[0] and words in lines[0], result.stderr
    assert not (runtime.root / "bad").exists()


@pytest.mark.parametrize("resources, controller, file", [
    ({"network": {"classID": 0x100001}}, "net_cls", "net_cls.classid"),
    ({"network": {"priorities": [{"name": "lo", "priority": 5}]}}, "net_prio",
     "net_prio.ifpriomap"),
    ({"rdma": {"mlx5_1": {"hcaHandles": 3}}}, "rdma", "rdma.max"),
])
def test_a_controller_the_host_lacks_fails_create_naming_controller_file_errno(
        runtime, bundle, resources, controller, file):
    if (V1 / controller).is_dir():
        pytest.skip(f"this host has the {controller} controller")
    b = bundle("true", edit=set_resources(resources))
    result = runtime("run", "-b", str(b), "lacks", check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert f"the {controller} cgroup controller is not mounted" in lines[0]
    assert file in lines[0] and lines[0].endswith("ENOENT")
    assert not (runtime.root / "lacks").exists()


@pytest.mark.parametrize("resources, pointer, file, errno_name", [
    # The kernel keeps memory+swap >= memory: runc's ordering cannot help a smaller swap.
    ({"memory": {"limit": 64 << 20, "swap": 32 << 20}}, "/linux/resources/memory/swap",
     "memory.memsw.limit_in_bytes", "EINVAL"),
    # No block device 1:77 (ram disks are 1:N, this kernel has no brd loaded).
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 1, "minor": 77, "rate": 1}]}},
     "/linux/resources/blockIO/throttleReadBpsDevice/0", "blkio.throttle.read_bps_device",
     "ENODEV"),
])
def test_a_value_the_kernel_refuses_fails_create_naming_field_file_errno(
        runtime, bundle, resources, pointer, file, errno_name):
    b = bundle("true", edit=set_resources(resources))
    result = runtime("run", "-b", str(b), "refused", check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert f"set {pointer} (" in lines[0] and f"/{file}): {errno_name} (" in lines[0]
    assert not (runtime.root / "refused").exists()


def test_cpu_shares_the_kernel_clamps_are_refused_as_runc_refuses_them(runtime, bundle):
    b = bundle("true", edit=set_resources({"cpu": {"shares": 1}}))
    result = runtime("run", "-b", str(b), "clamped", check=False)
    assert result.returncode == 1
    assert "/linux/resources/cpu/shares: 1 is out of range: the minimum allowed cpu.shares " \
           "is 2" in result.stderr


# --- ordering and warnings -----------------------------------------------------------------------

def test_memory_and_swap_are_written_in_an_order_the_kernel_accepts(cgroup_path):
    """memsw.limit >= limit must hold after every single write, growing or shrinking."""
    from pyrunc.cgroups import cgroup_manager
    from pyrunc.spec.resources import Resources

    manager = cgroup_manager(cgroup_path, "order")
    manager.create()
    try:
        steps = [(64 << 20, 128 << 20), (256 << 20, 512 << 20),   # grow: swap goes first
                 (32 << 20, 48 << 20), (40 << 20, 40 << 20)]      # shrink: memory goes first
        for limit, swap in steps:
            manager.apply_resources(Resources.from_json(
                {"memory": {"limit": limit, "swap": swap}}))
            assert (v1_file(cgroup_path, "memory", "memory.limit_in_bytes"),
                    v1_file(cgroup_path, "memory", "memory.memsw.limit_in_bytes")) == \
                (str(limit), str(swap))
    finally:
        manager.destroy()


def test_kernel_memory_limits_are_ignored_with_a_warning_as_runc_does(runtime, bundle,
                                                                     cgroup_path, tmp_path):
    log = tmp_path / "pyrunc.log"
    limits = {"memory": {"limit": 64 << 20, "kernel": 32 << 20, "kernelTCP": 16 << 20}}
    runtime("create", "-b", str(bundle("true", edit=set_resources(limits))), "kmem",
            global_args=("--log", str(log)))
    try:
        assert v1_file(cgroup_path, "memory", "memory.limit_in_bytes") == str(64 << 20)
        assert int(v1_file(cgroup_path, "memory", "memory.kmem.limit_in_bytes")) > 1 << 60
        assert "kernel memory limits are ignored" in log.read_text()
    finally:
        runtime("delete", "--force", "kmem")
