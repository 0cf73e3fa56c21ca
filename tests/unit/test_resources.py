"""The linux.resources model and the value conversions the cgroup drivers share with runc."""

from __future__ import annotations

import pytest

from pyrunc.cgroups.convert import (
    ConversionError,
    blkio_weight_to_io,
    cpu_max,
    pids_max,
    rdma_line,
    shares_to_weight,
    swap_to_v2,
    throttle_line,
    v2_number,
)
from pyrunc.cgroups.hugepages import check_page_sizes, host_page_sizes, size_name
from pyrunc.cgroups.v2.io import io_max_lines
from pyrunc.spec.mempolicy import MemoryPolicyError, parse_memory_policy
from pyrunc.spec.resources import (
    CPU,
    DeviceRule,
    Rdma,
    Resources,
    ResourcesError,
    ThrottleDevice,
    parse_cpu_list,
)


# --- conversions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shares, weight", [
    # runc's anchors: unset, below/at/just above the minimum, the default, the maximum.
    (0, 0), (1, 1), (2, 1), (3, 2), (1024, 100), (262143, 10000), (262144, 10000),
    (300000, 10000),
])
def test_shares_to_weight_is_runcs_curve(shares, weight):
    assert shares_to_weight(shares) == weight


def test_shares_to_weight_never_decreases():
    weights = [shares_to_weight(s) for s in range(2, 262145, 97)]
    assert weights == sorted(weights) and len(set(weights)) > 1000


@pytest.mark.parametrize("swap, limit, v2", [
    (0, -1, -1),            # unlimited memory, swap unset: both unlimited
    (-1, 1 << 20, -1),
    (0, 1 << 20, 0),        # unset stays unset
    (3 << 20, -1, 3 << 20), # unlimited memory: swap as it is
    (3 << 20, 1 << 20, 2 << 20),
    (1 << 20, 1 << 20, 0),  # memory+swap == memory: no swap
])
def test_swap_to_v2_subtracts_the_memory_limit(swap, limit, v2):
    assert swap_to_v2(swap, limit) == v2


@pytest.mark.parametrize("swap, limit, words", [
    (2 << 20, 0, "without a memory limit"),
    (1 << 20, 2 << 20, "must be >= memory limit"),
])
def test_swap_to_v2_refuses_what_has_no_v2_meaning(swap, limit, words):
    with pytest.raises(ConversionError, match=f"^/linux/resources/memory/swap: .*{words}"):
        swap_to_v2(swap, limit)


def test_blkio_weight_maps_10_1000_onto_1_10000():
    assert [blkio_weight_to_io(w) for w in (0, 10, 500, 1000)] == [0, 1, 4950, 10000]


def test_v2_numbers_pids_and_cpu_max():
    assert [v2_number(v) for v in (0, -1, 5)] == ["", "max", "5"]
    assert [pids_max(v) for v in (-1, 0, 1, 99)] == ["max", "1", "1", "99"]
    assert cpu_max(50000, None) == "50000 100000"
    assert cpu_max(-1, 20000) == "max 20000"
    assert cpu_max(None, 20000) == "max 20000"


def test_throttle_and_rdma_lines():
    device = ThrottleDevice(8, 16, 1048576)
    assert throttle_line(device) == "8:16 1048576"
    assert throttle_line(device, "wiops") == "8:16 wiops=1048576"
    assert rdma_line("mlx5_1", Rdma(hca_handles=3)) == "mlx5_1 hca_handle=3"
    assert rdma_line("mlx4_0", Rdma(2, 9)) == "mlx4_0 hca_handle=2 hca_object=9"


def test_io_max_has_one_line_per_key_in_config_order():
    r = Resources.from_json({"blockIO": {
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 10},
                                  {"major": 8, "minor": 16, "rate": 20}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 30}]}})
    assert io_max_lines(r) == [
        ("8:0 rbps=10", "/linux/resources/blockIO/throttleReadBpsDevice/0"),
        ("8:16 rbps=20", "/linux/resources/blockIO/throttleReadBpsDevice/1"),
        ("8:0 wiops=30", "/linux/resources/blockIO/throttleWriteIOPSDevice/0")]


