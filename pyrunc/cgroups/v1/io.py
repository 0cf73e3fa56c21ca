"""v1 blkio controller: proportional weights (CFQ's blkio.weight, or BFQ's blkio.bfq.weight where
CFQ is gone) and per-device throttling."""

from __future__ import annotations

from pyrunc.cgroups.convert import throttle_line
from pyrunc.cgroups.fs import exists, set_value
from pyrunc.spec.resources import Resources

P = "/linux/resources/blockIO"

#: (config field, v1 file) for the four throttle lists.
THROTTLES = (("throttle_read_bps_device", "throttleReadBpsDevice",
              "blkio.throttle.read_bps_device"),
             ("throttle_write_bps_device", "throttleWriteBpsDevice",
              "blkio.throttle.write_bps_device"),
             ("throttle_read_iops_device", "throttleReadIOPSDevice",
              "blkio.throttle.read_iops_device"),
             ("throttle_write_iops_device", "throttleWriteIOPSDevice",
              "blkio.throttle.write_iops_device"))


def weight_files(directory: str) -> tuple[str, str]:
    """(weight file, per-device weight file): CFQ's names if the kernel has them, else BFQ's."""
    if exists(directory, "blkio.weight"):
        return "blkio.weight", "blkio.weight_device"
    return "blkio.bfq.weight", "blkio.bfq.weight_device"


def wanted(r: Resources) -> str | None:
    b = r.block_io
    if b is None or b.is_empty():
        return None
    if b.weight or any(d.weight for d in b.weight_device):
        return "blkio.weight"
    if b.leaf_weight or any(d.leaf_weight for d in b.weight_device):
        return "blkio.leaf_weight"
    for field, _, name in THROTTLES:
        if getattr(b, field):
            return name
    return None


def apply(directory: str, r: Resources) -> None:
    b = r.block_io
    if b is None:
        return
    weight, weight_device = weight_files(directory)
    if b.weight:
        set_value(directory, weight, str(b.weight), f"{P}/weight")
    if b.leaf_weight:
        set_value(directory, "blkio.leaf_weight", str(b.leaf_weight), f"{P}/leafWeight")
    for i, d in enumerate(b.weight_device):
        if d.weight:
            set_value(directory, weight_device, f"{d.major}:{d.minor} {d.weight}",
                      f"{P}/weightDevice/{i}/weight")
        if d.leaf_weight:
            set_value(directory, "blkio.leaf_weight_device", f"{d.major}:{d.minor} "
                      f"{d.leaf_weight}", f"{P}/weightDevice/{i}/leafWeight")
    for field, key, name in THROTTLES:
        for i, device in enumerate(getattr(b, field)):
            set_value(directory, name, throttle_line(device), f"{P}/{key}/{i}")
