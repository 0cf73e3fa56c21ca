"""The eBPF device filter on a pure cgroup v2 host, seen from inside containers.

cgroup v2 has no devices.* files: pyrunc attaches a BPF_PROG_TYPE_CGROUP_DEVICE program to the
container's cgroup. These tests check what a container may open, that exactly one program is
attached (found with BPF_PROG_QUERY through pyrunc's own wrapper: there is no bpftool here) and
that the kernel frees it once the container is deleted. They skip unless the host is pure v2;
test_vm_lane.py runs them inside hack/vm's guest.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from cgroupv2_support import V2_ROOT, pure_v2_only

from pyrunc.cgroups.devices import attached_programs
from pyrunc.linux import bpf
from pyrunc.linux.syscalls import KernelError

pytestmark = pure_v2_only

DEFAULT_NODES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
                 "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}


def node(path: str) -> dict[str, Any]:
    major, minor = DEFAULT_NODES[path]
    return {"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666}


def devices(rules: list[dict[str, Any]], nodes: list[str] = ()) -> Any:
    """Config edit: these device rules, and these default nodes redefined in linux.devices (which
    drops runc's default rule for them, so that only `rules` decide)."""
    def edit(config: dict[str, Any]) -> None:
        config["linux"].setdefault("resources", {})["devices"] = rules
        config["linux"]["devices"] = [node(p) for p in nodes]
    return edit


DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}


def run(runtime: Any, path: Path, name: str) -> tuple[list[str], str]:
    with tempfile.TemporaryFile() as stdin:  # not the host's /dev/null: it may be denied
        result = runtime("run", "--bundle", str(path), name, stdin=stdin, check=False)
    return result.stdout.splitlines(), result.stderr


def freed(prog_id: int, timeout: float = 30.0) -> bool:
    """True once the kernel has freed the program (after an RCU grace period, not at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fd = bpf.prog_get_fd_by_id(prog_id, step="open program")
        except KernelError as exc:
            if exc.errno == errno.ENOENT:
                return True
            raise
        os.close(fd)
        time.sleep(0.1)
    return False


def test_one_program_is_attached_and_gone_after_delete(runtime, bundle, cgroup_path):
    path = bundle("true")
    with tempfile.TemporaryFile() as stdin:
        runtime("create", "--bundle", str(path), "dv1", stdin=stdin)
    directory = V2_ROOT / cgroup_path.lstrip("/")
    programs = attached_programs(str(directory))
    assert len(programs) == 1
    runtime("delete", "--force", "dv1")
    assert not directory.exists()
    assert freed(programs[0]), f"device program {programs[0]} still loaded after delete"


def test_default_rules_let_null_and_zero_work(runtime, bundle):
    path = bundle("sh", "-c", "echo x > /dev/null && head -c 3 /dev/zero | wc -c && cat /dev/null "
                  "&& echo ok")
    out, err = run(runtime, path, "dv2")
    assert out == ["3", "ok"], err


def test_any_device_may_be_created_but_not_opened_unless_allowed(runtime, bundle):
    # runc's defaults grant mknod of every device (c *:* m); /dev/zero redefined in linux.devices
    # loses its default rule, so 1:5 may be created under another name but not opened.
    def edit(config: dict[str, Any]) -> None:
        devices([DENY_ALL], nodes=["/dev/zero"])(config)
        for kind in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][kind].append("CAP_MKNOD")
    path = bundle("sh", "-c", "mknod /dev/zero2 c 1 5 && echo mknod-ok; head -c 1 /dev/zero2 || "
                  "echo open-denied; mknod /dev/null2 c 1 3 && echo x > /dev/null2 && echo null2-ok",
                  edit=edit)
    out, err = run(runtime, path, "dv8")
    assert out == ["mknod-ok", "open-denied", "null2-ok"], err
    assert "Operation not permitted" in err


def test_a_denied_write_to_dev_null_fails_while_reading_works(runtime, bundle):
    edit = devices([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}],
                   nodes=["/dev/null"])
    path = bundle("sh", "-c", "cat /dev/null && echo read-ok; echo x > /dev/null || echo write-denied",
                  edit=edit)
    out, err = run(runtime, path, "dv3")
    assert out == ["read-ok", "write-denied"], err
    assert "Operation not permitted" in err


def test_allow_all_opens_what_deny_all_refuses(runtime, bundle):
    script = "head -c 2 /dev/zero | wc -c || true; echo end"
    out, err = run(runtime, bundle("sh", "-c", script,
                                   edit=devices([ALLOW_ALL], nodes=["/dev/zero"])), "dv4")
    assert out == ["2", "end"], err
    out, err = run(runtime, bundle("sh", "-c", script,
                                   edit=devices([DENY_ALL], nodes=["/dev/zero"])), "dv5")
    assert out == ["0", "end"] and "Operation not permitted" in err, (out, err)


def test_deny_all_leaves_only_the_inherited_stdio(runtime, bundle):
    # (/dev/tty cannot be opened without a controlling terminal anyway: not a proof.)
    checks = "; ".join(f"head -c 0 {p} || echo {p}-denied" for p in DEFAULT_NODES
                       if p != "/dev/tty")
    path = bundle("sh", "-c", f"echo start; {checks}; echo end >&2",
                  edit=devices([DENY_ALL], nodes=list(DEFAULT_NODES)))
    out, err = run(runtime, path, "dv6")
    assert out == ["start"] + [f"{p}-denied" for p in DEFAULT_NODES if p != "/dev/tty"], (out, err)
    assert err.strip().splitlines()[-1] == "end"


def test_wildcard_major_and_minor_rules(runtime, bundle):
    # /dev/zero (1:5) may be read through `c *:5 r` and written through `c 1:* w`;
    # /dev/full (1:7) only written: a write reaches the device (ENOSPC), a read is refused.
    edit = devices([DENY_ALL, {"allow": True, "type": "c", "minor": 5, "access": "r"},
                    {"allow": True, "type": "c", "major": 1, "access": "w"}],
                   nodes=["/dev/zero", "/dev/full"])
    path = bundle("sh", "-c", "head -c 1 /dev/zero | wc -c; echo x > /dev/zero && echo zero-w; "
                  "echo x > /dev/full || echo full-w-failed; head -c 1 /dev/full || echo full-r-denied",
                  edit=edit)
    out, err = run(runtime, path, "dv7")
    assert out == ["1", "zero-w", "full-w-failed", "full-r-denied"], err
    assert "No space left on device" in err and "Operation not permitted" in err
