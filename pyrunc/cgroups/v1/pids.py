"""v1 pids controller: pids.max, as runc writes it (see convert.pids_max)."""

from __future__ import annotations

from pyrunc.cgroups.convert import pids_max
from pyrunc.cgroups.fs import set_value
from pyrunc.spec.resources import Resources


def wanted(r: Resources) -> str | None:
    return "pids.max" if r.pids is not None and r.pids.limit is not None else None


def apply(directory: str, r: Resources) -> None:
    if r.pids is not None and r.pids.limit is not None:
        set_value(directory, "pids.max", pids_max(r.pids.limit), "/linux/resources/pids/limit")
