"""Crash safety and concurrency: a runtime killed at any step of `create`, and many commands at
once, leave no lost state and nothing behind once `delete --force` ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pyrunc_testing import needs_root, reap_children

pytestmark = [needs_root, pytest.mark.integration]

#: --debug records of `create`, in the order they are written; the runtime is killed right
#: after each one appears.
CREATE_STEPS = (
    "runtime: move the intermediate into the container's cgroup",
    "runtime: got init-pid",
    "init: open procfs",
    "init: prepare rootfs",
    "init: enter rootfs",
    "init: set up process",
    "init: wait for start",
)


def _wait_for_line(path: Path, text: str, proc: subprocess.Popen[bytes],
                   timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.001)
    return False


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_runtime_killed_at_each_create_step_leaves_nothing_after_delete_force(
        runtime, bundle, tmp_path, step, cgroup_path):
    b = bundle("true")
    log_file = tmp_path / "debug.log"
    proc = subprocess.Popen(runtime.argv("create", "-b", str(b), "crash",
                                         global_args=("--debug", "--log", str(log_file))),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    reached = _wait_for_line(log_file, step, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reached or proc.returncode == 0, log_file.read_text()
    runtime("delete", "--force", "crash")
    reap_children()
    assert not (runtime.root / "crash").exists()
    left = [h for h in os.listdir("/sys/fs/cgroup")
            if os.path.exists(f"/sys/fs/cgroup/{h}{cgroup_path}")]
    assert not left, left


def test_100_parallel_lifecycles_of_distinct_ids_lose_nothing(runtime, bundle, cgroup_path):
    ids = [f"par{i}" for i in range(100)]

    def own_cgroup(cid: str):
        def edit(config: dict) -> None:
            config["linux"]["cgroupsPath"] = f"{cgroup_path}/{cid}"
        return edit

    bundles = {cid: bundle("sleep", "30", edit=own_cgroup(cid)) for cid in ids}

    def lifecycle(cid: str) -> str:
        runtime("create", "-b", str(bundles[cid]), cid, timeout=300)
        runtime("start", cid, timeout=300)
        status = runtime.state(cid)["status"]
        runtime("kill", cid, "KILL", timeout=300)
        deadline = time.monotonic() + 60
        while runtime.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
            reap_children()
            time.sleep(0.05)
        runtime("delete", cid, timeout=300)
        return status

    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(lifecycle, ids))
    finally:
        for cid in ids:
            runtime("delete", "--force", cid, check=False)
        for hierarchy in os.listdir("/sys/fs/cgroup"):
            parent = f"/sys/fs/cgroup/{hierarchy}{cgroup_path}"
            if os.path.isdir(parent):
                os.rmdir(parent)
    assert statuses == ["running"] * len(ids)
    assert json.loads(runtime("list", "--format", "json").stdout) in (None, [])


def test_20_parallel_commands_on_one_id_keep_its_state_whole(runtime, bundle):
    runtime("create", "-b", str(bundle("sleep", "30")), "one")
    commands = [("state", "one"), ("kill", "one", "0"), ("list",), ("ps", "one"),
                ("events", "--stats", "one")] * 4

    def call(args: tuple[str, ...]) -> int:
        return runtime(*args, check=False).returncode

    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            codes = list(pool.map(call, commands))
        assert codes == [0] * len(commands)
        state = runtime.state("one")
        assert state["status"] == "created" and state["pid"] > 0
        runtime("start", "one")
        assert runtime.state("one")["status"] == "running"
    finally:
        runtime("delete", "--force", "one")
