"""The rdma controller (same file in v1 and v2): one rdma.max line per device."""

from __future__ import annotations

from pyrunc.cgroups.convert import rdma_line
from pyrunc.cgroups.fs import set_value
from pyrunc.spec.resources import Resources


def wanted(r: Resources) -> str | None:
    return "rdma.max" if r.rdma else None


def apply(directory: str, r: Resources) -> None:
    for device, limits in r.rdma.items():
        set_value(directory, "rdma.max", rdma_line(device, limits),
                  f"/linux/resources/rdma/{device}")
