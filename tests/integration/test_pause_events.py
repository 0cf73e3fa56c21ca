"""pause/resume, kill and delete of paused containers, and `events`, with real containers.

What the tests look at is the kernel: CPU time of the container's process from /proc (a frozen
busy loop stops accumulating it), freezer.state in the container's v1 freezer cgroup, the v1
memory and pids files `events --stats` must agree with, and an OOM kill the kernel reports.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pyrunc_testing import Runtime, alive, cpu_ticks, needs_root, reap_children
from pyrunc_testing import v1_cgroup_file as cgroup_file

pytestmark = [
    needs_root,
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/freezer"),
                       reason="needs the cgroup v1 freezer (the v2 lane has its own tests)"),
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


def test_pause_freezes_a_busy_loop_and_resume_lets_it_run(runtime, bundle, cgroup_path):
    runtime("run", "--detach", "--bundle", str(bundle("sh", "-c", "while :; do :; done")), "c1")
    pid = runtime.state("c1")["pid"]
    before = cpu_ticks(pid)
    wait_until(lambda: cpu_ticks(pid) > before + 5, "the loop to use CPU")

    runtime("pause", "c1")
    assert runtime.state("c1")["status"] == "paused"
    assert cgroup_file("freezer", cgroup_path, "freezer.state").read_text().strip() == "FROZEN"
    frozen_at = cpu_ticks(pid)
    time.sleep(0.5)
    assert cpu_ticks(pid) == frozen_at, "a frozen process must not run"

    runtime("resume", "c1")
    assert runtime.state("c1")["status"] == "running"
    assert cgroup_file("freezer", cgroup_path, "freezer.state").read_text().strip() == "THAWED"
    wait_until(lambda: cpu_ticks(pid) > frozen_at + 5, "the loop to run again")
    runtime("delete", "--force", "c1")


def test_pause_and_resume_refuse_the_wrong_status_with_runc_words(runtime, bundle):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100")), "c2")
    not_paused = runtime("resume", "c2", check=False)
    assert not_paused.returncode == 1 and "container not paused" in not_paused.stderr
    runtime("pause", "c2")
    again = runtime("pause", "c2", check=False)
    assert again.returncode == 1 and "container not running" in again.stderr
    runtime("resume", "c2")
    runtime("kill", "c2", "KILL")
    wait_until(lambda: runtime.state("c2")["status"] == "stopped", "the container to stop")
    stopped = runtime("pause", "c2", check=False)
    assert stopped.returncode == 1 and "container not running" in stopped.stderr
    assert runtime("resume", "c2", check=False).returncode == 1
    missing = runtime("pause", "nope", check=False)
    assert missing.returncode == 1 and "container does not exist" in missing.stderr
    assert runtime("pause", check=False).returncode == 1
    runtime("delete", "c2")


def test_a_created_container_can_be_paused_resumed_and_started(runtime, bundle):
    runtime("create", "--bundle", str(bundle("sleep", "100")), "c3")
    runtime("pause", "c3")
    assert runtime.state("c3")["status"] == "paused"
    refused = runtime("start", "c3", check=False)
    assert "cannot start a container in the paused state" in refused.stderr
    runtime("resume", "c3")
    assert runtime.state("c3")["status"] == "created"
    runtime("start", "c3")
    wait_until(lambda: runtime.state("c3")["status"] == "running", "start")
    runtime("delete", "--force", "c3")


def test_sigkill_reaches_a_paused_container(runtime, bundle, cgroup_path):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100")), "c4")
    pid = runtime.state("c4")["pid"]
    runtime("pause", "c4")
    runtime("kill", "c4", "KILL")
    wait_until(lambda: not alive(pid), "the frozen init to die")
    assert runtime.state("c4")["status"] == "stopped"
    assert cgroup_file("freezer", cgroup_path, "freezer.state").read_text().strip() == "THAWED"
    runtime("delete", "c4")


def test_delete_force_of_a_paused_container(runtime, bundle, cgroup_path):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100")), "c5")
    pid = runtime.state("c5")["pid"]
    runtime("pause", "c5")
    refused = runtime("delete", "c5", check=False)
    assert refused.returncode == 1 and "not stopped: paused" in refused.stderr
    runtime("delete", "--force", "c5")
    wait_until(lambda: not alive(pid), "the init to die")
    assert not cgroup_file("freezer", cgroup_path, "").exists()
    assert runtime("state", "c5", check=False).returncode == 1


def test_kill_all_of_a_paused_container_kills_every_process(runtime, bundle, cgroup_path):
    b = bundle("sh", "-c", "sleep 100 & sleep 100", edit=without_pid_namespace)
    runtime("run", "--detach", "--bundle", str(b), "c6")
    procs = cgroup_file("pids", cgroup_path, "cgroup.procs")
    wait_until(lambda: len(procs.read_text().split()) >= 2, "the background sleep")
    pids = [int(p) for p in procs.read_text().split()]
    runtime("pause", "c6")
    runtime("kill", "--all", "c6", "KILL")
    wait_until(lambda: not any(alive(p) for p in pids), f"{pids} to die")
    assert cgroup_file("freezer", cgroup_path, "freezer.state").read_text().strip() == "THAWED"
    runtime("delete", "c6")


def test_sigkill_without_a_pid_namespace_kills_the_whole_cgroup(runtime, bundle, cgroup_path):
    """runc >= 1.2: the init's children would otherwise outlive it (no pid namespace to end)."""
    b = bundle("sh", "-c", "sleep 100 & sleep 100", edit=without_pid_namespace)
    runtime("run", "--detach", "--bundle", str(b), "c7")
    procs = cgroup_file("pids", cgroup_path, "cgroup.procs")
    wait_until(lambda: len(procs.read_text().split()) >= 2, "the background sleep")
    pids = [int(p) for p in procs.read_text().split()]
    runtime("kill", "c7", "KILL")
    wait_until(lambda: not any(alive(p) for p in pids), f"{pids} to die")
    runtime("delete", "c7")


