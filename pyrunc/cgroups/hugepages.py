"""The huge page sizes this host has, named as the hugetlb cgroup files name them ("2MB", "1GB")."""

from __future__ import annotations

import os

from pyrunc.spec.resources import Resources

_SYSFS = "/sys/kernel/mm/hugepages"


def size_name(kib: int) -> str:
    """2048 -> "2MB", 1048576 -> "1GB", 64 -> "64KB" (the kernel's hugetlb.<size>.* naming)."""
    for unit, factor in (("GB", 1 << 20), ("MB", 1 << 10)):
        if kib % factor == 0:
            return f"{kib // factor}{unit}"
    return f"{kib}KB"


def host_page_sizes(sysfs: str = _SYSFS) -> list[str]:
    """From the hugepages-<N>kB directories of /sys/kernel/mm/hugepages; [] without huge pages."""
    try:
        names = os.listdir(sysfs)
    except FileNotFoundError:
        return []
    sizes = []
    for name in names:
        if name.startswith("hugepages-") and name.endswith("kB") and name[10:-2].isdigit():
            sizes.append((int(name[10:-2]), size_name(int(name[10:-2]))))
    return [name for _, name in sorted(sizes)]


def check_page_sizes(resources: Resources, pointer: str = "/linux/resources",
                     sysfs: str = _SYSFS) -> str | None:
    """A `pointer: message` line for the first page size the host does not have, else None."""
    sizes = host_page_sizes(sysfs)
    for i, limit in enumerate(resources.hugepage_limits):
        if limit.page_size not in sizes:
            have = ", ".join(sizes) if sizes else "none"
            return (f"{pointer}/hugepageLimits/{i}/pageSize: huge page size {limit.page_size} "
                    f"is not supported by this host (it has: {have})")
    return None
