"""State while `create` runs: a container being created is `creating`, never `stopped`.

Polls `pyrunc state` in a loop while many creates run at once (load makes the windows wide),
and starts each container right after its create returned.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from pyrunc_testing import needs_root

pytestmark = [needs_root, pytest.mark.integration]

CONTAINERS = 50


def test_state_during_concurrent_creates_is_never_stopped(runtime, bundle, tmp_path,
                                                         cgroup_path):
    ids = [f"race{i}" for i in range(CONTAINERS)]

    def own_cgroup(cid: str):
        def edit(config: dict) -> None:
            config["linux"]["cgroupsPath"] = f"{cgroup_path}/{cid}"
        return edit

    bundles = {cid: bundle("true", edit=own_cgroup(cid)) for cid in ids}
    seen: dict[str, set[str]] = {cid: set() for cid in ids}
    done = threading.Event()

    def poll(order: list[str]) -> None:
        while not done.is_set():
            for cid in order:
                proc = subprocess.run(runtime.argv("state", cid), capture_output=True,
                                      text=True, timeout=30)
                if proc.returncode == 0:
                    seen[cid].add(json.loads(proc.stdout)["status"])
                if done.is_set():
                    return

    # Three pollers in different orders: more chances to land in each create's window.
    pollers = [threading.Thread(target=poll, args=(order,))
               for order in (ids, ids[::-1], ids[::2] + ids[1::2])]
    for poller in pollers:
        poller.start()
    try:
        # stderr to files, not pipes: the parked init keeps pyrunc's stdio open.
        logs = [tmp_path / f"{cid}.err" for cid in ids]
        creates = [subprocess.Popen(runtime.argv("create", "-b", str(bundles[cid]), cid),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=log.open("w")) for cid, log in zip(ids, logs)]
        for cid, proc, log in zip(ids, creates, logs):
            proc.wait(timeout=120)
            assert proc.returncode == 0, log.read_text()
            # Right after create returned: created, and start works.
            assert runtime.state(cid)["status"] == "created"
    finally:
        time.sleep(0.2)
        done.set()
        for poller in pollers:
            poller.join()
    try:
        for cid in ids:
            runtime("start", cid)
    finally:
        for cid in ids:
            runtime("delete", "--force", cid, check=False)
        # The shared parent was made by whichever create came first; pyrunc removes only
        # the ancestors a container made itself, and this one outlived its maker's delete.
        for hierarchy in os.listdir("/sys/fs/cgroup"):
            parent = f"/sys/fs/cgroup/{hierarchy}{cgroup_path}"
            if os.path.isdir(parent):
                os.rmdir(parent)
    polled = set().union(*seen.values())
    assert "stopped" not in {s for cid in ids for s in seen[cid]}, seen
    assert polled <= {"creating", "created"}, polled
