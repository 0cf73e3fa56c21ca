"""The parts of pause/resume/update/events/ps that need no container: value parsing as runc
parses it (Go durations, go-units RAMInBytes), runc's update merge, ps row filtering."""

from __future__ import annotations

import types

import pytest

from pyrunc.cli.events import parse_duration
from pyrunc.cli.ps import filter_rows
from pyrunc.cli.update import ram_in_bytes, resources_from_flags
from pyrunc.container import update as update_mod
from pyrunc.container.state import ContainerError
from pyrunc.container.update import UpdateError, check_input, merge_resources


@pytest.mark.parametrize("text, seconds", [
    ("5s", 5.0), ("100ms", 0.1), ("1m30s", 90.0), ("1.5h", 5400.0), ("0", 0.0), ("-2s", -2.0),
    ("250us", 0.00025), ("3\u00b5s", 3e-6), ("10ns", 1e-8), ("2h45m", 9900.0),
])
def test_parse_duration_reads_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "", "s", "1x", "1.2.3s", "--1s", "5 s"])
def test_parse_duration_rejects_what_go_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text, size", [
    ("1024", 1024), ("512m", 512 << 20), ("512M", 512 << 20), ("1g", 1 << 30),
    ("1.5k", 1536), ("10 MB", 10 << 20), ("1KiB", 1024), ("2kb", 2048), ("7b", 7),
    ("1e3", 1000), ("0.5", 0),
])
def test_ram_in_bytes_uses_powers_of_1024_like_go_units(text, size):
    assert ram_in_bytes(text) == size


@pytest.mark.parametrize("text, message", [
    ("12x", "invalid suffix: 'x'"), ("abc", "invalid size: 'abc'"), ("-5", "invalid size: '-5'"),
    ("1kbb", "invalid suffix: 'kbb'"), ("5mib2", None), ("1.2.3m", "invalid syntax"),
])
def test_ram_in_bytes_rejects_bad_sizes(text, message):
    with pytest.raises(ValueError) as info:
        ram_in_bytes(text)
    if message:
        assert message in str(info.value)


def flag_opts(**given: str | int) -> dict[str, object]:
    opts: dict[str, object] = {name: "" for name in (
        "resources", "cpu_period", "cpu_quota", "cpu_burst", "cpu_share", "cpu_rt_period",
        "cpu_rt_runtime", "cpuset_cpus", "cpuset_mems", "cpu_idle", "kernel_memory",
        "kernel_memory_tcp", "memory", "memory_reservation", "memory_swap", "pids_limit",
        "l3_cache_schema", "mem_bw_schema")}
    opts["blkio_weight"] = 0
    opts.update(given)
    return opts


def test_flags_become_a_linux_resources_object():
    assert resources_from_flags(flag_opts(
        memory="512m", memory_swap="-1", cpu_quota="-1", cpu_period="100000", cpu_share="512",
        cpuset_cpus="0", pids_limit="0", blkio_weight=300)) == {
        "blockIO": {"weight": 300},
        "pids": {"limit": 0},
        "memory": {"limit": 512 << 20, "swap": -1},
        "cpu": {"cpus": "0", "period": 100000, "shares": 512, "quota": -1},
    }
    assert resources_from_flags(flag_opts()) == {}


@pytest.mark.parametrize("opts, message", [
    ({"memory": "12x"}, "invalid value for memory: invalid suffix: 'x'"),
    ({"cpu_period": "-1"}, 'invalid value for cpu-period: strconv.ParseUint: parsing "-1"'),
    ({"cpu_quota": "1.5"}, 'invalid value for cpu-quota: strconv.ParseInt: parsing "1.5"'),
    ({"pids_limit": "ten"}, "invalid value for pids-limit"),
])
def test_bad_flag_values_name_the_flag(opts, message):
    with pytest.raises(ContainerError, match=message.replace("(", r"\(")):
        resources_from_flags(flag_opts(**opts))


OLD = {
    "memory": {"limit": 100, "reservation": 50},
    "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "cpus": "0-1"},
    "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
    "pids": {"limit": 20},
    "devices": [{"allow": False, "access": "rwm"}],
}


def test_merge_changes_only_the_given_fields():
    merged = merge_resources(OLD, {"memory": {"limit": 200}})
    assert merged["memory"] == {"limit": 200, "reservation": 50, "checkBeforeUpdate": False}
    assert merged["cpu"] == OLD["cpu"] and merged["pids"] == {"limit": 20}
    assert merged["blockIO"] == OLD["blockIO"] and merged["devices"] == OLD["devices"]
    assert OLD["memory"] == {"limit": 100, "reservation": 50}   # the input is not modified


