"""The runtimes under test: where each binary is, how it is called, what it has created.

On a hybrid cgroup host (v1 controllers plus a v2 mount at /sys/fs/cgroup/unified) crun
refuses to start, so each crun command runs inside ``unshare -m`` with the v2 mount hidden.
That wrapper costs a fork and two execs; :func:`wrapper_argv` lets the benchmark time it
alone, and latency figures for crun have its median subtracted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from make_bundle import find_pyrunc

UNIFIED = Path("/sys/fs/cgroup/unified")
KNOWN = ("pyrunc", "runc", "crun")


def is_hybrid() -> bool:
    """True when cgroup v2 is mounted beside v1 controllers (crun refuses that layout)."""
    return os.path.ismount(UNIFIED)


def wrapper_argv(inner: list[str]) -> list[str]:
    """``inner`` run in a private mount namespace without the cgroup v2 mount."""
    script = f'umount {UNIFIED} && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *inner]


@dataclass
class Runtime:
    """One runtime under test: its command, its private ``--root``, the ids it was given."""

    name: str
    command: list[str]
    root: Path
    wrapped: bool = False
    created: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``args``, wrapped for crun on a hybrid host."""
        plain = [*self.command, "--root", str(self.root), *args]
        return wrapper_argv(plain) if self.wrapped else plain

    def remember(self, cid: str) -> str:
        """Record ``cid`` for the final cleanup (before creating it, so failures count too)."""
        with self._lock:
            self.created.add(cid)
        return cid

    def version(self) -> str:
        """First line of ``<runtime> --version`` (for the report's machine section)."""
        try:
            out = subprocess.run(
                [*self.command, "--version"],
                check=False,
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        first = out.splitlines()[0].strip() if out.strip() else "unknown"
        # pyrunc answers in runc's format ("runc version X"): name the runtime, keep the number.
        return f"{self.name} {first.split(' version ', 1)[1]}" if " version " in first else first


def locate(name: str) -> list[str] | None:
    """The command for runtime ``name`` (pyrunc: the one beside this Python), or None."""
    if name == "pyrunc":
        return find_pyrunc()
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    return [path] if path else None


def find_runtimes(names: list[str], tmp: Path) -> tuple[list[Runtime], list[str]]:
    """Resolve the requested runtimes; return them and notes about any that are missing."""
    found: list[Runtime] = []
    notes: list[str] = []
    hybrid = is_hybrid()
    for name in names:
        if name not in KNOWN:
            notes.append(f"{name}: unknown runtime, skipped (known: {', '.join(KNOWN)})")
            continue
        command = locate(name)
        if command is None:
            notes.append(f"{name}: not installed, skipped")
            continue
        wrapped = name == "crun" and hybrid
        if wrapped:
            notes.append(
                "crun runs inside `unshare -m` without the cgroup v2 mount (hybrid host); "
                "its latencies have that wrapper's median subtracted"
            )
        found.append(Runtime(name, command, tmp / f"root-{name}", wrapped=wrapped))
    return found, notes
