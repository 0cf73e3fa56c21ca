"""Leave nothing behind: containers of every runtime, their processes, cgroups, mounts, files.

Cleanup goes from the polite to the blunt: ``delete --force`` of every id this run handed out
and every id the runtime's own ``list`` still shows; then SIGKILL to any process still in the
benchmark's cgroups; then rmdir of those cgroups, deepest first, in every hierarchy; then the
temporary directory. :func:`leaks` checks afterwards from the kernel's side.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .procs import reap_children, run_command
from .runtimes import Runtime

WORKERS = 4


def cgroup_mounts() -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 and v2)."""
    points: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] in ("cgroup", "cgroup2"):
            points.append(Path(left.split(" ")[4]))
    return points


def our_cgroups(cgroup_root: str) -> list[Path]:
    """Every directory of the benchmark's cgroup tree, deepest first, in every hierarchy."""
    found: list[Path] = []
    for mount in cgroup_mounts():
        top = mount / cgroup_root.strip("/")
        if top.is_dir():
            found.extend(p for p in top.rglob("*") if p.is_dir())
            found.append(top)
    return sorted(found, key=lambda p: -len(p.parts))


def listed_ids(runtime: Runtime) -> list[str]:
    """What ``<runtime> list -q`` shows under the benchmark's private root."""
    if not runtime.root.exists():
        return []
    outcome = run_command(runtime.argv("list", "-q"), want_stdout=True)
    return outcome.stdout.split() if outcome.ok else []


def delete_all(runtimes: list[Runtime]) -> None:
    """``delete --force`` everything each runtime was asked to create or still lists."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for runtime in runtimes:
            ids = sorted(runtime.created | set(listed_ids(runtime)))
            list(
                pool.map(lambda cid, r=runtime: run_command(r.argv("delete", "--force", cid)), ids)
            )
            runtime.created.clear()
    reap_children()


def kill_leftovers(cgroup_root: str) -> int:
    """SIGKILL every process still in the benchmark's cgroups; return how many there were."""
    pids: set[int] = set()
    for group in our_cgroups(cgroup_root):
        try:
            pids.update(int(p) for p in (group / "cgroup.procs").read_text().split())
        except OSError:
            continue
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if pids:
        time.sleep(0.2)
        reap_children()
    return len(pids)


def remove_cgroups(cgroup_root: str) -> None:
    """rmdir the benchmark's cgroup tree (a few tries: a killed process leaves it late)."""
    for _ in range(20):
        left = our_cgroups(cgroup_root)
        for group in left:
            try:
                group.rmdir()
            except OSError:
                pass
        if not our_cgroups(cgroup_root):
            return
        time.sleep(0.1)
        reap_children()


def mounts_under(path: Path) -> list[str]:
    """Mount points in this namespace at or below ``path``."""
    prefix = str(path)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4]
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def processes_mentioning(tmp: Path) -> list[int]:
    """Processes whose command line names the benchmark's directory (runtimes, shims, inits)."""
    needle = str(tmp).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if needle in cmdline.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def cleanup(runtimes: list[Runtime], cgroup_root: str, tmp: Path, keep: bool) -> list[str]:
    """Remove everything the run made; return notes about what needed force."""
    notes: list[str] = []
    delete_all(runtimes)
    killed = kill_leftovers(cgroup_root)
    if killed:
        notes.append(f"cleanup: {killed} processes were still in the benchmark's cgroups (killed)")
    remove_cgroups(cgroup_root)
    for point in sorted(mounts_under(tmp), key=len, reverse=True):
        notes.append(f"cleanup: unmounted leftover {point}")
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return notes


def leaks(runtimes: list[Runtime], cgroup_root: str, tmp: Path, keep: bool) -> list[str]:
    """What is still there after cleanup, seen from the kernel (empty when nothing leaked)."""
    found = [f"cgroup {p}" for p in our_cgroups(cgroup_root)]
    found += [f"mount {p}" for p in mounts_under(tmp)]
    if not keep and tmp.exists():
        found.append(f"directory {tmp}")
    found += [f"process {pid}" for pid in processes_mentioning(tmp)]
    for runtime in runtimes:
        if keep and runtime.root.exists():
            found += [f"{runtime.name} container {cid}" for cid in listed_ids(runtime)]
    return found
