"""Run Debian's runc beside pyrunc: a private --root and cgroupsPath, always deleted.

Imported by the test modules that compare the two runtimes (the `runc` fixture with it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrunc_testing import reap_children

needs_runc = pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")


class Runc:
    """Debian's runc with a private --root; output goes to files (a created init holds it)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, *args: str, check: bool = True, timeout: float = 60,
                 **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(["runc", "--root", str(self.root), *args], stdout=out,
                                  stderr=err, timeout=timeout, **kwargs)
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(proc.args, proc.returncode, out.read(),
                                                 err.read())
        if check and result.returncode != 0:
            raise AssertionError(f"runc {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result


@pytest.fixture
def runc(tmp_path: Path, cgroup_path: str) -> Iterator[Runc]:
    rc = Runc(tmp_path / "runc-state")
    yield rc
    if rc.root.exists():
        for entry in rc.root.iterdir():
            rc("delete", "--force", entry.name, check=False)
    reap_children()
    shutil.rmtree(rc.root, ignore_errors=True)
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        leftover = Path("/sys/fs/cgroup", hierarchy, runc_cgroup(cgroup_path).lstrip("/"))
        if leftover.is_dir():
            leftover.rmdir()


def runc_cgroup(cgroup_path: str) -> str:
    return cgroup_path + "-runc"


def for_runc(bundle_dir: Path, cgroup_path: str) -> Path:
    """The same bundle, with a cgroupsPath of runc's own (both may exist at once)."""
    config_path = bundle_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["linux"]["cgroupsPath"] = runc_cgroup(cgroup_path)
    config_path.write_text(json.dumps(config))
    return bundle_dir


def both(runtime, runc, bundle, cgroup_path, *args: str, edit=None):  # type: ignore[no-untyped-def]
    """(pyrunc's bundle, runc's bundle): two copies of one config."""
    return bundle(*args, edit=edit), for_runc(bundle(*args, edit=edit), cgroup_path)
