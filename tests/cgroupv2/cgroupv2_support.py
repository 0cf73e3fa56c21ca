"""Helpers for the tests that need a pure cgroup v2 host (imported by the test modules here)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

V2_ROOT = Path("/sys/fs/cgroup")


def is_pure_v2() -> bool:
    return (V2_ROOT / "cgroup.controllers").exists()


#: For every test module here that starts containers on the v2 host itself.
pure_v2_only = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="starts real containers: needs root"),
    pytest.mark.skipif(not is_pure_v2(), reason="needs a pure cgroup v2 host (runs in hack/vm)"),
]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll until `predicate()` holds (the guest is emulated: be patient, but not forever)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)