def test_huge_page_size_names_and_host_check(tmp_path):
    assert [size_name(k) for k in (64, 2048, 1048576, 32768)] == ["64KB", "2MB", "1GB", "32MB"]
    for name in ("hugepages-2048kB", "hugepages-1048576kB", "not-a-size"):
        (tmp_path / name).mkdir()
    assert host_page_sizes(str(tmp_path)) == ["2MB", "1GB"]
    ok = Resources.from_json({"hugepageLimits": [{"pageSize": "1GB", "limit": 0}]})
    assert check_page_sizes(ok, sysfs=str(tmp_path)) is None
    bad = Resources.from_json({"hugepageLimits": [{"pageSize": "2MB", "limit": 0},
                                                  {"pageSize": "16MB", "limit": 0}]})
    assert check_page_sizes(bad, sysfs=str(tmp_path)) == (
        "/linux/resources/hugepageLimits/1/pageSize: huge page size 16MB is not supported by "
        "this host (it has: 2MB, 1GB)")


# --- the model -----------------------------------------------------------------------------------

def test_absent_and_empty_resources_are_empty():
    assert Resources.from_json(None).is_empty()
    assert Resources.from_json({}).is_empty()
    assert not Resources.from_json({"pids": {"limit": 5}}).is_empty()


def test_every_section_is_typed():
    r = Resources.from_json({
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
        "memory": {"limit": 1 << 20, "swap": -1, "kernelTCP": 5, "swappiness": 2**64 - 1},
        "cpu": {"shares": 512, "cpus": "0-3,8", "idle": 1},
        "pids": {},
        "blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 10}]},
        "network": {"classID": 7, "priorities": [{"name": "eth0", "priority": 3}]},
        "rdma": {"mlx5_1": {"hcaObjects": 4}},
        "unified": {"io.max": "8:0 rbps=1", "cgroup.max.depth": "3"},
    })
    assert r.devices == (DeviceRule(False), DeviceRule(True, "c", 1, 3, "rw"))
    assert r.memory is not None and r.memory.limit == 1 << 20 and r.memory.swap == -1
    assert r.memory.kernel_tcp == 5 and r.memory.swappiness is None  # uint64 -1: unset
    assert r.cpu == CPU(shares=512, cpus="0-3,8", idle=1)
    assert r.pids is not None and r.pids.limit is None
    assert r.block_io is not None and r.block_io.weight_device[0].leaf_weight == 10
    assert r.network is not None and r.network.priorities[0].name == "eth0"
    assert r.rdma == {"mlx5_1": Rdma(None, 4)}
    assert r.unified["cgroup.max.depth"] == "3"