# --- events ------------------------------------------------------------------------------------

def stats(runtime: Runtime, cid: str) -> dict[str, Any]:
    result = runtime("events", "--stats", cid)
    assert result.stdout.endswith("}\n") and result.stdout.count("\n") == 1
    event = json.loads(result.stdout)
    assert list(event) == ["type", "id", "data"]
    assert event["type"] == "stats" and event["id"] == cid
    return event["data"]


def test_events_stats_agree_with_the_cgroup_files(runtime, bundle, cgroup_path):
    b = bundle("sh", "-c", "sleep 100 & sleep 100", edit=without_pid_namespace)
    runtime("run", "--detach", "--bundle", str(b), "c8")
    procs = cgroup_file("pids", cgroup_path, "cgroup.procs")
    wait_until(lambda: len(procs.read_text().split()) == 2, "the background sleep")
    data = stats(runtime, "c8")
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                          "network_interfaces"]
    assert data["pids"]["current"] == 2
    assert data["pids"].get("limit", 0) == 0     # pids.max is "max"
    memory_file = lambda name: int(cgroup_file("memory", cgroup_path, name).read_text())
    assert data["memory"]["usage"]["limit"] == memory_file("memory.limit_in_bytes")
    assert data["memory"]["usage"]["failcnt"] == memory_file("memory.failcnt")
    assert data["memory"]["usage"]["usage"] > 0
    raw_keys = {line.split()[0] for line in
                cgroup_file("memory", cgroup_path, "memory.stat").read_text().splitlines()}
    assert set(data["memory"]["raw"]) == raw_keys
    assert list(data["memory"]["raw"]) == sorted(raw_keys)
    assert data["memory"].get("cache", 0) == data["memory"]["raw"].get("cache", 0)
    usage = data["cpu"]["usage"]
    assert set(usage) >= {"total", "percpu", "kernel", "user"}
    assert len(usage["percpu"]) == os.cpu_count()
    assert usage["total"] <= int(cgroup_file("cpuacct", cgroup_path, "cpuacct.usage").read_text())
    cpus = cgroup_file("cpuset", cgroup_path, "cpuset.cpus").read_text().strip()
    assert data["cpuset"]["cpus"] == list(range(int(cpus.split("-")[0]),
                                                int(cpus.split("-")[-1]) + 1))
    assert data["network_interfaces"] is None and data["intel_rdt"] == {}
    runtime("delete", "--force", "c8")


#: Stats runc omits when they are zero or empty, and pyrunc with it.
OMITTED_WHEN_ZERO = {"memory": ("cache",),
                     "blkio": ("ioServiceBytesRecursive", "ioServicedRecursive")}


def key_tree(value: Any) -> Any:
    """The keys of nested objects (raw maps and numbers left out): a shape to compare."""
    if isinstance(value, dict):
        return {k: key_tree(v) for k, v in value.items() if k != "raw"}
    return None


