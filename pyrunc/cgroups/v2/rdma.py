"""v2 rdma controller: rdma.max, the same file and lines as on v1."""

from __future__ import annotations

from pyrunc.cgroups.v1.rdma import apply, wanted

__all__ = ["apply", "wanted"]
