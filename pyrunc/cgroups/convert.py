"""The value formulas both cgroup drivers need, the same as runc's so that users see the same files.

The runtime-spec describes limits in cgroup v1 terms (shares, memory+swap, blkio weights); cgroup v2
files take other units, so these conversions decide what a v2 host's files hold.
"""

from __future__ import annotations

import math

from pyrunc.spec.resources import Rdma, ThrottleDevice

#: cpu.max's period when the config gives a quota but no period (the kernel's default CFS period).
DEFAULT_CPU_PERIOD = 100000


class ConversionError(ValueError):
    """A combination of values that has no cgroup v2 meaning; `str()` starts with its pointer."""


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144, default 1024) -> cpu.weight (1..10000, default 100); 0 stays unset.

    runc's curve: a quadratic in log2(shares) that maps 2 -> 1, 1024 -> 100 and 262144 -> 10000
    exactly, so the v1 default lands on the v2 default.
    """
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    log = math.log2(shares)
    exponent = (log * log + 125 * log) / 612.0 - 7.0 / 34.0
    return int(math.ceil(10 ** exponent))


def swap_to_v2(swap: int, limit: int, pointer: str = "/linux/resources/memory/swap") -> int:
    """Memory+swap (the spec's `swap`) -> memory.swap.max (swap alone), as runc converts it.

    0 means "leave unset", -1 "max". An unlimited memory with swap unset means both unlimited.
    """
    if limit == -1 and swap == 0:
        return -1
    if swap in (-1, 0) or limit == -1:
        return swap
    if limit == 0:
        raise ConversionError(f"{pointer}: cannot set a swap limit without a memory limit")
    if limit < 0:
        raise ConversionError(f"{pointer}: invalid memory limit {limit}")
    if swap < limit:
        raise ConversionError(f"{pointer}: memory+swap limit {swap} must be >= memory limit "
                              f"{limit}")
    return swap - limit


def blkio_weight_to_io(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), linearly; 0 stays unset."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def v2_number(value: int) -> str:
    """A v2 limit: -1 -> "max", 0 -> "" (not set), else the number."""
    return {0: "", -1: "max"}.get(value, str(value))


def pids_max(limit: int) -> str:
    """pids.max as runc writes it: >0 as is, 0 -> "1" (a 0 limit would be meaningless), <0 "max"."""
    if limit > 0:
        return str(limit)
    return "1" if limit == 0 else "max"


def cpu_max(quota: int | None, period: int | None) -> str:
    """cpu.max: "<quota> <period>"; quota "max" when unlimited (<= 0), period 100ms by default."""
    text = str(quota) if quota is not None and quota > 0 else "max"
    return f"{text} {period or DEFAULT_CPU_PERIOD}"


def throttle_line(device: ThrottleDevice, key: str | None = None) -> str:
    """v1 "MAJ:MIN rate"; with `key` the v2 io.max form "MAJ:MIN rbps=rate"."""
    if key is None:
        return f"{device.major}:{device.minor} {device.rate}"
    return f"{device.major}:{device.minor} {key}={device.rate}"


def rdma_line(device: str, limits: Rdma) -> str:
    """rdma.max: "mlx5_1 hca_handle=N hca_object=M" with only the limits given."""
    line = device
    if limits.hca_handles is not None:
        line += f" hca_handle={limits.hca_handles}"
    if limits.hca_objects is not None:
        line += f" hca_object={limits.hca_objects}"
    return line
