"""`linux.memoryPolicy` (runtime-spec 1.3.0): the NUMA policy for set_mempolicy(2), checked as runc
checks it (mode known, flags known, node count that the mode allows)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from pyrunc.records import NamedTuple


#: Mode names -> the kernel's MPOL_* values (include/uapi/linux/mempolicy.h).
MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
         "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
#: Mode flag names -> the bits OR-ed into the mode argument.
FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
         "MPOL_F_STATIC_NODES": 1 << 15}

_NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
_NEEDS_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE")


class MemoryPolicyError(ValueError):
    """`str()` is one line starting with the JSON pointer of the bad field."""


class MemoryPolicy(NamedTuple):
    mode: int
    nodes: tuple[int, ...] = ()
    flags: int = 0


def parse_memory_policy(d: Any, pointer: str = "/linux/memoryPolicy") -> MemoryPolicy:
    from pyrunc.spec.resources import parse_cpu_list

    if not isinstance(d, dict):
        raise MemoryPolicyError(f"{pointer}: is not an object")
    mode = d.get("mode")
    if mode not in MODES:
        raise MemoryPolicyError(f"{pointer}/mode: {mode!r} is not a memory policy mode "
                                f"({', '.join(sorted(MODES))})")
    text = d.get("nodes") or ""
    if not isinstance(text, str):
        raise MemoryPolicyError(f"{pointer}/nodes: is not a string")
    try:
        nodes = tuple(sorted(set(parse_cpu_list(text)))) if text else ()
    except ValueError:
        raise MemoryPolicyError(f"{pointer}/nodes: {text!r} is not a node list") from None
    if mode in _NO_NODES and nodes:
        raise MemoryPolicyError(f"{pointer}/nodes: {mode} takes no nodes, got {len(nodes)}")
    if mode in _NEEDS_NODES and not nodes:
        raise MemoryPolicyError(f"{pointer}/nodes: {mode} needs at least one node")
    flags = 0
    for i, name in enumerate(d.get("flags") or ()):
        if name not in FLAGS:
            raise MemoryPolicyError(f"{pointer}/flags/{i}: {name!r} is not a memory policy flag "
                                    f"({', '.join(sorted(FLAGS))})")
        flags |= FLAGS[name]
    return MemoryPolicy(MODES[mode], nodes, flags)
