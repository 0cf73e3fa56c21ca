"""v1 hugetlb controller: hugetlb.<size>.limit_in_bytes, and the reservation limit
hugetlb.<size>.rsvd.limit_in_bytes (Linux 5.7+) set to the same value, as runc sets it."""

from __future__ import annotations

import errno

from pyrunc.cgroups.fs import set_value
from pyrunc.spec.resources import Resources


def wanted(r: Resources) -> str | None:
    if not r.hugepage_limits:
        return None
    return f"hugetlb.{r.hugepage_limits[0].page_size}.limit_in_bytes"


def apply(directory: str, r: Resources, suffix: str = ".limit_in_bytes") -> None:
    """Shared with the v2 driver, whose files end in `.max` instead."""
    rsvd = True
    for i, h in enumerate(r.hugepage_limits):
        pointer = f"/linux/resources/hugepageLimits/{i}/limit"
        prefix = f"hugetlb.{h.page_size}"
        set_value(directory, prefix + suffix, str(h.limit), pointer)
        if not rsvd:
            continue
        try:
            set_value(directory, f"{prefix}.rsvd{suffix}", str(h.limit), pointer)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            rsvd = False   # a kernel without reservation accounting: the plain limit is enough
