"""v1 net_cls and net_prio controllers: the packet class id and per-interface priorities.
(cgroup v2 has neither; there, as with runc, these settings have no file to go to.)"""

from __future__ import annotations

from pyrunc.cgroups.fs import set_value
from pyrunc.spec.resources import Resources

P = "/linux/resources/network"


def cls_wanted(r: Resources) -> str | None:
    return "net_cls.classid" if r.network is not None and r.network.class_id else None


def apply_cls(directory: str, r: Resources) -> None:
    if r.network is not None and r.network.class_id:
        set_value(directory, "net_cls.classid", str(r.network.class_id), f"{P}/classID")


def prio_wanted(r: Resources) -> str | None:
    return "net_prio.ifpriomap" if r.network is not None and r.network.priorities else None


def apply_prio(directory: str, r: Resources) -> None:
    if r.network is None:
        return
    for i, p in enumerate(r.network.priorities):
        set_value(directory, "net_prio.ifpriomap", f"{p.name} {p.priority}",
                  f"{P}/priorities/{i}")
