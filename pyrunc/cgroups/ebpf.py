"""The cgroup v2 device filter: an eBPF program assembled here, from an emulated rule state.

cgroup v2 has no devices.allow file; the kernel runs a BPF_PROG_TYPE_CGROUP_DEVICE program on
every open/mknod of a device node and refuses the access (EPERM) when it returns 0. Its context
is `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`, where access_type is
`(access << 16) | type` with access a mask of BPF_DEVCG_ACC_{MKNOD=1,READ=2,WRITE=4} and type
BPF_DEVCG_DEV_{BLOCK=1,CHAR=2}.

The program mirrors `device_rules.DeviceState`: it loads the four fields into registers, tests each
exception in turn, and returns the exception's verdict on the first match, else the default. All
exceptions carry the same verdict (the opposite of the default), so their order does not change
the result. What counts as a match follows the v1 kernel:
  * in a deny-all cgroup an allow exception matches when it grants *every* requested bit
    (O_RDWR needs one exception with both r and w);
  * in an allow-all cgroup a deny exception matches when it names *any* requested bit.
(runc's generator uses the first test for both; for deny exceptions that lets an O_RDWR open
through a `w` deny, which the v1 controller would refuse. pyrunc keeps the v1 meaning.)

Only a handful of instructions are needed; `encode` writes them as `struct bpf_insn`.
"""

from __future__ import annotations

import struct
import sys

from pyrunc.cgroups.device_rules import ACC_ALL, DeviceState, access_bits, emulate
from pyrunc.spec.resources import DeviceRule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import NamedTuple
else:
    from pyrunc.records import NamedTuple

#: The kernel wants a license string; the program calls no GPL-only helper.
LICENSE = "Apache"

DEV_BLOCK = 1
DEV_CHAR = 2
_DEV_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}

# Instruction classes, operations and sources (linux/bpf_common.h, linux/bpf.h).
BPF_LDX = 0x01
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_JMP32 = 0x06
BPF_W = 0x00
BPF_MEM = 0x60
BPF_K = 0x00
BPF_X = 0x08
BPF_AND = 0x50
BPF_RSH = 0x70
BPF_MOV = 0xB0
BPF_JEQ = 0x10
BPF_JNE = 0x50
BPF_EXIT = 0x90

R0, R1, R2, R3, R4, R5 = range(6)


class Insn(NamedTuple):
    """One eBPF instruction: opcode, registers, jump offset, immediate."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0


def load_word(dst: int, src: int, off: int) -> Insn:
    """dst = *(u32 *)(src + off)"""
    return Insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off)


def alu32_imm(op: int, dst: int, imm: int) -> Insn:
    """dst = (u32)(dst <op> imm)"""
    return Insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm)


def mov32_reg(dst: int, src: int) -> Insn:
    """dst = (u32)src"""
    return Insn(BPF_ALU | BPF_MOV | BPF_X, dst, src)


def jmp32_imm(op: int, dst: int, imm: int, off: int = 0) -> Insn:
    """if ((u32)dst <op> (u32)imm) goto +off"""
    return Insn(BPF_JMP32 | op | BPF_K, dst, 0, off, imm)


def jmp32_reg(op: int, dst: int, src: int, off: int = 0) -> Insn:
    """if ((u32)dst <op> (u32)src) goto +off"""
    return Insn(BPF_JMP32 | op | BPF_X, dst, src, off)


def exit_insn() -> Insn:
    return Insn(BPF_JMP | BPF_EXIT)


def encode(insns: Iterable[Insn]) -> bytes:
    """`struct bpf_insn` array in the host's byte order (dst_reg is the low nibble on little
    endian, the high one on big endian, as the C bit-field lays it out)."""
    little = sys.byteorder == "little"
    out = bytearray()
    for i in insns:
        regs = (i.src << 4 | i.dst) if little else (i.dst << 4 | i.src)
        out += struct.pack("=BBhi", i.code, regs, i.off, _s32(i.imm))
    return bytes(out)


def _s32(value: int) -> int:
    """An immediate given as u32 (a major of 4000000000) as the s32 the field holds."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _prologue() -> list[Insn]:
    # R2 = type, R3 = access, R4 = major, R5 = minor
    return [load_word(R2, R1, 0), alu32_imm(BPF_AND, R2, 0xFFFF),
            load_word(R3, R1, 0), alu32_imm(BPF_RSH, R3, 16),
            load_word(R4, R1, 4),
            load_word(R5, R1, 8)]


def _verdict(allow: bool) -> list[Insn]:
    return [Insn(BPF_ALU | BPF_MOV | BPF_K, R0, 0, 0, int(allow)), exit_insn()]


def _block(rule: DeviceRule, default_allow: bool) -> list[Insn]:
    """Test one exception; every failed test jumps past the block (offsets patched here)."""
    tests: list[Insn] = [jmp32_imm(BPF_JNE, R2, _DEV_TYPES[rule.type])]
    bits = access_bits(rule.access)
    if bits != ACC_ALL:
        tests.append(mov32_reg(R1, R3))
        tests.append(alu32_imm(BPF_AND, R1, bits))
        if default_allow:   # deny exception: skip when no requested bit is named
            tests.append(jmp32_imm(BPF_JEQ, R1, 0))
        else:               # allow exception: skip unless every requested bit is granted
            tests.append(jmp32_reg(BPF_JNE, R1, R3))
    if rule.major >= 0:
        tests.append(jmp32_imm(BPF_JNE, R4, rule.major))
    if rule.minor >= 0:
        tests.append(jmp32_imm(BPF_JNE, R5, rule.minor))
    block = tests + _verdict(not default_allow)
    end = len(block)
    return [i._replace(off=end - (n + 1)) if i.code & 0x07 == BPF_JMP32 else i
            for n, i in enumerate(block)]


def program_for(state: DeviceState) -> list[Insn]:
    """The filter that gives, for every (type, major, minor, access), `state`'s verdict."""
    insns = _prologue()
    for rule in state.ordered():
        insns += _block(rule, state.default_allow)
    return insns + _verdict(state.default_allow)


def device_program(rules: Iterable[DeviceRule]) -> tuple[DeviceState, bytes]:
    """The emulated state of `rules` and its filter, encoded and ready for BPF_PROG_LOAD."""
    state = emulate(rules)
    return state, encode(program_for(state))
