"""Capability names, masks, and setting the five sets in a forked child (the root tests)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest

from pyrunc import capabilities as caps
from pyrunc.linux import syscalls
from pyrunc.linux.consts import PR_SET_KEEPCAPS
from pyrunc.spec.model import Capabilities

# --- the table -------------------------------------------------------------------------------------


def test_table_covers_every_capability_up_to_checkpoint_restore() -> None:
    assert len(caps.CAPABILITY_NAMES) == 41
    assert caps.bit("CAP_CHOWN") == 0
    assert caps.bit("CAP_SYS_ADMIN") == 21
    assert caps.bit("CAP_AUDIT_READ") == 37
    assert caps.bit("CAP_CHECKPOINT_RESTORE") == 40
    assert len(set(caps.CAPABILITY_NAMES)) == 41


def test_names_round_trip_through_bits_and_masks() -> None:
    for name in caps.known_names():
        assert caps.name_of(caps.bit(name)) == name  # type: ignore[arg-type]
    assert caps.names(caps.mask(caps.known_names())) == caps.known_names()


def test_mask_arithmetic() -> None:
    assert caps.mask([]) == 0
    assert caps.mask(["CAP_CHOWN", "CAP_KILL"]) == 0b100001
    assert caps.mask(["CAP_KILL", "CAP_KILL"]) == 1 << 5
    assert caps.mask(caps.known_names()) == (1 << 41) - 1
    assert caps.names(1 << 21 | 1 << 40) == ["CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"]


def test_unknown_names_add_nothing_to_a_mask() -> None:
    assert caps.mask(["CAP_NOT_A_THING", "cap_kill", "KILL", "CAP_KILL"]) == 1 << 5
    assert caps.bit("CAP_UNKNOWN") is None
    assert caps.name_of(45) == "CAP_45"


def test_last_cap_matches_the_kernel() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps.last_cap() == int(f.read())


def test_known_names_is_a_fresh_list() -> None:
    names = caps.known_names()
    names.clear()
    assert caps.known_names()


# --- applying them (root, in a forked child) -------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing capability sets needs root")


def _in_child(body: Callable[[], dict[str, str]]) -> dict[str, str]:
    """Run `body` in a forked child and return what it returned (or raise what it raised)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_fd)
            result: object = body()
        except BaseException as exc:  # report anything, including the KernelError's step
            result, code = {"error": f"{type(exc).__name__}: {exc}"}, 1
        try:
            os.write(write_fd, json.dumps(result).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    out: dict[str, str] = json.loads(b"".join(chunks))
    if "error" in out:
        pytest.fail(out["error"])
    return out


def _status_caps(text: str) -> dict[str, str]:
    lines = dict(line.split(":\t", 1) for line in text.splitlines() if line.startswith("Cap"))
    return {k: lines[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def _own_status_caps() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return _status_caps(f.read())


def _hex(names: list[str]) -> str:
    return f"{caps.mask(names):016x}"


REDUCED = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"]


@needs_root
def test_reduced_set_as_root_in_this_process() -> None:
    def body() -> dict[str, str]:
        c = Capabilities(bounding=tuple(REDUCED), effective=("CAP_KILL", "CAP_CHOWN"),
                         permitted=tuple(REDUCED), inheritable=("CAP_NET_BIND_SERVICE",),
                         ambient=("CAP_NET_BIND_SERVICE",))
        caps.apply_bounding(c)
        caps.apply_capabilities(c)
        return _own_status_caps()

    got = _in_child(body)
    assert got == {"CapBnd": _hex(REDUCED), "CapPrm": _hex(REDUCED),
                   "CapEff": _hex(["CAP_KILL", "CAP_CHOWN"]),
                   "CapInh": _hex(["CAP_NET_BIND_SERVICE"]),
                   "CapAmb": _hex(["CAP_NET_BIND_SERVICE"])}


@needs_root
def test_lead_order_with_uid_switch_keeps_only_ambient_across_execve() -> None:
    """bounding -> keepcaps -> setres[ug]id(1000) -> capset+ambient -> execve: what the program sees."""
    def body() -> dict[str, str]:
        c = Capabilities(bounding=("CAP_NET_BIND_SERVICE", "CAP_KILL"),
                         effective=("CAP_NET_BIND_SERVICE", "CAP_KILL"),
                         permitted=("CAP_NET_BIND_SERVICE", "CAP_KILL"),
                         inheritable=("CAP_NET_BIND_SERVICE",),
                         ambient=("CAP_NET_BIND_SERVICE",))
        caps.apply_bounding(c)
        syscalls.prctl(PR_SET_KEEPCAPS, 1)
        os.setgroups([])
        os.setresgid(1000, 1000, 1000)
        os.setresuid(1000, 1000, 1000)
        syscalls.prctl(PR_SET_KEEPCAPS, 0)
        caps.apply_capabilities(c)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.dup2(w, 1)
            os.execve("/bin/cat", ["cat", "/proc/self/status"], {})
        os.close(w)
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.waitpid(pid, 0)
        return _status_caps(data.decode())

    got = _in_child(body)
    ambient = _hex(["CAP_NET_BIND_SERVICE"])
    assert got == {"CapBnd": _hex(["CAP_NET_BIND_SERVICE", "CAP_KILL"]), "CapAmb": ambient,
                   "CapPrm": ambient, "CapEff": ambient, "CapInh": ambient}


@needs_root
def test_unknown_and_unavailable_capabilities_are_warned_about_not_fatal(
        capfd: pytest.CaptureFixture[str]) -> None:
    def body() -> dict[str, str]:
        # First lose CAP_SYS_TIME from the permitted set, as on a host whose bounding set lacks it.
        _, prm, inh = syscalls.capget()
        lose = caps.mask(["CAP_SYS_TIME"])
        syscalls.capset(prm & ~lose, prm & ~lose, inh)
        c = Capabilities(bounding=("CAP_KILL", "CAP_BOGUS"),
                         effective=("CAP_KILL", "CAP_SYS_TIME", "CAP_BOGUS"),
                         permitted=("CAP_KILL", "CAP_SYS_TIME"),
                         ambient=("CAP_KILL",))  # not inheritable: cannot be ambient
        caps.apply_bounding(c)
        caps.apply_capabilities(c)
        return _own_status_caps()

    got = _in_child(body)
    kill = _hex(["CAP_KILL"])
    assert got == {"CapBnd": kill, "CapPrm": kill, "CapEff": kill, "CapInh": "0" * 16,
                   "CapAmb": "0" * 16}
    err = capfd.readouterr().err
    assert "CAP_BOGUS" in err
    assert "CAP_SYS_TIME" in err
    # runc 1.5 (libcontainer/capabilities): a warning per ambient capability it cannot raise.
    assert "can't raise ambient capability CAP_KILL: operation not permitted" in err


def test_none_means_leave_everything_alone() -> None:
    before = _own_status_caps()
    caps.apply_bounding(None)
    caps.apply_capabilities(None)
    assert _own_status_caps() == before
