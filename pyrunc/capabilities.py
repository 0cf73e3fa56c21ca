"""Linux capabilities: the names the runtime-spec uses, and setting the five sets of the init.

The order the container init follows (each step needs the privileges the previous ones left):

    apply_bounding(caps)          drop from the bounding set (needs CAP_SETPCAP, so: first)
    prctl(PR_SET_KEEPCAPS, 1)     keep the permitted set across the uid change
    setgroups / setresgid / setresuid
    prctl(PR_SET_KEEPCAPS, 0)
    apply_capabilities(caps)      capset(effective, permitted, inheritable), then the ambient set
    prctl(PR_SET_NO_NEW_PRIVS, 1) when asked
    execve

Capabilities that cannot be granted — a name this table does not know, one the running kernel does
not have (above /proc/sys/kernel/cap_last_cap), or one this process no longer holds (e.g. the host's
bounding set lacks it) — are logged as a warning and left out, as the runtime-spec asks and runc
does since 1.0; they never make the container fail.
"""

from __future__ import annotations

import errno

from pyrunc.linux import syscalls
from pyrunc.linux.consts import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_CAPBSET_READ,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from pyrunc.spec.model import Capabilities

#: Capability bit -> name, as in <linux/capability.h> (Linux 5.9 added the last one, bit 40).
CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN",               # 0
    "CAP_DAC_OVERRIDE",        # 1
    "CAP_DAC_READ_SEARCH",     # 2
    "CAP_FOWNER",              # 3
    "CAP_FSETID",              # 4
    "CAP_KILL",                # 5
    "CAP_SETGID",              # 6
    "CAP_SETUID",              # 7
    "CAP_SETPCAP",             # 8
    "CAP_LINUX_IMMUTABLE",     # 9
    "CAP_NET_BIND_SERVICE",    # 10
    "CAP_NET_BROADCAST",       # 11
    "CAP_NET_ADMIN",           # 12
    "CAP_NET_RAW",             # 13
    "CAP_IPC_LOCK",            # 14
    "CAP_IPC_OWNER",           # 15
    "CAP_SYS_MODULE",          # 16
    "CAP_SYS_RAWIO",           # 17
    "CAP_SYS_CHROOT",          # 18
    "CAP_SYS_PTRACE",          # 19
    "CAP_SYS_PACCT",           # 20
    "CAP_SYS_ADMIN",           # 21
    "CAP_SYS_BOOT",            # 22
    "CAP_SYS_NICE",            # 23
    "CAP_SYS_RESOURCE",        # 24
    "CAP_SYS_TIME",            # 25
    "CAP_SYS_TTY_CONFIG",      # 26
    "CAP_MKNOD",               # 27
    "CAP_LEASE",               # 28
    "CAP_AUDIT_WRITE",         # 29
    "CAP_AUDIT_CONTROL",       # 30
    "CAP_SETFCAP",             # 31
    "CAP_MAC_OVERRIDE",        # 32
    "CAP_MAC_ADMIN",           # 33
    "CAP_SYSLOG",              # 34
    "CAP_WAKE_ALARM",          # 35
    "CAP_BLOCK_SUSPEND",       # 36
    "CAP_AUDIT_READ",          # 37
    "CAP_PERFMON",             # 38
    "CAP_BPF",                 # 39
    "CAP_CHECKPOINT_RESTORE",  # 40
)

#: Name -> bit.
CAPABILITY_BITS: dict[str, int] = {name: bit for bit, name in enumerate(CAPABILITY_NAMES)}


def known_names() -> list[str]:
    """Every capability name pyrunc knows, in bit order (for `features`)."""
    return list(CAPABILITY_NAMES)


def bit(name: str) -> int | None:
    """The bit of capability `name` (e.g. "CAP_KILL" -> 5), or None when unknown."""
    return CAPABILITY_BITS.get(name)


def name_of(cap: int) -> str:
    """The name of capability bit `cap` ("CAP_<n>" for bits newer than this table)."""
    return CAPABILITY_NAMES[cap] if 0 <= cap < len(CAPABILITY_NAMES) else f"CAP_{cap}"


def mask(names: Iterable[str]) -> int:
    """The bit mask of the known capabilities in `names`; unknown names add nothing."""
    result = 0
    for name in names:
        cap = CAPABILITY_BITS.get(name)
        if cap is not None:
            result |= 1 << cap
    return result


def names(cap_mask: int) -> list[str]:
    """The capability names whose bits are set in `cap_mask`, in bit order."""
    return [name_of(cap) for cap in range(cap_mask.bit_length()) if cap_mask >> cap & 1]


_last_cap: int | None = None


