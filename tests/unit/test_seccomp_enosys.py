"""The -ENOSYS stub as a program: which numbers it answers ENOSYS and which reach the filter."""

from __future__ import annotations

import pytest

from pyrunc.seccomp_enosys import (
    AUDIT_ARCH_S390X,
    AUDIT_ARCH_X86_64,
    RET_ENOSYS,
    X32_SYSCALL_BIT,
    decode,
    encode,
    run,
    stub_program,
)

X86 = 0x40000003
AARCH64 = 0xC00000B7
FILTER = -1   # ran off the stub: the real filter decides


def test_no_architectures_means_no_stub() -> None:
    assert stub_program({}) == []


@pytest.mark.parametrize("nr, arch, expected", [
    (0, AUDIT_ARCH_X86_64, FILTER), (334, AUDIT_ARCH_X86_64, FILTER),
    (335, AUDIT_ARCH_X86_64, RET_ENOSYS), (435, AUDIT_ARCH_X86_64, RET_ENOSYS),
    (386, X86, FILTER), (387, X86, RET_ENOSYS),
    (999, AARCH64, FILTER),                       # not in the filter: libseccomp's bad-arch action
    (X32_SYSCALL_BIT | 999, AUDIT_ARCH_X86_64, FILTER),   # x32 not in the filter
])
def test_numbers_above_the_largest_named_one_get_enosys(nr: int, arch: int, expected: int) -> None:
    program = stub_program({AUDIT_ARCH_X86_64: {"native": 334}, X86: {"native": 386}})
    assert run(program, nr, arch) == expected


def test_x86_64_and_x32_are_told_apart_by_the_x32_bit() -> None:
    program = stub_program({AUDIT_ARCH_X86_64: {"native": 334,
                                                "x32": X32_SYSCALL_BIT | 547}})
    assert run(program, 335, AUDIT_ARCH_X86_64) == RET_ENOSYS
    assert run(program, X32_SYSCALL_BIT | 547, AUDIT_ARCH_X86_64) == FILTER
    assert run(program, X32_SYSCALL_BIT | 548, AUDIT_ARCH_X86_64) == RET_ENOSYS


def test_only_x32_leaves_native_calls_to_the_filter() -> None:
    program = stub_program({AUDIT_ARCH_X86_64: {"x32": X32_SYSCALL_BIT | 547}})
    assert run(program, 9999, AUDIT_ARCH_X86_64) == FILTER
    assert run(program, X32_SYSCALL_BIT | 600, AUDIT_ARCH_X86_64) == RET_ENOSYS


def test_s390x_setup_multiplexer_gets_enosys() -> None:
    program = stub_program({AUDIT_ARCH_S390X: {"native": 400}})
    assert run(program, 0, AUDIT_ARCH_S390X) == RET_ENOSYS
    assert run(program, 1, AUDIT_ARCH_S390X) == FILTER


def test_encoding_round_trips_as_struct_sock_filter() -> None:
    program = stub_program({AUDIT_ARCH_X86_64: {"native": 334}})
    raw = encode(program)
    assert len(raw) == 8 * len(program)
    assert decode(raw) == program
