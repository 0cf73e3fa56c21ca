"""A typed view of `linux.resources` (cgroup limits), validated once at the edge.

The cgroup drivers receive these objects instead of the raw JSON, so a limit is either modelled
(and applied) or refused; nothing is silently dropped.
"""

from __future__ import annotations

from typing import NamedTuple


class DeviceRule(NamedTuple):
    """One `linux.resources.devices[]` entry: allow or deny access to a class of devices.

    `type` is "a" (all), "c" or "b"; `major`/`minor` of -1 mean "any" (the config's absent field,
    runc's wildcard); `access` is a subset of "rwm".
    """

    allow: bool
    type: str = "a"
    major: int = -1
    minor: int = -1
    access: str = "rwm"
