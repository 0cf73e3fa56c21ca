"""Shared fixtures: a real pyrunc, busybox bundles, a private state root, and leak checks.

Integration tests start real containers as root. The test process makes itself a child
subreaper (like containerd's shim and conmon are) so that container inits are re-parented to it
and can be reaped — this machine's PID 1 does not reap orphans. Every test gets its own
`--root`, and its own absolute cgroup path under /pyrunc-test; after the test, anything left is
force-deleted and reported as a failure.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
REPO = Path(__file__).resolve().parents[1]
from pyrunc_testing import (
    CGROUP_PREFIX,
    Runtime,
    host_mounts_mentioning,
    is_root,
    make_bundle,
    reap_children,
)

PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture(scope="session", autouse=True)
def _subreaper() -> Iterator[None]:
    if is_root():
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    yield
    # The tests' shared cgroup prefix: each test removed its own cgroup below it.
    if os.path.isdir("/sys/fs/cgroup"):
        for hierarchy in os.listdir("/sys/fs/cgroup"):
            try:
                os.rmdir(Path("/sys/fs/cgroup") / hierarchy / CGROUP_PREFIX.lstrip("/"))
            except OSError:
                pass


@pytest.fixture
def runtime(tmp_path: Path, cgroup_path: str) -> Iterator[Runtime]:
    root = tmp_path / "state"
    rt = Runtime(root)
    yield rt
    leftovers = sorted(p.name for p in root.iterdir()) if root.exists() else []
    for container_id in leftovers:
        rt("delete", "--force", container_id, check=False)
    reap_children()
    shutil.rmtree(root, ignore_errors=True)
    assert not leftovers, f"test left containers behind: {leftovers}"


@pytest.fixture
def cgroup_path() -> Iterator[str]:
    """An absolute cgroupsPath of the test's own; checked to be gone afterwards."""
    path = f"{CGROUP_PREFIX}/{uuid.uuid4().hex[:12]}"
    yield path
    left = [d for d in (Path("/sys/fs/cgroup") / h / path.lstrip("/")
                        for h in os.listdir("/sys/fs/cgroup")) if d.exists()] \
        if os.path.isdir("/sys/fs/cgroup") else []
    for d in left:
        try:
            d.rmdir()
        except OSError:
            pass
    assert not left, f"cgroup directories left behind: {left}"


@pytest.fixture
def bundle(tmp_path: Path, cgroup_path: str):  # type: ignore[no-untyped-def]
    """Factory: bundle(args, **config_edits) -> Path of a busybox bundle."""

    counter = iter(range(1000))

    def factory(*args: str, tty: bool = False, edit: Any = None) -> Path:
        path = tmp_path / f"bundle{next(counter)}"
        make_bundle(path, list(args) or None, tty=tty, cgroups_path=cgroup_path)
        if edit is not None:
            config_path = path / "config.json"
            config = json.loads(config_path.read_text())
            edit(config)
            config_path.write_text(json.dumps(config))
        return path

    return factory


@pytest.fixture(autouse=True)
def _no_leaked_mounts(tmp_path: Path) -> Iterator[None]:
    yield
    leaked = host_mounts_mentioning(str(tmp_path))
    assert not leaked, f"mounts leaked into the host namespace: {leaked}"
