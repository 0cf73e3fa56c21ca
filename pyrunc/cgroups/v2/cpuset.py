"""v2 cpuset controller: cpuset.cpus and cpuset.mems."""

from __future__ import annotations

from pyrunc.cgroups.v1.cpuset import apply, wanted

__all__ = ["apply", "wanted"]
