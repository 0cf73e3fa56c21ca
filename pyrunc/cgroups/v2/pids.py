"""v2 pids controller: pids.max, with the same values as on v1."""

from __future__ import annotations

from pyrunc.cgroups.v1.pids import apply, wanted

__all__ = ["apply", "wanted"]
