"""v1 cpuset controller: the cpus and memory nodes (the parent's are inherited at creation)."""

from __future__ import annotations

from pyrunc.cgroups.fs import set_value
from pyrunc.spec.resources import Resources

P = "/linux/resources/cpu"


def wanted(r: Resources) -> str | None:
    if r.cpu is None:
        return None
    return "cpuset.cpus" if r.cpu.cpus else "cpuset.mems" if r.cpu.mems else None


def apply(directory: str, r: Resources) -> None:
    if r.cpu is None:
        return
    if r.cpu.cpus:
        set_value(directory, "cpuset.cpus", r.cpu.cpus, f"{P}/cpus")
    if r.cpu.mems:
        set_value(directory, "cpuset.mems", r.cpu.mems, f"{P}/mems")
