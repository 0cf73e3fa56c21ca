"""hack/bench.py in its quickest mode: it runs, writes the JSON it promises, leaves nothing.

No timing is asserted: only that every figure the report needs is there and is a number.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from pyrunc_testing import REPO, needs_root

pytestmark = [needs_root, pytest.mark.integration]

needs_runc = pytest.mark.skipif(
    not (shutil.which("runc") or os.access("/usr/sbin/runc", os.X_OK)), reason="runc not installed"
)


def cgroup_dirs(prefix: str) -> list[str]:
    """Benchmark cgroup trees (``/sys/fs/cgroup/<hierarchy>/<prefix>*``) in every hierarchy."""
    base = Path("/sys/fs/cgroup")
    return [str(p) for h in base.iterdir() if h.is_dir() for p in h.glob(prefix + "*")]


@needs_runc
def test_quick_bench_writes_every_figure_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    before = set(cgroup_dirs("pyrunc-bench-"))
    temporary = set(Path(tempfile.gettempdir()).glob("pyrunc-bench-*"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "hack/bench.py"), "-n", "1", "--only", "run,state",
         "--runtimes", "pyrunc,runc", "--json", str(out), "--markdown"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert set(data) >= {"machine", "config", "metrics", "notes", "leaks"}
    assert data["leaks"] == []
    assert set(data["machine"]) >= {"date", "cpus", "kernel", "python", "versions", "load_before"}
    for key in ("run", "state"):
        metric = data["metrics"][key]
        assert metric["unit"] == "s"
        for runtime in ("pyrunc", "runc"):
            figures = metric["runtimes"][runtime]
            assert figures["n"] == 1 and figures["failures"] == 0, figures
            assert isinstance(figures["median"], float) and figures["median"] > 0
        ratio = metric["ratios"]["pyrunc/runc"]
        assert isinstance(ratio, float) and ratio > 0
    # The Markdown block the README carries, with one row per measure.
    assert "| measure | pyrunc | runc | pyrunc/runc |" in proc.stdout
    assert "| run /bin/true |" in proc.stdout
    # Nothing of the run is left: no cgroup tree of its own, no temporary directory.
    assert set(cgroup_dirs("pyrunc-bench-")) == before
    assert set(Path(tempfile.gettempdir()).glob("pyrunc-bench-*")) <= temporary
