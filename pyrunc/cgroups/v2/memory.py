"""v2 memory controller: memory.max, memory.swap.max (swap alone: the spec's memory+swap minus the
limit, runc's conversion), memory.low from the reservation, and runc's checkBeforeUpdate."""

from __future__ import annotations

import errno

from pyrunc.cgroups.convert import swap_to_v2, v2_number
from pyrunc.cgroups.fs import read, set_value
from pyrunc.spec.resources import Resources

P = "/linux/resources/memory"


def wanted(r: Resources) -> str | None:
    m = r.memory
    if m is None or not (m.limit or m.swap or m.reservation):
        return None
    return "memory.max" if m.limit else "memory.swap.max" if m.swap else "memory.low"


def apply(directory: str, r: Resources) -> None:
    m = r.memory
    if m is None or not (m.limit or m.swap or m.reservation):
        return
    limit, swap = m.limit or 0, m.swap or 0
    if m.check_before_update:
        _check_usage(directory, limit, swap)
    converted = swap_to_v2(swap, limit)
    value = v2_number(converted)
    if value == "" and swap > 0:
        value = "0"       # memory+swap == memory: no swap at all
    if value:
        try:
            set_value(directory, "memory.swap.max", value, f"{P}/swap")
        except OSError as exc:
            # A kernel without swap accounting has no memory.swap.max: "no limit" and "no
            # swap" are then what the container gets anyway (runc tolerates exactly these).
            if exc.errno != errno.ENOENT or value not in ("max", "0"):
                raise
    if limit:
        set_value(directory, "memory.max", v2_number(limit), f"{P}/limit")
    if m.reservation:
        set_value(directory, "memory.low", v2_number(m.reservation), f"{P}/reservation")


def _check_usage(directory: str, limit: int, swap: int) -> None:
    """checkBeforeUpdate: refuse a limit at or below what the cgroup already uses."""
    if limit <= 0 and swap <= 0:
        return
    try:
        usage = int(read(directory, "memory.current"))
    except (OSError, ValueError):
        return
    from pyrunc.cgroups import CgroupError

    if swap > 0 and swap <= usage:
        raise CgroupError(f"set {P}/swap: memory+swap limit {swap} <= usage {usage} "
                          "(checkBeforeUpdate)")
    if limit > 0 and limit <= usage:
        raise CgroupError(f"set {P}/limit: memory limit {limit} <= usage {usage} "
                          "(checkBeforeUpdate)")
