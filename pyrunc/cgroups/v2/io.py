"""v2 io controller: the weight (io.bfq.weight where BFQ is the scheduler, else io.weight with the
blkio->io conversion) and io.max lines "MAJ:MIN rbps=N" (one key per write, as runc writes them).
"""

from __future__ import annotations

import os

from pyrunc.cgroups.convert import blkio_weight_to_io, throttle_line
from pyrunc.cgroups.fs import fail, set_value
from pyrunc.spec.resources import Resources

P = "/linux/resources/blockIO"
#: (config field, config key, io.max key)
THROTTLES = (("throttle_read_bps_device", "throttleReadBpsDevice", "rbps"),
             ("throttle_write_bps_device", "throttleWriteBpsDevice", "wbps"),
             ("throttle_read_iops_device", "throttleReadIOPSDevice", "riops"),
             ("throttle_write_iops_device", "throttleWriteIOPSDevice", "wiops"))


def wanted(r: Resources) -> str | None:
    b = r.block_io
    if b is None:
        return None
    if b.weight or b.weight_device:
        return "io.weight"
    return "io.max" if any(getattr(b, f) for f, _, _ in THROTTLES) else None


def io_max_lines(r: Resources) -> list[tuple[str, str]]:
    """(io.max line, pointer) for every throttle entry, in the config's order."""
    b = r.block_io
    if b is None:
        return []
    return [(throttle_line(d, key), f"{P}/{name}/{i}")
            for field, name, key in THROTTLES for i, d in enumerate(getattr(b, field))]


def apply(directory: str, r: Resources) -> None:
    b = r.block_io
    if b is None:
        return
    if b.weight or b.weight_device:
        bfq = os.path.join(directory, "io.bfq.weight")
        if os.path.exists(bfq):
            _bfq_weights(directory, r)
        else:
            if b.weight:
                set_value(directory, "io.weight", str(blkio_weight_to_io(b.weight)),
                          f"{P}/weight")
            if b.weight_device:
                from pyrunc import log

                log.warning(f"{P}/weightDevice: not applied: per-device weights need the BFQ "
                            "scheduler's io.bfq.weight (runc skips them too)")
    for line, pointer in io_max_lines(r):
        set_value(directory, "io.max", line, pointer)


def _bfq_weights(directory: str, r: Resources) -> None:
    """BFQ takes the v1 weight as it is; per-device weights only where its file has the
    "default N" + per-device form (Linux 5.4+), written on one open file as runc does."""
    b = r.block_io
    assert b is not None
    path = os.path.join(directory, "io.bfq.weight")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        fail(exc, f"set {P}/weight (open {path})")
    try:
        per_device = not os.read(fd, 32).strip().isdigit()
        if b.weight:
            _write(fd, str(b.weight), f"{P}/weight", path)
        if per_device:
            for i, d in enumerate(b.weight_device):
                if d.weight:
                    _write(fd, f"{d.major}:{d.minor} {d.weight}\n",
                           f"{P}/weightDevice/{i}/weight", path)
    finally:
        os.close(fd)


def _write(fd: int, value: str, pointer: str, path: str) -> None:
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        fail(exc, f"set {pointer} ({value.strip()} > {path})")
