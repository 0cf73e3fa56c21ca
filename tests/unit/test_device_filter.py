"""The device rule emulator and the eBPF device filter, checked by running the program.

The emitted bytes are decoded and executed by a small eBPF interpreter (only the opcodes a device
filter needs) for every (type, major, minor, access) probe, and the verdict is compared with an
independent model of the v1 kernel's device cgroup fed the same rule list. Thousands of random
rule lists (seeded, so a failure reproduces) are checked this way; further tests show that the
check catches a builder that gets the matching or the order wrong.
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Callable

import pytest
from device_model import reference

from pyrunc.cgroups import device_rules, ebpf
from pyrunc.cgroups.device_rules import (
    DeviceRuleError,
    DeviceState,
    Match,
    emulate,
    parse_list,
    rule_text,
    transition,
)
from pyrunc.cgroups.devices import DEFAULT_RULES, effective_rules, rules_from_json
from pyrunc.spec.model import Device
from pyrunc.spec.resources import DeviceRule

TYPES = {"b": 1, "c": 2}


# --- a tiny eBPF interpreter ------------------------------------------------------------------------

def decode(code: bytes) -> list[tuple[int, int, int, int, int]]:
    """struct bpf_insn array -> (opcode, dst, src, off, imm) tuples."""
    assert len(code) % 8 == 0
    out = []
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack("=BBhi", code[i:i + 8])
        dst, src = (regs & 0xF, regs >> 4) if sys.byteorder == "little" else (regs >> 4, regs & 0xF)
        out.append((op, dst, src, off, imm))
    return out


def run_filter(prog: list[tuple[int, int, int, int, int]], dev_type: int, major: int, minor: int,
               access: int) -> int:
    """Execute a cgroup device program on one request; returns R0 at exit."""
    ctx = struct.pack("=III", (access << 16) | dev_type, major, minor)
    regs = [0] * 11
    regs[1] = -1  # the context pointer; only reads through it at offsets 0/4/8 are allowed
    pc = 0
    for _ in range(10_000):
        op, dst, src, off, imm = prog[pc]
        pc += 1
        if op == 0x61:                                   # ldxw dst, [src+off]
            assert regs[src] == -1 and off in (0, 4, 8), "load not from the context"
            regs[dst] = struct.unpack_from("=I", ctx, off)[0]
        elif op & 0x07 == 0x04:                          # alu32
            value = regs[src] if op & 0x08 else imm
            a, b = regs[dst] & 0xFFFFFFFF, value & 0xFFFFFFFF
            kind = op & 0xF0
            if kind == 0x50:
                regs[dst] = a & b
            elif kind == 0x70:
                regs[dst] = a >> (b & 31)
            elif kind == 0xB0:
                regs[dst] = b
            else:
                raise AssertionError(f"unexpected alu op {op:#x}")
        elif op == 0x95:                                 # exit
            return regs[0]
        elif op & 0x07 in (0x05, 0x06):                  # jmp / jmp32
            mask = 0xFFFFFFFF if op & 0x07 == 0x06 else (1 << 64) - 1
            a = regs[dst] & mask
            b = (regs[src] if op & 0x08 else imm) & mask
            kind = op & 0xF0
            if kind == 0x00:
                taken = True
            elif kind == 0x10:
                taken = a == b
            elif kind == 0x50:
                taken = a != b
            else:
                raise AssertionError(f"unexpected jump op {op:#x}")
            if taken:
                pc += off
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
        assert 0 <= pc < len(prog), "jumped out of the program"
    raise AssertionError("program did not terminate")


PROBES = [(t, major, minor, access) for t in "cb" for major in (1, 5, 136, 7)
          for minor in (0, 3, 5, 9) for access in range(1, 8)]


def first_mismatch(rules: list[DeviceRule], code: bytes) -> tuple | None:
    """The first probe where the program and the kernel model disagree, or None."""
    prog = decode(code)
    model = reference(rules)
    for t, major, minor, access in PROBES:
        got = run_filter(prog, TYPES[t], major, minor, access)
        assert got in (0, 1)
        if bool(got) != model.permits(t, major, minor, access):
            return (t, major, minor, access, got)
    return None


def random_rules(rng: random.Random) -> list[DeviceRule]:
    rules = []
    for _ in range(rng.randint(0, 8)):
        kind = rng.choice("accbb" if rng.random() < 0.5 else "cb")
        access = "".join(c for c in "rwm" if rng.random() < 0.5) or rng.choice("rwm")
        rules.append(DeviceRule(rng.random() < 0.5, kind, rng.choice((-1, 1, 5, 136)),
                                rng.choice((-1, 0, 3, 5)), "".join(rng.sample(access, len(access)))))
    return rules


def check_many(build: Callable[[list[DeviceRule]], bytes], count: int, seed: int = 5) -> tuple:
    """Run `count` random rule lists through `build`; (checked, refused, first mismatch)."""
    rng = random.Random(seed)
    checked = refused = 0
    for _ in range(count):
        rules = random_rules(rng)
        try:
            code = build(rules)
        except DeviceRuleError:
            refused += 1
            continue
        checked += 1
        bad = first_mismatch(rules, code)
        if bad is not None:
            return checked, refused, (rules, bad)
    return checked, refused, None


def build(rules: list[DeviceRule]) -> bytes:
    return ebpf.device_program(rules)[1]


# --- the program ------------------------------------------------------------------------------------

def test_program_matches_the_v1_kernel_model_on_random_rule_lists():
    checked, refused, mismatch = check_many(build, 1500)
    assert mismatch is None, f"program disagrees with the v1 model: {mismatch}"
    assert checked > 1000 and refused > 0  # most lists are enforceable; holes are refused


def test_program_for_runc_default_rules_matches_the_model():
    for config in ([DeviceRule(False)], [], [DeviceRule(True)],
                   [DeviceRule(False), DeviceRule(True, "c", 1, 3, "r"), DeviceRule(True, "b", 8, -1, "rw")]):
        rules = effective_rules(config, [Device("/dev/null", "c", 1, 3)])
        assert first_mismatch(rules, build(rules)) is None


def test_the_check_catches_a_builder_that_ignores_rule_order():
    mismatch = check_many(lambda rules: build(list(reversed(rules))), 300)[2]
    assert mismatch is not None


def test_the_check_catches_runc_style_subset_matching_for_deny_exceptions(monkeypatch):
    # runc tests "requested bits within the rule's" for deny exceptions too: an O_RDWR open passes a
    # `w` deny. The v1 kernel (and pyrunc) refuse it; the check must see the difference.
    real_block = ebpf._block
    monkeypatch.setattr(ebpf, "_block", lambda rule, default_allow: real_block(rule, False)[:-2]
                        + ebpf._verdict(not default_allow))
    rules = [DeviceRule(True), DeviceRule(False, "c", 1, 3, "w")]
    assert first_mismatch(rules, build(rules)) == ("c", 1, 3, 5, 1)  # w+m requested
    monkeypatch.undo()
    assert first_mismatch(rules, build(rules)) is None


def test_the_check_catches_a_wrong_default():
    def wrong(rules: list[DeviceRule]) -> bytes:
        state = emulate(rules)
        state.default_allow = not state.default_allow
        return ebpf.encode(ebpf.program_for(state))
    assert check_many(wrong, 50)[2] is not None


def test_encoding_of_single_instructions():
    assert ebpf.encode([ebpf.exit_insn()]) == bytes.fromhex("9500000000000000")
    assert ebpf.encode([ebpf.load_word(2, 1, 4)]) == bytes.fromhex("6112040000000000")
    assert ebpf.encode([ebpf.alu32_imm(ebpf.BPF_AND, 2, 0xFFFF)]) == \
        bytes.fromhex("54020000ffff0000")
    assert ebpf.encode([ebpf.jmp32_imm(ebpf.BPF_JNE, 4, 136, 3)]) == \
        bytes.fromhex("5604030088000000")
    # A u32 immediate above 2**31 is stored as the same 32 bits.
    assert ebpf.encode([ebpf.jmp32_imm(ebpf.BPF_JNE, 5, 0xFFFFFFF0, 1)])[4:] == b"\xf0\xff\xff\xff"


def test_allow_all_and_deny_all_programs_are_a_constant_return():
    for rules, verdict in (([DeviceRule(True)], 1), ([DeviceRule(False)], 0), ([], 0)):
        insns = ebpf.program_for(emulate(rules))
        assert insns[-2:] == ebpf._verdict(bool(verdict)) and len(insns) == 8


# --- the emulator -------------------------------------------------------------------------------------

def test_later_rules_win_and_access_is_merged():
    state = emulate([DeviceRule(False), DeviceRule(True, "c", 1, 3, "r"),
                     DeviceRule(True, "c", 1, 3, "mw"), DeviceRule(False, "c", 1, 3, "m")])
    assert state == DeviceState(False, {Match("c", 1, 3): 6})
    assert [rule_text(r) for r in state.ordered()] == ["c 1:3 rw"]
    assert emulate([DeviceRule(True, "c", 1, 3, "r"), DeviceRule(True)]).is_allow_all()


def test_a_hole_in_a_wildcard_is_refused_with_both_rules_named():
    with pytest.raises(DeviceRuleError, match=r"'c 1:3 w'.*'c 1:\* rw'"):
        emulate([DeviceRule(True, "c", 1, -1, "rw"), DeviceRule(False, "c", 1, 3, "w")])
    with pytest.raises(DeviceRuleError, match=r"'b 8:0 r'.*'b \*:\* r'"):
        emulate([DeviceRule(True), DeviceRule(False, "b", -1, -1, "r"), DeviceRule(True, "b", 8, 0, "r")])
    # Removing bits the wildcard does not hold is fine.
    emulate([DeviceRule(True, "c", 1, -1, "r"), DeviceRule(False, "c", 1, 3, "w")])


@pytest.mark.parametrize("rule, message", [
    (DeviceRule(True, "c", 1, 3, ""), "must not be empty"),
    (DeviceRule(True, "c", 1, 3, "rx"), "'x' is not one of r, w, m"),
    (DeviceRule(True, "p", 1, 3, "r"), "type 'p'"),
    (DeviceRule(True, "c", 2**32, 3, "r"), "major 4294967296 is out of range"),
])
def test_bad_rules_are_refused(rule, message):
    with pytest.raises(DeviceRuleError, match=message):
        emulate([rule])


def test_devices_list_round_trip_and_transition():
    state = emulate(effective_rules([DeviceRule(False)], []))
    listing = "\n".join(rule_text(r) for r in state.ordered())
    assert listing.splitlines()[:3] == ["b *:* m", "c *:* m", "c 1:3 rwm"]
    assert parse_list(listing) == state
    assert parse_list("a *:* rwm\n").is_allow_all()
    # From allow-all (a fresh v1 cgroup): deny everything, then every allow.
    steps = transition(parse_list("a *:* rwm"), state)
    assert steps[0] == DeviceRule(False, "a", -1, -1, "rwm") and steps[1:] == state.ordered()
    # An update from a deny-all list writes only the difference, nothing disruptive.
    target = emulate([DeviceRule(True, "c", 1, 3, "r"), DeviceRule(True, "c", 4, -1, "rw")])
    assert transition(parse_list("c 1:3 rwm\nc 1:5 r"), target) == [
        DeviceRule(False, "c", 1, 3, "wm"), DeviceRule(False, "c", 1, 5, "r"),
        DeviceRule(True, "c", 4, -1, "rw")]
    assert transition(target, target) == []


# --- the effective list ---------------------------------------------------------------------------------

def test_effective_rules_are_the_config_then_runc_defaults_minus_redefined_paths():
    config = [DeviceRule(False), DeviceRule(True, "c", 1, 3, "r")]
    assert effective_rules(config, []) == config + [r for _, r in DEFAULT_RULES]
    redefined = effective_rules(config, [Device("/dev/null", "c", 1, 3), Device("/dev/fuse", "c", 10, 229)])
    assert DeviceRule(True, "c", 1, 3, "rwm") not in redefined
    assert len(redefined) == len(config) + len(DEFAULT_RULES) - 1
    assert not any(r.major == 10 and r.minor == 229 for r in redefined)  # no rule of its own
    # The config cannot take away what a default gives back (runc's known behaviour).
    state = emulate(effective_rules([DeviceRule(False), DeviceRule(False, "c", 1, 5, "w")], []))
    assert state.exceptions[Match("c", 1, 5)] == 7


def test_rules_from_json_uses_runc_defaults_for_absent_fields():
    assert rules_from_json([{"allow": False, "access": "rwm"},
                            {"allow": True, "type": "c", "major": 1, "access": "r"}]) == [
        DeviceRule(False, "a", -1, -1, "rwm"), DeviceRule(True, "c", 1, -1, "r")]
    with pytest.raises(DeviceRuleError, match=r"/linux/resources/devices/0/access: must not be empty"):
        rules_from_json([{"allow": True}])
    assert rules_from_json(None) == []


def test_the_emulator_module_keeps_the_kernel_access_bits():
    assert (device_rules.ACC_MKNOD, device_rules.ACC_READ, device_rules.ACC_WRITE) == (1, 2, 4)