def last_cap() -> int:
    """The highest capability bit the running kernel knows.

    Read from /proc/sys/kernel/cap_last_cap; where /proc is not there (e.g. inside a rootfs before
    proc is mounted) probe the bounding set, which answers EINVAL past the last capability.
    Call it once early: the answer is cached (in a global: `functools.lru_cache` would bring
    functools and `collections` onto create's path).
    """
    global _last_cap
    if _last_cap is None:
        _last_cap = _read_last_cap()
    return _last_cap


def _read_last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        pass
    cap = 0
    while cap < 63:
        try:
            syscalls.prctl(PR_CAPBSET_READ, cap + 1)
        except OSError:
            break
        cap += 1
    return cap


def _supported(names_: Iterable[str], dropped: set[str]) -> int:
    """Mask of the names this table and the kernel both know; the others go into `dropped`."""
    result = 0
    top = last_cap()
    for name in names_:
        cap = CAPABILITY_BITS.get(name)
        if cap is None or cap > top:
            dropped.add(name)
        else:
            result |= 1 << cap
    return result


def _warn_dropped(dropped: Iterable[str], why: str) -> None:
    if dropped:
        from pyrunc import log

        log.warning(f"ignoring {why} capabilities: {', '.join(sorted(dropped))}")


def bounding_set() -> int:
    """This thread's bounding set, as a mask (PR_CAPBSET_READ for each capability)."""
    result = 0
    for cap in range(last_cap() + 1):
        if syscalls.prctl(PR_CAPBSET_READ, cap, step=f"read {name_of(cap)} in the bounding set"):
            result |= 1 << cap
    return result


def apply_bounding(caps: Capabilities | None) -> None:
    """Drop from the bounding set every capability not in `caps.bounding`.

    The bounding set caps what any later execve can gain, so it is narrowed first, while the
    process still has CAP_SETPCAP. `None` (no `process.capabilities` in the config) changes nothing.
    """
    if caps is None:
        return
    dropped: set[str] = set()
    keep = _supported(caps.bounding, dropped)
    _warn_dropped(dropped, "unknown or unsupported bounding")
    # A capability the host's own bounding set lacks cannot be granted to anyone here; the
    # runtime-spec asks for a warning naming it (CAP_SYS_RESOURCE on some hosts).
    _warn_dropped(names(keep & ~bounding_set()), "bounding (not in the host's bounding set)")
    for cap in range(last_cap() + 1):
        if not keep >> cap & 1:
            syscalls.prctl(PR_CAPBSET_DROP, cap, step=f"drop {name_of(cap)} from the bounding set")


def apply_capabilities(caps: Capabilities | None) -> None:
    """Set the effective, permitted and inheritable sets, then the ambient set.

    After the switch to the container's user (with PR_SET_KEEPCAPS) the permitted set is what the
    process may still grant itself; capset(2) refuses anything outside it, so such capabilities
    are warned about and left out rather than failing the whole container. The ambient set is
    cleared and each requested capability raised: only those in both the permitted and the
    inheritable set can be, and only the ambient ones survive execve for a non-root user.
    """
    if caps is None:
        return
    unknown: set[str] = set()
    effective = _supported(caps.effective, unknown)
    permitted = _supported(caps.permitted, unknown)
    inheritable = _supported(caps.inheritable, unknown)
    ambient = _supported(caps.ambient, unknown)
    _warn_dropped(unknown, "unknown or unsupported")

    _, held, held_inheritable = syscalls.capget()
    grantable = held
    grantable_inheritable = (held_inheritable | held) & (held_inheritable | bounding_set())
    lost = (permitted & ~grantable) | (effective & ~(permitted & grantable)) \
        | (inheritable & ~grantable_inheritable)
    permitted &= grantable
    effective &= permitted
    inheritable &= grantable_inheritable
    _warn_dropped(names(lost), "unavailable")

    syscalls.capset(effective, permitted, inheritable)
    _set_ambient(ambient)


def _set_ambient(ambient: int) -> None:
    """Clear the ambient set, then raise each capability of `ambient` in it.

    As runc 1.5 does, a capability the kernel will not raise (it must be both permitted and
    inheritable) is a warning, ``can't raise ambient capability CAP_X: operation not
    permitted``, not a failure; EINVAL on the clear means a kernel without ambient sets.
    """
    from pyrunc import log

    try:
        syscalls.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL,
                       step="clear the ambient capabilities")
    except syscalls.KernelError as exc:
        if exc.errno != errno.EINVAL:
            raise
    for cap in range(ambient.bit_length()):
        if ambient >> cap & 1:
            try:
                syscalls.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap,
                               step=f"raise {name_of(cap)} in the ambient set")
            except syscalls.KernelError as exc:
                reason = exc.strerror or ""
                log.warning(f"can't raise ambient capability {name_of(cap)}: "
                            f"{reason[:1].lower()}{reason[1:]}")
