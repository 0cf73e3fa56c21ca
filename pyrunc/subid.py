"""Id maps an unprivileged runtime may not write itself: newuidmap/newgidmap and /etc/subuid.

The kernel lets a process without CAP_SETUID over the parent user namespace write only one
line to a child's uid_map: its own uid, size 1 (and gid_map likewise, once setgroups is
denied). Any other map (a range of ids for the container's users) goes through the setuid
helpers newuidmap and newgidmap (Debian's `uidmap` package), which allow the ranges that
/etc/subuid and /etc/subgid grant the user. As runc does, pyrunc writes the map file first and
calls the helper only when the kernel refuses (EPERM), with the helper found on the runtime's
PATH and the map as arguments: `newuidmap PID INSIDE OUTSIDE COUNT ...`.

Failures are one line that says what to fix: the helper missing, no subordinate ids for the
user, or a mapping outside the ranges the user has.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not `typing`: see pyrunc/records.py
if TYPE_CHECKING:
    from pyrunc.spec.model import IDMapping

#: map file -> (helper program, file of subordinate ranges, what the ranges hold)
TOOLS = {"uid_map": ("newuidmap", "/etc/subuid", "uids"),
         "gid_map": ("newgidmap", "/etc/subgid", "gids")}


class MappingError(OSError):
    """An id map the helper could not (or would not) write; str() is the one line to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def is_own_single_map(mappings: tuple[IDMapping, ...], own_id: int) -> bool:
    """True for the one map an unprivileged process may write itself: its own id, size 1."""
    return len(mappings) == 1 and mappings[0].host_id == own_id and mappings[0].size == 1


def subordinate_ranges(path: str, user: str, uid: int) -> list[tuple[int, int]]:
    """The (start, count) ranges /etc/subuid or /etc/subgid grants `user` (by name or uid)."""
    ranges = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[0] in (user, str(uid)) \
                        and fields[1].isdigit() and fields[2].isdigit():
                    ranges.append((int(fields[1]), int(fields[2])))
    except FileNotFoundError:
        pass
    return ranges


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def explain_refusal(map_name: str, mappings: tuple[IDMapping, ...], own_id: int,
                    subid_file: str | None = None) -> str:
    """Why the helper refused this map, in terms of /etc/subuid or /etc/subgid."""
    _, default_file, what = TOOLS[map_name]
    subid_file = subid_file or default_file
    uid = os.getuid()
    user = _user_name(uid)
    ranges = subordinate_ranges(subid_file, user, uid)
    if not ranges:
        return (f"{subid_file} has no entry for {user}: root can add one (usermod "
                f"--add-sub{what}=START-END {user})")
    for m in mappings:
        if m.size == 1 and m.host_id == own_id:
            continue
        inside = any(start <= m.host_id and m.host_id + m.size <= start + count
                     for start, count in ranges)
        if not inside:
            allowed = ", ".join(f"{start}-{start + count - 1}" for start, count in ranges)
            return (f"host {what} {m.host_id}-{m.host_id + m.size - 1} (container "
                    f"{m.container_id}) are outside {user}'s ranges in {subid_file} ({allowed})")
    return f"check {user}'s ranges in {subid_file}"


def write_with_helper(pid: int, map_name: str, mappings: tuple[IDMapping, ...],
                      own_id: int) -> None:
    """Write /proc/<pid>/<map_name> through newuidmap/newgidmap, as runc does after EPERM."""
    import shutil
    import subprocess

    tool, _, what = TOOLS[map_name]
    path = shutil.which(tool)
    if path is None:
        raise MappingError(f"write /proc/{pid}/{map_name}: EPERM: mapping {what} other than "
                           f"your own needs {tool}, which is not on PATH (install the uidmap "
                           f"package)")
    argv = [path, str(pid)]
    for m in mappings:
        argv += [str(m.container_id), str(m.host_id), str(m.size)]
    # An empty environment, as runc gives the helper: it is setuid and trusts nothing of ours.
    result = subprocess.run(argv, env={}, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        said = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise MappingError(f"{tool} {pid}: {said}: "
                           f"{explain_refusal(map_name, mappings, own_id)}")
