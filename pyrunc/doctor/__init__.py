"""`pyrunc doctor`: what this host offers a container runtime, found by trying each thing.

Every finding says *works* or *does not*, and why, in the words of the concept it maps to
(namespaces, cgroups, union filesystems, ...). Probes really do the thing — unshare in a
throw-away child, mount an overlay in a private mount namespace, load a seccomp filter — and
never guess from a kernel version. Anything a probe creates lives in a forked child that is
reaped before the report is printed, so nothing is left mounted or running.

Modules: `child` (run a probe in a forked child), `probes` (kernel features), `cgroups` (layout
and controllers), `limits` (capability bounding set, rlimits), `engines` (containerd, podman,
the state root) and `report` (gathers and prints the findings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKS = "works"
DOES_NOT = "does-not"

#: The areas, in the order the report lists them.
AREAS = ("namespaces", "cgroups", "filesystems", "syscalls", "security", "limits", "engines",
         "state")


@dataclass
class Finding:
    """One line of the report: `check` (a dotted id), its status, and why."""

    check: str
    area: str
    status: str
    why: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def works(self) -> bool:
        return self.status == WORKS

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "area": self.area, "status": self.status,
                               "why": self.why}
        if self.data:
            out["data"] = self.data
        return out


def finding(check: str, area: str, ok: bool, why: str, **data: Any) -> Finding:
    """A Finding with status WORKS when `ok`, else DOES_NOT."""
    return Finding(check, area, WORKS if ok else DOES_NOT, why, data)
