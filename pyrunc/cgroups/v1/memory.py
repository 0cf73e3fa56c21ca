"""v1 memory controller: limit and memory+swap (in an order the kernel accepts), soft limit,
OOM killer switch, swappiness. Kernel memory limits are ignored with a warning, as runc 1.2+
does (the kernel deprecated them; writing them fails on recent kernels)."""

from __future__ import annotations

import errno

from pyrunc.cgroups.fs import exists, read, set_value
from pyrunc.spec.resources import Resources

LIMIT = "memory.limit_in_bytes"
MEMSW = "memory.memsw.limit_in_bytes"
P = "/linux/resources/memory"


def wanted(r: Resources) -> str | None:
    """The first file this controller would write for `r`, or None when it has nothing to do."""
    m = r.memory
    if m is None:
        return None
    if m.limit or m.swap:
        return LIMIT if m.limit else MEMSW
    if m.reservation:
        return "memory.soft_limit_in_bytes"
    if m.disable_oom_killer:
        return "memory.oom_control"
    if m.swappiness is not None:
        return "memory.swappiness"
    return None


def warn_ignored(r: Resources) -> None:
    m = r.memory
    if m is not None and (m.kernel is not None or m.kernel_tcp is not None):
        from pyrunc import log

        log.warning(f"{P}/kernel, {P}/kernelTCP: kernel memory limits are ignored "
                    "(deprecated by the kernel; runc ignores them too)")


def apply(directory: str, r: Resources) -> None:
    m = r.memory
    if m is None:
        return
    _limit_and_swap(directory, m.limit or 0, m.swap or 0)
    if m.reservation:
        set_value(directory, "memory.soft_limit_in_bytes", str(m.reservation), f"{P}/reservation")
    if m.disable_oom_killer:
        set_value(directory, "memory.oom_control", "1", f"{P}/disableOOMKiller")
    if m.swappiness is not None:
        set_value(directory, "memory.swappiness", str(m.swappiness), f"{P}/swappiness")


def _limit_and_swap(directory: str, limit: int, swap: int) -> None:
    """The kernel keeps memsw.limit >= limit at every moment, so which file goes first depends on
    whether the memory+swap limit grows (swap first) or shrinks (memory first)."""
    if limit == -1 and swap == 0 and exists(directory, MEMSW):
        swap = -1   # "unlimited memory" also lifts a memory+swap limit left from before
    if limit and swap:
        current = int(read(directory, LIMIT))
        if swap == -1 or current < swap:
            _set_swap(directory, swap)
            _set_limit(directory, limit)
            return
    _set_limit(directory, limit)
    _set_swap(directory, swap)


def _set_limit(directory: str, limit: int) -> None:
    if not limit:
        return
    try:
        set_value(directory, LIMIT, str(limit), f"{P}/limit")
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        from pyrunc.cgroups import CgroupError

        usage = read(directory, "memory.usage_in_bytes")
        peak = read(directory, "memory.max_usage_in_bytes")
        raise CgroupError(f"set {P}/limit: cannot lower the memory limit to {limit} (current "
                          f"usage: {usage}, peak usage: {peak}): EBUSY") from None


def _set_swap(directory: str, swap: int) -> None:
    if swap:
        set_value(directory, MEMSW, str(swap), f"{P}/swap")
