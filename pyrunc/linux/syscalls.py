"""The thin ctypes layer: every kernel call pyrunc makes that Python's `os` module lacks.

Each wrapper does one system call and, on failure, raises `KernelError` — an `OSError` that also
carries the *step* (what pyrunc was trying to do) so that a failure reads like
``mount proc on /run/x/rootfs/proc: EPERM (Operation not permitted)``.

Nothing here knows about containers; it only names the kernel's interfaces.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from pyrunc import trace
from pyrunc.linux.consts import (
    AT_RECURSIVE,
    KEYCTL_JOIN_SESSION_KEYRING,
    MOUNT_ATTR_SIZE_VER0,
)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# System call numbers that glibc 2.36 has no wrapper for, per architecture.
_SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "setns": 308, "unshare": 272,
               "keyctl": 250, "mount_setattr": 442, "pidfd_open": 434, "openat2": 437,
               "close_range": 436, "seccomp": 317, "set_mempolicy": 238},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "setns": 268, "unshare": 97,
                "keyctl": 219, "mount_setattr": 442, "pidfd_open": 434, "openat2": 437,
                "close_range": 436, "seccomp": 277, "set_mempolicy": 237},
}
_MACHINE = os.uname().machine


class _SyscallNumbers(dict):  # type: ignore[type-arg]
    """The table for this machine; an unknown architecture fails clearly at the first use."""

    def __missing__(self, name: str) -> int:
        raise KernelError(errno.ENOSYS, f"system call {name}: no number known for {_MACHINE}")


_NR = _SyscallNumbers(_SYSCALL_NUMBERS.get(_MACHINE, {}))


class KernelError(OSError):
    """A failed system call, with the step that made it.

    `str()` gives one line: ``<step>: <ERRNO NAME> (<strerror>)``.
    """

    def __init__(self, err: int, step: str, path: str | None = None, hint: str = "") -> None:
        super().__init__(err, os.strerror(err), path)
        self.step = step
        self.hint = hint  # what to change, when the errno alone does not say it

    def __str__(self) -> str:
        name = errno.errorcode.get(self.errno or 0, f"errno {self.errno}")
        text = f"{self.step}: {name} ({self.strerror})"
        return f"{text}: {self.hint}" if self.hint else text


def describe_oserror(exc: OSError, step: str) -> KernelError:
    """Turn any OSError (from `os.*`) into a KernelError naming `step`."""
    if isinstance(exc, KernelError):
        return exc
    return KernelError(exc.errno or errno.EIO, step, exc.filename)


def _check(result: int, step: str, path: str | None = None) -> int:
    if result < 0:
        raise KernelError(ctypes.get_errno(), step, path)
    return result


def _b(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else os.fsencode(value)


# --- mounts -------------------------------------------------------------------------------------

def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None, *, step: str | None = None) -> None:
    """mount(2). `step` overrides the default description used in errors."""
    with trace.span("mount", source=source, target=target, fstype=fstype,
                    flags=trace.mount_flag_names(flags) if trace.on else None, data=data):
        res = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
        _check(res, step or f"mount {source or fstype or ''} on {target}", target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    with trace.span("umount", target=target, flags=flags):
        _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"unmount {target}", target)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make `new_root` the root of this mount namespace."""
    with trace.span("pivot_root", new_root=new_root, put_old=put_old):
        res = _libc.syscall(_NR["pivot_root"], _b(new_root), _b(put_old))
        _check(res, f"pivot_root into {new_root}", new_root)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(path: str, attr_set: int, attr_clr: int = 0, *, recursive: bool = True) -> None:
    """mount_setattr(2) (Linux 5.12): change flags of a whole mount tree at once (e.g. `rro`)."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    with trace.span("mount_setattr", target=path, attr_set=attr_set, attr_clr=attr_clr,
                    recursive=recursive):
        res = _libc.syscall(_NR["mount_setattr"], ctypes.c_int(-100), _b(path),
                            ctypes.c_uint(flags), ctypes.byref(attr),
                            ctypes.c_size_t(MOUNT_ATTR_SIZE_VER0))
        _check(res, f"set mount attributes of {path}", path)


# --- namespaces ---------------------------------------------------------------------------------

def unshare(flags: int, *, step: str = "unshare namespaces") -> None:
    """unshare(2)."""
    with trace.span("unshare", flags=trace.clone_flag_names(flags) if trace.on else None):
        _check(_libc.syscall(_NR["unshare"], ctypes.c_int(flags)), step)


def setns(fd: int, nstype: int = 0, *, step: str = "join namespace") -> None:
    """setns(2): join the namespace that `fd` refers to."""
    with trace.span("setns", flags=trace.clone_flag_names(nstype) if trace.on else None,
                    what=step):
        _check(_libc.syscall(_NR["setns"], ctypes.c_int(fd), ctypes.c_int(nstype)), step)


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), f"set hostname {name!r}")


def setdomainname(name: str) -> None:
    """setdomainname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), f"set domainname {name!r}")


# --- process attributes ---------------------------------------------------------------------------

