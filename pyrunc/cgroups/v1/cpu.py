"""v1 cpu controller: CFS shares, period/quota/burst, SCHED_IDLE, and the realtime budget.

The kernel checks period, quota and burst against each other, so a value it refuses (EINVAL) may
become valid once the next one is written: as runc does, such a write is retried after the quota.
"""

from __future__ import annotations

import errno

from pyrunc.cgroups.fs import read, set_value
from pyrunc.spec.resources import Resources

P = "/linux/resources/cpu"


def wanted(r: Resources) -> str | None:
    c = r.cpu
    if c is None:
        return None
    for name, value in (("cpu.shares", c.shares), ("cpu.cfs_period_us", c.period),
                        ("cpu.cfs_quota_us", c.quota), ("cpu.rt_period_us", c.realtime_period),
                        ("cpu.rt_runtime_us", c.realtime_runtime)):
        if value:
            return name
    if c.burst is not None:
        return "cpu.cfs_burst_us"
    return "cpu.idle" if c.idle is not None else None


def apply(directory: str, r: Resources) -> None:
    c = r.cpu
    if c is None:
        return
    if c.shares:
        set_value(directory, "cpu.shares", str(c.shares), f"{P}/shares")
        actual = int(read(directory, "cpu.shares"))   # the kernel clamps out-of-range shares
        if actual != c.shares:
            from pyrunc.cgroups import CgroupError

            bound = "maximum" if c.shares > actual else "minimum"
            raise CgroupError(f"set {P}/shares: {c.shares} is out of range: the {bound} "
                              f"allowed cpu.shares is {actual}")
    period = _try(directory, "cpu.cfs_period_us", c.period or None, f"{P}/period", bool(c.quota))
    burst = _try(directory, "cpu.cfs_burst_us", c.burst, f"{P}/burst", bool(c.quota),
                 missing_ok=True)
    if c.quota:
        set_value(directory, "cpu.cfs_quota_us", str(c.quota), f"{P}/quota")
        if period is not None:
            set_value(directory, "cpu.cfs_period_us", str(period), f"{P}/period")
        if burst is not None:
            set_value(directory, "cpu.cfs_burst_us", str(burst), f"{P}/burst")
    if c.idle is not None:
        set_value(directory, "cpu.idle", str(c.idle), f"{P}/idle")
    rt_period = _try(directory, "cpu.rt_period_us", c.realtime_period or None,
                     f"{P}/realtimePeriod", bool(c.realtime_runtime))
    if c.realtime_runtime:
        set_value(directory, "cpu.rt_runtime_us", str(c.realtime_runtime), f"{P}/realtimeRuntime")
        if rt_period is not None:
            set_value(directory, "cpu.rt_period_us", str(rt_period), f"{P}/realtimePeriod")


def _try(directory: str, name: str, value: int | None, pointer: str, retry_later: bool,
         *, missing_ok: bool = False) -> int | None:
    """Write `value`; returns it when the write must be repeated after its partner's (EINVAL
    while `retry_later`), None when done. A missing burst file (kernel < 5.14) is skipped, as
    runc skips it."""
    if value is None:
        return None
    try:
        set_value(directory, name, str(value), pointer)
    except OSError as exc:
        if missing_ok and exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.EINVAL and retry_later:
            return value
        raise
    return None
