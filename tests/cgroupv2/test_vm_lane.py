"""The cgroup v2 lane: run this directory's tests inside hack/vm's pure cgroup v2 guest.

On a hybrid or v1 host the v2-only tests skip; this test boots a qemu guest (TCG, the host's own
kernel, the host's files read-only over 9p) and runs them there with the same Python. It skips
where the guest cannot run (no qemu, kernel or 9p modules), where the host is already pure v2 (the
tests then run directly), when not root, or when PYRUNC_VM_LANE=0.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from cgroupv2_support import is_pure_v2

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack"))

from vm import run_in_vm, vm_available

#: The v2-only test files the lane runs in the guest.
LANE_FILES = ("test_v2_host.py", "test_v2_devices.py", "test_v2_commands.py", "test_v2_limits.py",
              "test_v2_doctor.py", "test_v2_rootless.py")
#: The tests in LANE_FILES; the lane fails if fewer pass (or xfail as expected).
MIN_TESTS = 32
TIMEOUT = 600.0


def lane_skip_reason() -> str | None:
    if os.environ.get("PYRUNC_VM_LANE") == "0":
        return "PYRUNC_VM_LANE=0"
    if os.environ.get("PYRUNC_VM") == "1" or is_pure_v2():
        return "already on a pure cgroup v2 host: the v2 tests run directly"
    if os.geteuid() != 0:
        return "the guest's tests start containers: needs root"
    return vm_available()


def summary_counts(output: str) -> dict[str, int]:
    """Counts from pytest's last summary line ("3 passed, 1 xfailed in 9.1s"); {} if none."""
    lines = [line for line in output.splitlines() if re.search(r"\bin [\d.]+s\b", line)]
    if not lines:
        return {}
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (\w+)", lines[-1])}


def test_summary_counts():
    assert summary_counts("..x\n7 passed, 1 xfailed, 1 skipped in 41.20s\n") == \
        {"passed": 7, "xfailed": 1, "skipped": 1}
    assert summary_counts("===== 2 failed, 5 passed in 3.00s =====") == {"failed": 2, "passed": 5}
    assert summary_counts("no tests ran in 0.01s") == {}


@pytest.mark.integration
def test_cgroup_v2_tests_pass_in_the_vm():
    reason = lane_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    here = Path(__file__).resolve().parent.relative_to(REPO)
    files = " ".join(f"{here}/{name}" for name in LANE_FILES)
    command = f"{sys.executable} -m pytest -q -p no:cacheprovider -rfEsxX {files}"
    status, output = run_in_vm(command, repo=REPO, timeout=TIMEOUT)
    counts = summary_counts(output)
    ran = counts.get("passed", 0) + counts.get("xfailed", 0)
    assert status == 0 and ran >= MIN_TESTS and not counts.get("skipped"), \
        f"cgroup v2 lane: exit {status}, {counts or 'no summary'}\n{output[-8000:]}"
