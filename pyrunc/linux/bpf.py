"""bpf(2) for cgroup device programs: load, attach, query, detach, look up by id.

Only what a BPF_PROG_TYPE_CGROUP_DEVICE filter needs. Every command gets a zeroed `union bpf_attr`
buffer larger than any kernel's (the kernel accepts a longer attr as long as the tail is zero), so
fields this module leaves alone are zero, and a kernel that writes more of the union than the
command needs (BPF_PROG_QUERY on Linux 6.17+ writes `revision`) writes into our buffer.
Failures raise `KernelError` naming the step, like the rest of `pyrunc.linux`.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

from pyrunc.linux.syscalls import KernelError, _libc

_BPF_NR = {"x86_64": 321, "aarch64": 280}

# enum bpf_cmd
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15  # enum bpf_prog_type
BPF_CGROUP_DEVICE = 6             # enum bpf_attach_type
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2

#: Size of the attr buffer passed with every command (union bpf_attr is ~150 bytes in 6.x).
_ATTR_SIZE = 256
#: struct bpf_insn is 8 bytes.
INSN_SIZE = 8
#: The verifier log for a failed load; the programs pyrunc loads are a few dozen instructions.
_LOG_SIZE = 64 * 1024
_LOAD_RETRIES = 30  # the verifier returns EAGAIN when a signal interrupts it


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], step: str) -> int:
    nr = _BPF_NR.get(os.uname().machine)
    if nr is None:
        raise KernelError(errno.ENOSYS, f"{step}: no bpf(2) number known for this machine")
    res = _libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(_ATTR_SIZE))
    if res < 0:
        raise KernelError(ctypes.get_errno(), step)
    return int(res)


def _attr(fmt: str, *values: int) -> ctypes.Array[ctypes.c_char]:
    buf = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(fmt, buf, 0, *values)
    return buf


def _own_fd(fd: int) -> int:
    """bpf(2) can hand out fd 0 when stdin is closed; fd 0 means "none" to later commands."""
    if fd != 0:
        return fd
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)


def prog_load_cgroup_device(insns: bytes, license: str, *, step: str) -> int:
    """BPF_PROG_LOAD a cgroup device program; returns its fd (close-on-exec).

    The first attempt runs without a verifier log (the fast path); when it fails, the load is
    repeated with the log on, and the log's last lines go into the error.
    """
    if len(insns) % INSN_SIZE or not insns:
        raise ValueError(f"{step}: program is not a whole number of instructions")
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())

    def attempt(log: ctypes.Array[ctypes.c_char] | None) -> int:
        # u32 prog_type, u32 insn_cnt, u64 insns, u64 license, u32 log_level, u32 log_size,
        # u64 log_buf
        attr = _attr("=IIQQIIQ", BPF_PROG_TYPE_CGROUP_DEVICE, len(insns) // INSN_SIZE,
                     ctypes.addressof(code), ctypes.addressof(lic), 1 if log is not None else 0,
                     len(log) if log is not None else 0,
                     ctypes.addressof(log) if log is not None else 0)
        for _ in range(_LOAD_RETRIES):
            try:
                return _own_fd(_bpf(BPF_PROG_LOAD, attr, step))
            except KernelError as exc:
                if exc.errno != errno.EAGAIN:
                    raise
        return _own_fd(_bpf(BPF_PROG_LOAD, attr, step))

    try:
        return attempt(None)
    except KernelError as first:
        if first.errno in (errno.ENOSYS, errno.EPERM):
            raise  # no bpf(2) or no privilege: a log would not say more
        log = ctypes.create_string_buffer(_LOG_SIZE)
        try:
            return attempt(log)
        except KernelError as exc:
            text = log.value.decode(errors="replace").strip()
            if text:
                tail = " | ".join(text.splitlines()[-6:])
                raise KernelError(exc.errno or errno.EINVAL, f"{step} (verifier: {tail})") from None
            raise


def prog_attach(cgroup_fd: int, prog_fd: int, flags: int = BPF_F_ALLOW_MULTI, *,
                replace_fd: int = 0, step: str) -> None:
    """BPF_PROG_ATTACH the program to the cgroup as its BPF_CGROUP_DEVICE filter."""
    # u32 target_fd, u32 attach_bpf_fd, u32 attach_type, u32 attach_flags, u32 replace_bpf_fd
    _bpf(BPF_PROG_ATTACH, _attr("=IIIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags,
                                replace_fd), step)


def prog_detach(cgroup_fd: int, prog_fd: int, *, step: str) -> None:
    """BPF_PROG_DETACH one BPF_CGROUP_DEVICE program from the cgroup."""
    _bpf(BPF_PROG_DETACH, _attr("=III", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE), step)


def prog_query(cgroup_fd: int, *, step: str) -> list[int]:
    """Ids of the BPF_CGROUP_DEVICE programs attached to this cgroup itself (not inherited)."""
    count = 64  # the kernel's limit of programs per cgroup and attach type
    for _ in range(4):
        ids = (ctypes.c_uint32 * count)()
        # u32 target_fd, u32 attach_type, u32 query_flags, u32 attach_flags, u64 prog_ids,
        # u32 prog_cnt
        attr = _attr("=IIIIQI", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids),
                     count)
        try:
            _bpf(BPF_PROG_QUERY, attr, step)
        except KernelError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            count = struct.unpack_from("=I", attr, 24)[0]  # the kernel says how many there are
            continue
        found = struct.unpack_from("=I", attr, 24)[0]
        return list(ids[:found])
    raise KernelError(errno.ENOSPC, f"{step}: the list of programs keeps growing")


def prog_get_fd_by_id(prog_id: int, *, step: str) -> int:
    """BPF_PROG_GET_FD_BY_ID: an fd of a loaded program (ENOENT once the kernel freed it)."""
    return _own_fd(_bpf(BPF_PROG_GET_FD_BY_ID, _attr("=I", prog_id), step))


def prog_id(prog_fd: int, *, step: str) -> int:
    """The kernel's id of a loaded program (BPF_OBJ_GET_INFO_BY_FD; struct bpf_prog_info.id)."""
    info = ctypes.create_string_buffer(64)  # type u32, id u32, tag[8], ...: the head is enough
    _bpf(BPF_OBJ_GET_INFO_BY_FD, _attr("=IIQ", prog_fd, len(info), ctypes.addressof(info)), step)
    return int(struct.unpack_from("=I", info, 4)[0])
