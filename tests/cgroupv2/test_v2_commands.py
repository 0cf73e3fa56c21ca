"""pause/resume, kill of a paused container, events (stats and OOM) and ps through the v2 driver.

Every test here skips unless cgroup2 is the only hierarchy; `test_vm_lane.py` runs this module
inside hack/vm's guest. What they look at is the kernel: cgroup.freeze / cgroup.events, the CPU
time of a busy loop, memory.events' oom_kill counter and the v2 stat files.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from cgroupv2_support import V2_ROOT, pure_v2_only, wait_for
from pyrunc_testing import alive, cpu_ticks

pytestmark = pure_v2_only


def cgroup_dir(cgroup_path: str) -> Path:
    return V2_ROOT / cgroup_path.lstrip("/")


def counters(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def test_pause_freezes_through_cgroup_freeze_resume_thaws_and_sigkill_gets_through(
        runtime, bundle, cgroup_path):
    runtime("run", "--detach", "--bundle", str(bundle("sh", "-c", "while :; do :; done")), "v1")
    directory = cgroup_dir(cgroup_path)
    pid = runtime.state("v1")["pid"]
    start = cpu_ticks(pid)
    wait_for(lambda: cpu_ticks(pid) > start + 2, "the loop to use CPU")
    runtime("pause", "v1")
    # pause returns only once the kernel reports the whole cgroup frozen
    assert (directory / "cgroup.freeze").read_text().strip() == "1"
    assert counters(directory / "cgroup.events")["frozen"] == 1
    assert runtime.state("v1")["status"] == "paused"
    frozen_at = cpu_ticks(pid)
    time.sleep(0.5)
    assert cpu_ticks(pid) == frozen_at
    runtime("resume", "v1")
    assert counters(directory / "cgroup.events")["frozen"] == 0
    wait_for(lambda: cpu_ticks(pid) > frozen_at + 2, "the loop to run again")
    # SIGKILL to a paused container: the init dies (the cgroup is thawed for it)
    runtime("pause", "v1")
    runtime("kill", "v1", "KILL")
    wait_for(lambda: not alive(pid), "the frozen init to die")
    runtime("delete", "v1")
    assert not directory.exists()


def test_ps_and_events_stats_read_the_v2_cgroup(runtime, bundle, cgroup_path):
    def no_pidns(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                         if n["type"] != "pid"]
    runtime("run", "--detach", "--bundle", str(bundle("sh", "-c", "sleep 100 & sleep 100",
                                                      edit=no_pidns)), "v3")
    directory = cgroup_dir(cgroup_path)
    wait_for(lambda: len((directory / "cgroup.procs").read_text().split()) == 2,
             "the background sleep")
    pids = sorted(int(p) for p in (directory / "cgroup.procs").read_text().split())
    assert sorted(json.loads(runtime("ps", "--format", "json", "v3").stdout)) == pids
    table = runtime("ps", "v3").stdout.splitlines()
    assert sorted(int(line.split()[1]) for line in table[1:]) == pids

    event = json.loads(runtime("events", "--stats", "v3").stdout)
    assert event["type"] == "stats" and event["id"] == "v3"
    data = event["data"]
    assert data["pids"]["current"] == int((directory / "pids.current").read_text()) == 2
    assert data["memory"]["usage"]["limit"] == (1 << 64) - 1      # memory.max is "max"
    assert data["memory"]["usage"]["usage"] > 0
    raw_keys = {line.split()[0] for line in (directory / "memory.stat").read_text().splitlines()}
    assert set(data["memory"]["raw"]) == raw_keys
    assert data["memory"].get("cache", 0) == data["memory"]["raw"]["file"]
    assert data["cpu"]["usage"]["total"] > 0
    assert "cpus" not in data["cpuset"]            # runc reads no cpuset stats on v2
    runtime("delete", "--force", "v3")


def test_events_stream_reports_a_v2_oom_kill(runtime, bundle, cgroup_path, tmp_path):
    trigger = tmp_path / "trigger"
    trigger.mkdir()

    def edit(config: dict[str, Any]) -> None:
        config["mounts"].append({"destination": "/trigger", "type": "bind",
                                 "source": str(trigger), "options": ["rbind"]})
    b = bundle("sh", "-c", "while [ ! -e /trigger/go ]; do sleep 0.05; done; "
               "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 0.5", edit=edit)
    runtime("run", "--detach", "--bundle", str(b), "v4")
    directory = cgroup_dir(cgroup_path)
    (directory / "memory.max").write_text(str(32 << 20))
    if (directory / "memory.swap.max").exists():
        (directory / "memory.swap.max").write_text("0")
    proc = subprocess.Popen(runtime.argv("events", "--interval", "300ms", "v4"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        lines: list[dict[str, Any]] = []
        buffer = b""

        def read_event(timeout: float = 60.0) -> dict[str, Any] | None:
            nonlocal buffer
            deadline = time.monotonic() + timeout
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                assert left > 0 and select.select([proc.stdout], [], [], left)[0], "no event"
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    return None
                buffer += chunk
            line, buffer = buffer.split(b"\n", 1)
            lines.append(json.loads(line))
            return lines[-1]

        first = read_event()
        assert first is not None and first["type"] == "stats"
        assert first["data"]["memory"]["usage"]["limit"] == 32 << 20
        (trigger / "go").touch()
        while (event := read_event()) is not None and event["type"] != "oom":
            pass
        assert event == {"type": "oom", "id": "v4"}
        assert counters(directory / "memory.events")["oom_kill"] >= 1
        while read_event() is not None:
            pass                                  # the stream ends with the container
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    runtime("delete", "--force", "v4")