def test_merge_quota_and_period_like_runc():
    # only one of the pair given: the other keeps its old value
    assert merge_resources(OLD, {"cpu": {"quota": 50000}})["cpu"]["period"] == 100000
    assert merge_resources(OLD, {"cpu": {"period": 50000}})["cpu"]["quota"] == 20000
    both = merge_resources(OLD, {"cpu": {"quota": -1, "period": 200000}})["cpu"]
    assert (both["quota"], both["period"]) == (-1, 200000)
    # 0 means "not given"
    assert merge_resources(OLD, {"cpu": {"quota": 0}})["cpu"]["quota"] == 20000


def test_merge_fix_ups_from_runc():
    # an unlimited memory limit without swap sets swap to 0 (no swap limit without a limit)
    assert merge_resources(OLD, {"memory": {"limit": -1}})["memory"]["swap"] == 0
    assert merge_resources(OLD, {"memory": {"limit": -1, "swap": -1}})["memory"]["swap"] == -1
    # idle without shares: shares 0, so that no cpu.weight is written next to cpu.idle
    cpu = merge_resources(OLD, {"cpu": {"idle": 1}})["cpu"]
    assert (cpu["idle"], cpu["shares"]) == (1, 0)
    # kernel memory is obsolete: warned about, never stored
    assert "kernel" not in merge_resources({}, {"memory": {"kernel": 1 << 20}})["memory"]


def test_merge_upserts_block_io_devices_by_major_minor():
    blkio = merge_resources(OLD, {"blockIO": {
        "weightDevice": [{"major": 8, "minor": 0, "leafWeight": 10},
                         {"major": 8, "minor": 16, "weight": 200}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 5}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 7}],
    }})["blockIO"]
    assert blkio["weightDevice"] == [{"major": 8, "minor": 0, "weight": 300, "leafWeight": 10},
                                     {"major": 8, "minor": 16, "weight": 200}]
    assert blkio["throttleReadBpsDevice"] == [{"major": 8, "minor": 0, "rate": 5}]
    assert blkio["throttleWriteIOPSDevice"] == [{"major": 8, "minor": 0, "rate": 7}]
    assert blkio["weight"] == 500


def test_merge_pids_unified_and_ignored_sections():
    merged = merge_resources({"unified": {"memory.high": "100"}}, {
        "pids": {"limit": 5}, "unified": {"memory.low": "1"},
        "devices": [{"allow": True, "access": "rwm"}], "hugepageLimits": [{"pageSize": "2MB",
                                                                            "limit": 0}]})
    assert merged["pids"] == {"limit": 5}
    assert merged["unified"] == {"memory.high": "100", "memory.low": "1"}
    assert "devices" not in merged and "hugepageLimits" not in merged


@pytest.mark.parametrize("doc, pointer", [
    ([], "the resources must be a JSON object"),
    ({"memory": {"limit": "1g"}}, "/memory/limit"),
    ({"cpu": {"shares": True}}, "/cpu/shares"),
    ({"cpu": {"cpus": 3}}, "/cpu/cpus"),
    ({"memory": 5}, "/memory: must be an object"),
    ({"memory": {"checkBeforeUpdate": 1}}, "/memory/checkBeforeUpdate"),
])
def test_update_input_errors_name_the_pointer(doc, pointer):
    with pytest.raises(UpdateError, match=pointer):
        check_input(doc)


def test_apply_passes_the_typed_model_without_device_rules():
    seen = []
    manager = types.SimpleNamespace(apply_resources=seen.append)
    update_mod._apply(manager, {"pids": {"limit": 3}, "devices": [{"allow": False}]})
    from pyrunc.spec.resources import Resources

    assert isinstance(seen[-1], Resources)
    assert seen[-1].pids.limit == 3 and not seen[-1].devices


PS_OUTPUT = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 init
root         200       1  0 10:01 ?        00:00:00 sleep 100
root         201     200  0 10:01 ?        00:00:00 sh -c echo 1 200
"""


def test_ps_rows_are_filtered_by_the_pid_column():
    assert filter_rows(PS_OUTPUT, {200}) == PS_OUTPUT.splitlines()[0] + "\n" + \
        PS_OUTPUT.splitlines()[2] + "\n"
    assert filter_rows("  PID COMMAND\n    1 init\n", set()) == "  PID COMMAND\n"


def test_ps_without_a_pid_column_fails_like_runc():
    with pytest.raises(ContainerError, match="couldn't find PID field in ps output"):
        filter_rows("COMMAND\ninit\n", {1})
