"""runc's -ENOSYS stub: a few classic-BPF instructions put in front of the libseccomp program.

A profile lists the system calls it knows about; one that is newer than all of them (clone3,
faccessat2, … on an older profile) would get the default action, usually EPERM, and glibc
only falls back to the older call on ENOSYS. runc (libcontainer/seccomp/patchbpf) therefore
prepends a stub: for each architecture of the filter, a system call number above the largest
one the profile names returns ENOSYS; everything else continues into the real filter.

Why the same stub rather than extra ENOSYS rules through libseccomp: rules can only name
system calls libseccomp knows, but the point is the calls it does *not* know yet (a kernel
newer than the library); and the numbers above the last named call are exactly what runc
answers ENOSYS for, so the stub gives the same answer for every number, known or not.

Pure Python: `stub_program` makes no system call and is unit-tested without root.
"""

from __future__ import annotations

import errno
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

# Classic BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JMP_JA = 0x05
_JMP_JEQ_K = 0x15
_JMP_JGT_K = 0x25
_JMP_JSET_K = 0x45
_RET_K = 0x06
SECCOMP_RET_ERRNO = 0x00050000
RET_ENOSYS = SECCOMP_RET_ERRNO | errno.ENOSYS

#: struct seccomp_data: the system call number at offset 0, the AUDIT_ARCH_* value at 4.
_OFFSET_NR = 0
_OFFSET_ARCH = 4

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_S390 = 0x00000016
AUDIT_ARCH_S390X = 0x80000016
X32_SYSCALL_BIT = 0x40000000

#: One sock_filter: (code, jt, jf, k).
Instruction = tuple[int, int, int, int]


class _Asm:
    """Forward-only jumps to named labels, resolved when the program is complete."""

    def __init__(self) -> None:
        self.code: list[tuple[int, str | int, str | int, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def emit(self, code: int, k: int = 0, jt: str | int = 0, jf: str | int = 0) -> None:
        self.code.append((code, jt, jf, k))

    def assemble(self) -> list[Instruction]:
        out: list[Instruction] = []
        for pc, (code, jt, jf, k) in enumerate(self.code):
            def rel(target: str | int, pc: int = pc) -> int:
                if isinstance(target, int):
                    return target
                offset = self.labels[target] - pc - 1
                if offset < 0:
                    raise ValueError(f"backward jump to {target}")
                return offset
            if code == _JMP_JA:
                out.append((code, 0, 0, rel(jt)))
                continue
            t, f = rel(jt), rel(jf)
            if t > 255 or f > 255:
                raise ValueError("seccomp stub: conditional jump too long")
            out.append((code, t, f, k))
        return out


def stub_program(last_syscalls: Mapping[int, Mapping[str, int]]) -> list[Instruction]:
    """The stub for `last_syscalls`: AUDIT_ARCH value -> {"native" | "x32": largest number}.

    Its last instruction falls through to whatever follows (the libseccomp program, which
    starts by loading the architecture again). An empty mapping gives an empty stub.
    """
    arches = [(arch, dict(maxes)) for arch, maxes in sorted(last_syscalls.items()) if maxes]
    if not arches:
        return []
    asm = _Asm()
    asm.emit(_LD_W_ABS, _OFFSET_ARCH)
    for i, (arch, _maxes) in enumerate(arches):
        asm.emit(_JMP_JEQ_K, arch, jt=f"arch{i}", jf=0)
    asm.emit(_JMP_JA, jt="filter")
    for i, (arch, maxes) in enumerate(arches):
        asm.label(f"arch{i}")
        asm.emit(_LD_W_ABS, _OFFSET_NR)
        if arch in (AUDIT_ARCH_S390, AUDIT_ARCH_S390X):
            # setup(2), number 0, multiplexes the large numbers the kernel does not know.
            asm.emit(_JMP_JEQ_K, 0, jt="enosys", jf=0)
        if arch == AUDIT_ARCH_X86_64:
            native, x32 = maxes.get("native"), maxes.get("x32")
            # The same AUDIT_ARCH for both ABIs: x32 numbers carry X32_SYSCALL_BIT.
            asm.emit(_JMP_JSET_K, X32_SYSCALL_BIT, jt=f"x32_{i}" if x32 else "filter",
                     jf=0 if native is not None else "filter")
            if native is not None:
                asm.emit(_JMP_JGT_K, native, jt="enosys", jf="filter")
            if x32:
                asm.label(f"x32_{i}")
                asm.emit(_JMP_JGT_K, x32 | X32_SYSCALL_BIT, jt="enosys", jf="filter")
        else:
            asm.emit(_JMP_JGT_K, max(maxes.values()), jt="enosys", jf="filter")
    asm.label("enosys")
    asm.emit(_RET_K, RET_ENOSYS)
    asm.label("filter")
    return asm.assemble()


def encode(program: list[Instruction]) -> bytes:
    """struct sock_filter[] in this machine's byte order."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


def decode(raw: bytes) -> list[Instruction]:
    return [struct.unpack_from("=HBBI", raw, i) for i in range(0, len(raw) - len(raw) % 8, 8)]


def run(program: list[Instruction], nr: int, arch: int) -> int:
    """Interpret `program` (the subset the stub and simple filters use) for a test: the
    seccomp return value, or -1 when it runs off the end (into the real filter)."""
    data = struct.pack("=iI", nr, arch)
    acc = pc = 0
    while pc < len(program):
        code, jt, jf, k = program[pc]
        pc += 1
        if code == _LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == _JMP_JA:
            pc += k
        elif code in (_JMP_JEQ_K, _JMP_JGT_K, _JMP_JSET_K):
            taken = {_JMP_JEQ_K: acc == k, _JMP_JGT_K: acc > k, _JMP_JSET_K: bool(acc & k)}[code]
            pc += jt if taken else jf
        elif code == _RET_K:
            return k
        else:
            raise ValueError(f"opcode {code:#x} not interpreted")
    return -1
