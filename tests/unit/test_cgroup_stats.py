"""Stats files -> runc's `events` JSON shape, on cgroup directories made of plain files.

The readers only open files by name, so a temporary directory with the kernel's file formats
stands in for a cgroup; the integration tests compare against real cgroups.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrunc.cgroups import stats
from pyrunc.cgroups.stats import MAX_UINT64, StatsError, cpu_list, hugepage_sizes, read_stats


def write_files(directory: Path, files: dict[str, str]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return str(directory)


@pytest.fixture(autouse=True)
def one_hugepage_size(monkeypatch):
    monkeypatch.setattr(stats, "hugepage_sizes", lambda: ["2MB"])


def test_v2_directory_maps_like_runc(tmp_path):
    d = write_files(tmp_path / "c", {
        "cgroup.procs": "10\n11\n",
        "pids.current": "2\n", "pids.max": "max\n",
        "memory.stat": "anon 4096\nfile 8192\nkernel 100\n",
        "memory.current": "12288\n", "memory.max": "1048576\n", "memory.peak": "20000\n",
        "memory.swap.current": "0\n", "memory.swap.max": "max\n",
        "memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                           "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        "io.stat": "8:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n",
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\n"
                    "nr_throttled 1\nthrottled_usec 7\n",
        "cpu.pressure": "some avg10=3.12 avg60=5.00 avg300=4.60 total=42\n"
                        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        "hugetlb.2MB.current": "0\n", "hugetlb.2MB.events": "max 3\n",
    })
    data = read_stats({"unified": d})
    assert data == {
        "cpu": {"usage": {"total": 1_500_000, "kernel": 500_000, "user": 1_000_000},
                "throttling": {"periods": 4, "throttledPeriods": 1, "throttledTime": 7000},
                "psi": {"some": {"avg10": 3.12, "avg60": 5, "avg300": 4.6, "total": 42}}},
        "cpuset": {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                   "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                   "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0},
        "memory": {"cache": 8192,
                   "usage": {"limit": 1048576, "usage": 12288, "max": 20000, "failcnt": 0},
                   # runc: swap is memory + swap; unlimited swap keeps the max limit
                   "swap": {"limit": MAX_UINT64, "usage": 12288, "failcnt": 0},
                   "raw": {"anon": 4096, "file": 8192, "kernel": 100},
                   "psi": {}},
        "pids": {"current": 2},
        "blkio": {"ioServiceBytesRecursive": [
                      {"major": 8, "op": "Read", "value": 512},
                      {"major": 8, "op": "Write", "value": 1024}],
                  "ioServicedRecursive": [
                      {"major": 8, "op": "Read", "value": 1},
                      {"major": 8, "op": "Write", "value": 2}]},
        "hugetlb": {"2MB": {"failcnt": 3}},
        "intel_rdt": {},
        "network_interfaces": None,
    }
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                          "network_interfaces"]


def test_v2_finite_swap_limit_adds_the_memory_limit(tmp_path):
    d = write_files(tmp_path / "c", {
        "memory.stat": "file 0\n", "memory.current": "10\n", "memory.max": "100\n",
        "memory.swap.current": "5\n", "memory.swap.max": "50\n", "cgroup.procs": "",
    })
    swap = read_stats({"unified": d})["memory"]["swap"]
    assert swap == {"limit": 150, "usage": 15, "failcnt": 0}


def test_v2_without_pids_controller_counts_cgroup_procs(tmp_path):
    d = write_files(tmp_path / "c", {"cgroup.procs": "1\n2\n3\n"})
    assert read_stats({"unified": d})["pids"] == {"current": 3}


def test_v1_hierarchies_map_like_runc(tmp_path, monkeypatch):
    monkeypatch.setattr(stats.os, "sysconf", lambda name: 100)
    cpu = write_files(tmp_path / "cpu", {
        "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
        "cpuacct.stat": "user 3\nsystem 1\n", "cpuacct.usage": "42000000\n",
        "cpuacct.usage_percpu": "40000000 2000000 \n",
        "cpuacct.usage_all": "cpu user system\n0 30000000 10000000\n1 2000000 0\n",
    })
    memory = write_files(tmp_path / "memory", {
        "memory.stat": "cache 4096\nrss 8192\nhierarchical_memory_limit 9223372036854771712\n",
        "memory.usage_in_bytes": "12288\n", "memory.limit_in_bytes": "33554432\n",
        "memory.max_usage_in_bytes": "65536\n", "memory.failcnt": "2\n",
        "memory.kmem.usage_in_bytes": "100\n", "memory.kmem.max_usage_in_bytes": "200\n",
        "memory.kmem.failcnt": "0\n",
    })
    pids = write_files(tmp_path / "pids", {"pids.current": "1\n", "pids.max": "10\n"})
    cpuset = write_files(tmp_path / "cpuset", {
        "cpuset.cpus": "0-1,3\n", "cpuset.mems": "0\n", "cpuset.sched_load_balance": "1\n",
        "cpuset.sched_relax_domain_level": "-1\n",
    })
    blkio = write_files(tmp_path / "blkio", {
        "blkio.throttle.io_serviced_recursive": "",
        "blkio.throttle.io_serviced": "254:0 Read 2\n254:0 Write 3\nTotal 5\n",
        "blkio.throttle.io_service_bytes": "254:0 Read 2048\nTotal 2048\n",
    })
    paths = {"cpu": cpu, "cpuacct": cpu, "memory": memory, "pids": pids, "cpuset": cpuset,
             "blkio": blkio, "freezer": str(tmp_path / "nothing"), "unified": str(tmp_path)}
    data = read_stats(paths)
    assert data["cpu"] == {"usage": {"total": 42000000, "percpu": [40000000, 2000000],
                                     "percpu_kernel": [10000000, 0],
                                     "percpu_user": [30000000, 2000000],
                                     "kernel": 10_000_000, "user": 30_000_000}}
    assert data["memory"] == {
        "cache": 4096,
        "usage": {"limit": 33554432, "usage": 12288, "max": 65536, "failcnt": 2},
        # no memsw files (swap accounting off): runc leaves swap out
        "kernel": {"limit": 0, "usage": 100, "max": 200, "failcnt": 0},
        "raw": {"cache": 4096, "hierarchical_memory_limit": 9223372036854771712, "rss": 8192},
    }
    assert data["pids"] == {"current": 1, "limit": 10}
    assert data["cpuset"]["cpus"] == [0, 1, 3] and data["cpuset"]["mems"] == [0]
    assert data["cpuset"]["sched_load_balance"] == 1
    assert data["cpuset"]["sched_relax_domain_level"] == -1
    # the recursive throttle file is empty, so runc falls back to the non-recursive group
    assert data["blkio"] == {
        "ioServiceBytesRecursive": [{"major": 254, "op": "Read", "value": 2048}],
        "ioServicedRecursive": [{"major": 254, "op": "Read", "value": 2},
                                {"major": 254, "op": "Write", "value": 3}]}
    assert data["hugetlb"] == {}


def test_v1_unlimited_pids_reads_as_no_limit(tmp_path):
    pids = write_files(tmp_path / "pids", {"pids.current": "3\n", "pids.max": "max\n"})
    assert read_stats({"pids": pids})["pids"] == {"current": 3}


def test_a_cgroup_that_is_gone_is_an_error(tmp_path):
    with pytest.raises(StatsError):
        read_stats({"unified": str(tmp_path / "gone")})
    with pytest.raises(StatsError):
        read_stats({"memory": str(tmp_path / "gone"), "pids": str(tmp_path / "gone2")})


def test_cpu_list():
    assert cpu_list("0-2,7") == [0, 1, 2, 7]
    assert cpu_list("5") == [5]


def test_hugepage_sizes_are_named_like_the_cgroup_files(tmp_path):
    for name in ("hugepages-2048kB", "hugepages-1048576kB", "hugepages-64kB", "other"):
        (tmp_path / name).mkdir()
    assert sorted(hugepage_sizes(str(tmp_path))) == ["1GB", "2MB", "64KB"]
