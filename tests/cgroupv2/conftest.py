"""Fixtures for tests that need a pure cgroup v2 host (cgroup2 alone at /sys/fs/cgroup).

On a hybrid or v1 machine these tests skip; `test_vm_lane.py` then runs them inside a qemu guest
that is pure v2 (hack/vm.py). The root conftest's `runtime` and `bundle` fixtures are reused; its
leak check looks for v1-style directories, so `cgroup_path` here also checks the v2 one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cgroupv2_support import V2_ROOT


@pytest.fixture
def cgroup_path(cgroup_path: str) -> Iterator[str]:
    """The root conftest's path, also checked to be gone from the v2 hierarchy afterwards."""
    yield cgroup_path
    directory = V2_ROOT / cgroup_path.lstrip("/")
    left = directory.exists()
    if left:
        try:
            directory.rmdir()
        except OSError:
            pass
    assert not left, f"cgroup directory left behind: {directory}"