def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0, *,
          step: str = "prctl") -> int:
    """prctl(2) with integer arguments."""
    res = _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                      ctypes.c_ulong(arg4), ctypes.c_ulong(arg5))
    return _check(res, step)


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capget() -> tuple[int, int, int]:
    """capget(2) for this thread: (effective, permitted, inheritable) as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.syscall(_NR["capget"], ctypes.byref(header), data), "read capabilities")
    eff, prm, inh = (getattr(data[0], f) | (getattr(data[1], f) << 32)
                     for f in ("effective", "permitted", "inheritable"))
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for this thread; each argument is a 64-bit capability mask."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    with trace.span("capset", effective=f"{effective:#x}", permitted=f"{permitted:#x}",
                    inheritable=f"{inheritable:#x}"):
        _check(_libc.syscall(_NR["capset"], ctypes.byref(header), data), "set capabilities")


def join_session_keyring(name: str | None = None) -> int:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): give the container a session keyring of its own."""
    res = _libc.syscall(_NR["keyctl"], ctypes.c_int(KEYCTL_JOIN_SESSION_KEYRING), _b(name))
    return _check(res, "join a new session keyring")


def pidfd_open(pid: int) -> int:
    """pidfd_open(2): a file descriptor that refers to process `pid` (pollable for its exit)."""
    return _check(_libc.syscall(_NR["pidfd_open"], ctypes.c_int(pid), ctypes.c_uint(0)),
                  f"open pidfd for {pid}")


CLOSE_RANGE_CLOEXEC = 1 << 2


def set_mempolicy(mode: int, nodes: tuple[int, ...] = ()) -> None:
    """set_mempolicy(2): `mode` (MPOL_* | MPOL_F_* flags) over the NUMA `nodes` given."""
    words = (max(nodes) // 64 + 1) if nodes else 0
    mask = (ctypes.c_ulong * max(words, 1))()
    for node in nodes:
        mask[node // 64] |= 1 << (node % 64)
    # maxnode counts bits, plus one: the kernel has always read one bit fewer than it is told.
    res = _libc.syscall(_NR["set_mempolicy"], ctypes.c_int(mode),
                        mask if nodes else None, ctypes.c_ulong(words * 64 + 1 if nodes else 0))
    _check(res, f"set_mempolicy mode {mode:#x} nodes {','.join(map(str, nodes)) or '-'}")


def close_range(first: int, last: int, *, cloexec: bool = False) -> None:
    """close_range(2) (Linux 5.11); with cloexec=True only marks the fds close-on-exec."""
    flags = CLOSE_RANGE_CLOEXEC if cloexec else 0
    res = _libc.syscall(_NR["close_range"], ctypes.c_uint(first), ctypes.c_uint(last),
                        ctypes.c_uint(flags))
    if res < 0 and ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
        # Kernels before 5.11 (or a seccomp filter that denies it): walk the open fds instead.
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if first <= fd <= last:
                try:
                    if cloexec:
                        os.set_inheritable(fd, False)
                    else:
                        os.close(fd)
                except OSError:
                    pass
        return
    _check(res, f"close file descriptors from {first}")


# --- seccomp --------------------------------------------------------------------------------------

_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_SET_MODE_FILTER = 1


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_mode_filter(program: bytes, flags: int = 0) -> int:
    """Load a classic-BPF seccomp program (struct sock_filter[]) for this thread.

    Without flags prctl(PR_SET_SECCOMP) does it, as runc does; with SECCOMP_FILTER_FLAG_*
    only seccomp(2) can. Needs no_new_privs or CAP_SYS_ADMIN, like any filter. With
    SECCOMP_FILTER_FLAG_NEW_LISTENER the result is the user-notification fd.
    """
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    address = ctypes.cast(ctypes.pointer(prog), ctypes.c_void_p).value or 0
    with trace.span("seccomp load", instructions=len(program) // 8, flags=flags):
        if flags == 0:
            res = _libc.prctl(ctypes.c_int(_PR_SET_SECCOMP), ctypes.c_ulong(_SECCOMP_MODE_FILTER),
                              ctypes.c_ulong(address), ctypes.c_ulong(0), ctypes.c_ulong(0))
        else:
            res = _libc.syscall(_NR["seccomp"], ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
                                ctypes.c_uint(flags), ctypes.c_void_p(address))
        return _check(res, f"seccomp: load the filter (flags {flags})")


_SECCOMP_GET_ACTION_AVAIL = 2


def seccomp_action_available(action: int) -> bool:
    """SECCOMP_GET_ACTION_AVAIL: does this kernel know the filter return action `action`?"""
    value = ctypes.c_uint32(action & 0xFFFF0000)  # SECCOMP_RET_ACTION_FULL: no data bits
    res = _libc.syscall(_NR["seccomp"], ctypes.c_uint(_SECCOMP_GET_ACTION_AVAIL),
                        ctypes.c_uint(0), ctypes.byref(value))
    return bool(res == 0)


def seccomp_flags_available(flags: int) -> bool:
    """Does this kernel accept SECCOMP_FILTER_FLAG_* `flags` together?

    SECCOMP_SET_MODE_FILTER with no program: the kernel checks the flags first (EINVAL for one
    it does not know, or a combination it refuses) and only then reads the program (EFAULT), so
    EFAULT means "known". Nothing is loaded either way.
    """
    res = _libc.syscall(_NR["seccomp"], ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
                        ctypes.c_uint(flags), ctypes.c_void_p(None))
    return bool(res < 0 and ctypes.get_errno() == errno.EFAULT)


# --- terminals ------------------------------------------------------------------------------------

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCGPTPEER = 0x5441
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGWINSZ = 0x5413


def winsize_bytes(rows: int, cols: int) -> bytes:
    """A `struct winsize` for TIOCSWINSZ."""
    return struct.pack("HHHH", rows, cols, 0, 0)
