"""v2 hugetlb controller: hugetlb.<size>.max and hugetlb.<size>.rsvd.max."""

from __future__ import annotations

from pyrunc.cgroups.v1 import hugetlb as v1
from pyrunc.spec.resources import Resources


def wanted(r: Resources) -> str | None:
    return f"hugetlb.{r.hugepage_limits[0].page_size}.max" if r.hugepage_limits else None


def apply(directory: str, r: Resources) -> None:
    v1.apply(directory, r, suffix=".max")
