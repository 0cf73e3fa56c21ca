"""v2 cpu controller: cpu.idle, cpu.weight (from the v1 shares, runc's curve), cpu.max
("quota period", "max period"), cpu.max.burst."""

from __future__ import annotations

import errno

from pyrunc.cgroups.convert import cpu_max, shares_to_weight
from pyrunc.cgroups.fs import set_value
from pyrunc.spec.resources import Resources

P = "/linux/resources/cpu"


def wanted(r: Resources) -> str | None:
    c = r.cpu
    if c is None:
        return None
    if c.idle is not None:
        return "cpu.idle"
    if c.shares:
        return "cpu.weight"
    if c.quota or c.period:
        return "cpu.max"
    return "cpu.max.burst" if c.burst is not None else None


def apply(directory: str, r: Resources) -> None:
    c = r.cpu
    if c is None:
        return
    if c.realtime_runtime or c.realtime_period:
        from pyrunc import log

        log.warning(f"{P}/realtimeRuntime, {P}/realtimePeriod: not applied: cgroup v2 has no "
                    "realtime budget files (runc ignores them there too)")
    if c.idle is not None:
        set_value(directory, "cpu.idle", str(c.idle), f"{P}/idle")
    if c.shares:
        set_value(directory, "cpu.weight", str(shares_to_weight(c.shares)), f"{P}/shares")
    burst_later = False
    if c.burst is not None:
        try:
            set_value(directory, "cpu.max.burst", str(c.burst), f"{P}/burst")
        except OSError as exc:
            # A burst above the current quota is refused until the new quota is in.
            if exc.errno != errno.EINVAL or not c.quota:
                raise
            burst_later = True
    if c.quota or c.period:
        set_value(directory, "cpu.max", cpu_max(c.quota, c.period), f"{P}/quota")
        if burst_later:
            set_value(directory, "cpu.max.burst", str(c.burst), f"{P}/burst")
