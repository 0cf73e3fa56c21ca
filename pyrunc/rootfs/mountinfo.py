"""Reading /proc/self/mountinfo and /proc/self/cgroup, for the mounts that need to know the host's.
"""

from __future__ import annotations

from pyrunc.rootfs.resolve import _is_within

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from pyrunc.records import NamedTuple


class MountInfo(NamedTuple):
    """One line of /proc/self/mountinfo."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    optional: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]

    @property
    def is_shared(self) -> bool:
        return any(f.startswith("shared:") for f in self.optional)

    @property
    def is_unbindable(self) -> bool:
        return "unbindable" in self.optional


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo (three octal digits)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse the text of /proc/<pid>/mountinfo (see proc(5))."""
    result = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 10:
            continue
        sep = fields.index("-", 6)
        result.append(MountInfo(
            mount_id=int(fields[0]), parent_id=int(fields[1]), root=_unescape(fields[3]),
            mount_point=_unescape(fields[4]), optional=tuple(fields[6:sep]),
            fstype=fields[sep + 1], source=_unescape(fields[sep + 2]),
            super_options=tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else ()))
    return result


def read_mountinfo() -> list[MountInfo]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def _mount_containing(path: str, mounts: list[MountInfo]) -> MountInfo | None:
    """The mount that `path` lives on: the last one mounted with the longest matching mount
    point."""
    best: MountInfo | None = None
    for mi in mounts:
        if _is_within(path, mi.mount_point) and (
                best is None or len(mi.mount_point) >= len(best.mount_point)):
            best = mi
    return best


def _read_own_cgroups() -> list[tuple[str, str]]:
    """(controllers, path) for each line of /proc/self/cgroup; controllers is "" for cgroup v2."""
    result = []
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) == 3:
                result.append((parts[1], parts[2]))
    return result