@pytest.mark.parametrize("doc, message", [
    ({"cpu": {"cpus": "0-x"}}, '/linux/resources/cpu/cpus: "0-x" is not a cpu list'),
    ({"cpu": {"cpus": "3-1"}}, '/linux/resources/cpu/cpus: "3-1" is not a cpu list'),
    ({"cpu": {"shares": -1}}, "/linux/resources/cpu/shares: -1 must not be negative"),
    ({"cpu": {"idle": 2}}, "/linux/resources/cpu/idle: 2 must be 0 or 1"),
    ({"cpu": {"quota": "1"}}, '/linux/resources/cpu/quota: "1" is not an integer'),
    ({"blockIO": {"weight": -3}}, "/linux/resources/blockIO/weight: -3 must not be negative"),
    ({"blockIO": {"leafWeight": 70000}},
     "/linux/resources/blockIO/leafWeight: 70000 is out of range 0..65535"),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0}]}},
     "/linux/resources/blockIO/weightDevice/0: needs weight or leafWeight"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
     "/linux/resources/blockIO/throttleReadBpsDevice/0/rate: is required"),
    ({"memory": {"limit": -2}}, "/linux/resources/memory/limit: -2 is out of range"),
    ({"memory": {"swappiness": 101}}, "/linux/resources/memory/swappiness: 101 is out of range"),
    ({"memory": {"disableOOMKiller": 1}},
     "/linux/resources/memory/disableOOMKiller: 1 is not a boolean"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]},
     '/linux/resources/hugepageLimits/0/pageSize: "2M" is not a huge page size'),
    ({"hugepageLimits": [{"pageSize": "2MB"}]},
     "/linux/resources/hugepageLimits/0/limit: is required"),
    ({"network": {"priorities": [{"name": "a b", "priority": 1}]}},
     '/linux/resources/network/priorities/0/name: "a b" is not an interface name'),
    ({"rdma": {"mlx5_1": {}}}, "/linux/resources/rdma/mlx5_1: needs hcaHandles or hcaObjects"),
    ({"unified": {"memory/../../x": "1"}},
     '/linux/resources/unified/memory~1..~1..~1x: "memory/../../x" must be a file name'),
    ({"unified": {"nodot": "1"}},
     '/linux/resources/unified/nodot: "nodot" must be in the form CONTROLLER.PARAMETER'),
    ({"unified": {".max": "1"}}, "must be in the form CONTROLLER.PARAMETER"),
    ({"unified": {"pids.max": 5}}, "/linux/resources/unified/pids.max: 5 is not a string"),
    ({"devices": [{"access": "r"}]}, "/linux/resources/devices/0/allow: is required"),
    ({"devices": [{"allow": True, "access": "rx"}]},
     '/linux/resources/devices/0/access: "rx" may only contain r, w and m'),
    ({"devices": [{"allow": True, "type": "p", "access": "r"}]},
     "/linux/resources/devices/0/type"),
    ({"pids": []}, "/linux/resources/pids: [] is not an object"),
])
def test_bad_values_name_their_json_pointer(doc, message):
    with pytest.raises(ResourcesError) as info:
        Resources.from_json(doc)
    assert str(info.value).startswith(message) or message in str(info.value)
    assert "\n" not in str(info.value)


def test_update_documents_get_their_own_pointer_base():
    with pytest.raises(ResourcesError, match=r"^/cpu/cpus: "):
        Resources.from_json({"cpu": {"cpus": "x"}}, pointer="")


@pytest.mark.parametrize("text, cpus", [
    ("0", [0]), ("0-3", [0, 1, 2, 3]), ("0,2,4-5", [0, 2, 4, 5]), ("0-7:2/4", [0, 1, 4, 5]),
])
def test_cpu_lists_as_the_kernel_reads_them(text, cpus):
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["", "a", "1-", "-1", "1,,2", " 1", "0-7:5/4", "2-1"])
def test_not_cpu_lists(text):
    with pytest.raises(ValueError):
        parse_cpu_list(text)


def test_memory_policy_checks_as_runc():
    policy = parse_memory_policy({"mode": "MPOL_BIND", "nodes": "0-1",
                                  "flags": ["MPOL_F_STATIC_NODES"]})
    assert policy == (2, (0, 1), 1 << 15)
    for doc, words in [({"mode": "MPOL_NOPE"}, "/linux/memoryPolicy/mode"),
                       ({"mode": "MPOL_BIND"}, "needs at least one node"),
                       ({"mode": "MPOL_LOCAL", "nodes": "0"}, "takes no nodes"),
                       ({"mode": "MPOL_PREFERRED", "nodes": "x"}, "is not a node list"),
                       ({"mode": "MPOL_DEFAULT", "flags": ["F"]}, "/linux/memoryPolicy/flags/0")]:
        with pytest.raises(MemoryPolicyError, match=words):
            parse_memory_policy(doc)
