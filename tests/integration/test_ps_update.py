"""`ps` and `update` with real containers on this host's v1 hierarchies.

ps is checked against the container's cgroup.procs and against ps(1) itself. update is checked
through what it stores (the merged resources in the container state) and through the cgroup
files the resource drivers write.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pytest
from pyrunc_testing import Runtime, needs_root, reap_children
from pyrunc_testing import v1_cgroup_file as cgroup_file

pytestmark = [
    needs_root,
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/pids"),
                       reason="needs the cgroup v1 pids hierarchy"),
]



def wait_until(predicate: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        reap_children()
        time.sleep(0.02)


def without_pid_namespace(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "pid"]


def two_process_container(runtime: Runtime, bundle: Any, cgroup_path: str, cid: str) -> list[int]:
    b = bundle("sh", "-c", "sleep 100 & sleep 101", edit=without_pid_namespace)
    runtime("run", "--detach", "--bundle", str(b), cid)
    procs = cgroup_file("pids", cgroup_path, "cgroup.procs")
    wait_until(lambda: len(procs.read_text().split()) == 2, "the background sleep")
    return sorted(int(p) for p in procs.read_text().split())


def stored_resources(runtime: Runtime, cid: str) -> dict[str, Any]:
    """The resources the container state records (what a later update merges into)."""
    state = json.loads((runtime.root / cid / "state.json").read_text())
    return state["config"]["linux"].get("resources") or {}


# --- ps ----------------------------------------------------------------------------------------

def test_ps_json_lists_the_pids_of_the_cgroup(runtime, bundle, cgroup_path):
    pids = two_process_container(runtime, bundle, cgroup_path, "p1")
    for flag in ("--format", "-f", "--format=json"):
        args = (flag, "json") if "=" not in flag else (flag,)
        out = runtime("ps", *args, "p1").stdout
        assert out.endswith("]\n") and " " not in out      # Go's encoding: [1,2]
        assert sorted(json.loads(out)) == pids
    runtime("delete", "--force", "p1")


def test_ps_table_keeps_the_header_and_the_container_rows(runtime, bundle, cgroup_path):
    pids = two_process_container(runtime, bundle, cgroup_path, "p2")
    out = runtime("ps", "p2").stdout.splitlines()
    assert out[0].split()[:3] == ["UID", "PID", "PPID"]      # ps -ef by default
    assert sorted(int(line.split()[1]) for line in out[1:]) == pids
    # Arguments after the id go to ps(1), flags included.
    out = runtime("ps", "p2", "-o", "pid,args").stdout.splitlines()
    assert out[0].split() == ["PID", "COMMAND"]
    assert {line.split(None, 1)[1] for line in out[1:]} == {"sleep 100", "sleep 101"}
    no_pid = runtime("ps", "p2", "-o", "comm", check=False)
    assert no_pid.returncode == 1 and "couldn't find PID field in ps output" in no_pid.stderr
    bad = runtime("ps", "--format", "xml", "p2", check=False)
    assert bad.returncode == 1 and "invalid format option" in bad.stderr
    failing = runtime("ps", "p2", "--no-such-ps-option", check=False)
    assert failing.returncode == 1 and "exit status" in failing.stderr
    runtime("delete", "--force", "p2")


def test_ps_of_a_stopped_or_missing_container(runtime, bundle):
    runtime("run", "--detach", "--bundle", str(bundle("true")), "p3")
    wait_until(lambda: runtime.state("p3")["status"] == "stopped", "true to exit")
    # runc: a stopped container has no processes (null), and that is not an error.
    assert runtime("ps", "-f", "json", "p3").stdout == "null\n"
    assert len(runtime("ps", "p3").stdout.splitlines()) == 1
    missing = runtime("ps", "nope", check=False)
    assert missing.returncode == 1 and "container does not exist" in missing.stderr
    assert runtime("ps", check=False).stdout.startswith("Incorrect Usage.")
    runtime("delete", "p3")


# --- update ------------------------------------------------------------------------------------

def with_resources(config: dict[str, Any]) -> None:
    config["linux"]["resources"] = {"cpu": {"shares": 512}, "pids": {"limit": 100}}


def test_update_flags_merge_into_the_stored_resources(runtime, bundle):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100", edit=with_resources)), "u1")
    runtime("update", "--memory", "64m", "--pids-limit", "50", "--cpu-quota", "20000", "u1")
    assert stored_resources(runtime, "u1") == {
        "cpu": {"shares": 512, "quota": 20000},
        "pids": {"limit": 50},
        "memory": {"limit": 64 << 20, "checkBeforeUpdate": False},
    }
    # A second update changes only what it names.
    runtime("update", "--cpu-period", "50000", "u1")
    resources = stored_resources(runtime, "u1")
    assert resources["cpu"] == {"shares": 512, "quota": 20000, "period": 50000}
    assert resources["memory"]["limit"] == 64 << 20
    runtime("delete", "--force", "u1")


def test_update_resources_from_stdin_and_file(runtime, bundle, tmp_path):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100", edit=with_resources)), "u2")
    doc = {"memory": {"limit": 1 << 30, "reservation": 1 << 29}, "cpu": {"cpus": "0"}}
    runtime("update", "--resources=-", "--pids-limit", "7", "u2", input=json.dumps(doc).encode(),
            stdin=None)
    resources = stored_resources(runtime, "u2")
    assert resources["memory"] == {"limit": 1 << 30, "reservation": 1 << 29,
                                   "checkBeforeUpdate": False}
    assert resources["cpu"] == {"shares": 512, "cpus": "0"}
    assert resources["pids"] == {"limit": 100}   # with --resources the other flags are ignored
    path = tmp_path / "resources.json"
    path.write_text(json.dumps({"pids": {"limit": 9}}))
    runtime("update", "-r", str(path), "u2")
    assert stored_resources(runtime, "u2")["pids"] == {"limit": 9}
    runtime("delete", "--force", "u2")


def test_update_errors_are_one_line_and_change_nothing(runtime, bundle, tmp_path):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100", edit=with_resources)), "u3")
    before = stored_resources(runtime, "u3")
    bad = tmp_path / "bad.json"
    bad.write_text('{"memory": {"limit": "lots"}}')
    for args, message in [
        (("--memory", "12x"), "invalid value for memory: invalid suffix: 'x'"),
        (("--cpu-share", "-5"), "invalid value for cpu-share"),
        (("--l3-cache-schema", "L3:0=f"), "Intel RDT/CAT: l3 cache schema is not enabled"),
        (("--mem-bw-schema", "MB:0=50"), "Intel RDT/MBA: memory bandwidth schema is not enabled"),
        (("-r", str(bad)), "/memory/limit"),
        (("-r", str(tmp_path / "missing.json")), "missing.json"),
    ]:
        result = runtime("update", *args, "u3", check=False)
        assert result.returncode == 1, args
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert stored_resources(runtime, "u3") == before
    runtime("delete", "--force", "u3")


def test_update_of_a_stopped_or_missing_container(runtime, bundle):
    runtime("run", "--detach", "--bundle", str(bundle("true")), "u4")
    wait_until(lambda: runtime.state("u4")["status"] == "stopped", "true to exit")
    stopped = runtime("update", "--pids-limit", "5", "u4", check=False)
    assert stopped.returncode == 1 and "container not running" in stopped.stderr
    missing = runtime("update", "--pids-limit", "5", "nope", check=False)
    assert missing.returncode == 1 and "container does not exist" in missing.stderr
    runtime("delete", "u4")


def test_update_kernel_memory_only_warns(runtime, bundle, tmp_path):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100")), "u5")
    log = tmp_path / "log.json"
    runtime("update", "--kernel-memory", "10m", "u5", global_args=("--log", str(log),
                                                                    "--log-format", "json"))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r["level"] == "warning" and "Kernel memory settings are ignored" in r["msg"]
               for r in records)
    assert "kernel" not in stored_resources(runtime, "u5").get("memory", {})
    runtime("delete", "--force", "u5")


def test_update_works_on_a_paused_container(runtime, bundle):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100")), "u6")
    runtime("pause", "u6")
    runtime("update", "--pids-limit", "10", "u6")
    assert stored_resources(runtime, "u6")["pids"] == {"limit": 10}
    assert runtime.state("u6")["status"] == "paused"
    runtime("delete", "--force", "u6")


def test_update_changes_pids_max_live(runtime, bundle, cgroup_path):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100")), "u7")
    try:
        runtime("update", "--pids-limit", "10", "u7")
        assert cgroup_file("pids", cgroup_path, "pids.max").read_text() == "10\n"
        runtime("update", "-r", "-", "u7", input=b"{\"pids\": {\"limit\": 20}}", stdin=None)
        assert cgroup_file("pids", cgroup_path, "pids.max").read_text() == "20\n"
    finally:
        runtime("delete", "--force", "u7")


def test_update_changes_the_memory_limit_live(runtime, bundle, cgroup_path):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100")), "u8")
    try:
        runtime("update", "--memory", "256m", "u8")
        limit = cgroup_file("memory", cgroup_path, "memory.limit_in_bytes")
        assert limit.read_text() == f"{256 << 20}\n"
        runtime("update", "--memory", "128m", "u8")
        assert limit.read_text() == f"{128 << 20}\n"
        stats = json.loads(runtime("events", "--stats", "u8").stdout)["data"]
        assert stats["memory"]["usage"]["limit"] == 128 << 20
    finally:
        runtime("delete", "--force", "u8")


@pytest.mark.skipif(not os.path.exists("/usr/sbin/runc"), reason="runc is not installed")
def test_update_writes_what_runc_update_writes(runtime, bundle, cgroup_path, tmp_path):
    """The same update flags under runc and pyrunc leave the same v1 cgroup values."""
    flags = ["--memory", "100m", "--pids-limit", "33", "--cpu-share", "256",
             "--cpu-quota", "30000", "--cpu-period", "60000"]
    files = [("memory", "memory.limit_in_bytes"), ("pids", "pids.max"), ("cpu", "cpu.shares"),
             ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us")]
    runc_path = cgroup_path + "-runc"
    b = bundle("sleep", "100")
    runc_bundle = tmp_path / "runc-bundle"
    config = json.loads((b / "config.json").read_text())
    config["linux"]["cgroupsPath"] = runc_path
    config["root"]["path"] = str(b / "rootfs")
    runc_bundle.mkdir()
    (runc_bundle / "config.json").write_text(json.dumps(config))
    runc = ["/usr/sbin/runc", "--root", str(tmp_path / "runc")]
    subprocess.run([*runc, "run", "-d", "--bundle", str(runc_bundle), "r1"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        subprocess.run([*runc, "update", *flags, "r1"], check=True)
        theirs = [cgroup_file(c, runc_path, f).read_text() for c, f in files]
    finally:
        subprocess.run([*runc, "delete", "--force", "r1"], check=False)
    runtime("run", "--detach", "--bundle", str(b), "u9")
    try:
        runtime("update", *flags, "u9")
        assert [cgroup_file(c, cgroup_path, f).read_text() for c, f in files] == theirs
    finally:
        runtime("delete", "--force", "u9")