@pytest.mark.skipif(not os.path.exists("/usr/sbin/runc"), reason="runc is not installed")
def test_events_stats_has_the_shape_runc_prints(runtime, bundle, cgroup_path, tmp_path):
    b = bundle("sleep", "100")
    runtime("run", "--detach", "--bundle", str(b), "c9")
    ours = stats(runtime, "c9")
    runtime("delete", "--force", "c9")
    runc = ["/usr/sbin/runc", "--root", str(tmp_path / "runc")]
    subprocess.run([*runc, "run", "-d", "--bundle", str(b), "r9"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        theirs = json.loads(subprocess.run([*runc, "events", "--stats", "r9"], check=True,
                                           capture_output=True, text=True).stdout)["data"]
    finally:
        subprocess.run([*runc, "delete", "--force", "r9"], check=False)
    # runc 1.1.5 prints an empty "throttling" object that runc 1.5 (omitzero) leaves out.
    if theirs["cpu"].get("throttling") == {}:
        del theirs["cpu"]["throttling"]
    # Both leave out a zero page cache and empty blkio lists (omitempty). Whether a container
    # that only ran `sleep` has any depends on what the host had cached before it (pages are
    # charged to the cgroup that first read them), so such a key may be on one side only.
    for section, keys in OMITTED_WHEN_ZERO.items():
        for key in keys:
            if (key in ours[section]) != (key in theirs[section]):
                ours[section].pop(key, None)
                theirs[section].pop(key, None)
    assert key_tree(ours) == key_tree(theirs)


def test_events_refuses_stopped_missing_and_bad_intervals(runtime, bundle):
    runtime("run", "--detach", "--bundle", str(bundle("true")), "c10")
    wait_until(lambda: runtime.state("c10")["status"] == "stopped", "true to exit")
    stopped = runtime("events", "--stats", "c10", check=False)
    assert stopped.returncode == 1
    assert "container with id c10 is not running" in stopped.stderr
    assert "does not exist" in runtime("events", "nope", check=False).stderr
    zero = runtime("events", "--interval", "0s", "c10", check=False)
    assert zero.returncode == 1 and "duration interval must be greater than 0" in zero.stderr
    unitless = runtime("events", "--interval=5", "c10", check=False)
    assert unitless.returncode == 1 and unitless.stdout.startswith("Incorrect Usage.")
    runtime("delete", "c10")


class EventStream:
    """`pyrunc events` running in the background, read line by line with a deadline."""

    def __init__(self, runtime: Runtime, *args: str) -> None:
        self.proc = subprocess.Popen(runtime.argv("events", *args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buffer = b""

    def next(self, timeout: float = 15.0) -> dict[str, Any] | None:
        """The next event, or None at the end of the stream."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"no event within {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def until(self, kind: str, timeout: float = 15.0) -> dict[str, Any] | None:
        while (event := self.next(timeout)) is not None and event["type"] != kind:
            pass
        return event

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.proc.stderr.close()


def oom_bundle(bundle: Any, tmp_path: Path) -> tuple[Path, Path]:
    """A container that waits for a trigger file, then allocates 64 MiB (dd's buffer)."""
    trigger = tmp_path / "trigger"
    trigger.mkdir()

    def edit(config: dict[str, Any]) -> None:
        config["mounts"].append({"destination": "/trigger", "type": "bind",
                                 "source": str(trigger), "options": ["rbind"]})
    b = bundle("sh", "-c", "while [ ! -e /trigger/go ]; do sleep 0.05; done; "
               "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 0.5", edit=edit)
    return b, trigger / "go"


def test_events_stream_reports_an_oom_kill_and_ends_with_the_container(runtime, bundle,
                                                                        cgroup_path, tmp_path):
    b, go = oom_bundle(bundle, tmp_path)
    runtime("run", "--detach", "--bundle", str(b), "c11")
    cgroup_file("memory", cgroup_path, "memory.limit_in_bytes").write_text(str(32 << 20))
    stream = EventStream(runtime, "--interval", "200ms", "c11")
    try:
        first = stream.next()
        assert first is not None and first["type"] == "stats" and first["id"] == "c11"
        assert first["data"]["memory"]["usage"]["limit"] == 32 << 20
        go.touch()   # the stream is registered for OOM events once it printed stats
        assert stream.until("oom") == {"type": "oom", "id": "c11"}
        assert int(cgroup_file("memory", cgroup_path, "memory.failcnt").read_text()) > 0
        assert stream.until("end of stream") is None, "the stream must end when the container stops"
        assert stream.close() == 0
    finally:
        stream.close()
    runtime("delete", "--force", "c11")


def test_events_stream_ends_when_the_container_is_deleted(runtime, bundle):
    runtime("run", "--detach", "--bundle", str(bundle("sleep", "100")), "c12")
    stream = EventStream(runtime, "--interval=100ms", "c12")
    try:
        assert stream.next()["type"] == "stats"
        runtime("delete", "--force", "c12")
        assert stream.until("end of stream", timeout=10) is None
        assert stream.close() == 0
    finally:
        stream.close()


def test_oom_after_update_memory(runtime, bundle, cgroup_path, tmp_path):
    b, go = oom_bundle(bundle, tmp_path)
    runtime("run", "--detach", "--bundle", str(b), "c13")
    try:
        runtime("update", "--memory", "32m", "c13")
        assert cgroup_file("memory", cgroup_path, "memory.limit_in_bytes").read_text() == \
            f"{32 << 20}\n"
        stream = EventStream(runtime, "--interval", "200ms", "c13")
        try:
            assert stream.next()["type"] == "stats"
            go.touch()
            assert stream.until("oom") == {"type": "oom", "id": "c13"}
        finally:
            stream.close()
    finally:
        runtime("delete", "--force", "c13")
