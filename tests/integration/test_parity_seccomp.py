"""Seccomp compared with runc: the -ENOSYS stub and the flags --debug reports.

The stub test runs the host's Python inside the container (the host's /usr bound read-only
over the busybox rootfs) to issue raw system calls by number.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from runc_compare import both, needs_runc, runc  # noqa: F401 - runc is a fixture

from pyrunc_testing import needs_root

#: The system's Python, under /usr (which the container gets read-only).
PYTHON = "/usr/bin/python3"

pytestmark = [needs_root, needs_runc, pytest.mark.integration,
              pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 numbers"),
              pytest.mark.skipif(not os.access(PYTHON, os.X_OK), reason="no /usr/bin/python3")]

#: Calls issued in the container (x86_64 numbers) with arguments that fail harmlessly:
#: mkdir(NULL) is EFAULT when allowed; process_madvise(-1, …) is EBADF when allowed.
PROBE = ("import ctypes\n"
         "libc = ctypes.CDLL(None, use_errno=True)\n"
         "def call(nr):\n"
         "    return 0 if libc.syscall(nr, -1, 0, 0, 0, 0) >= 0 else ctypes.get_errno()\n"
         "print(call(83), call(440), call(334))\n")


def _allow_everything_below(limit: int, *, except_: tuple[str, ...]) -> list[str]:
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    names = []
    for nr in range(limit):
        ptr = lib.seccomp_syscall_resolve_num_arch(0, nr)
        if ptr:
            name = ctypes.string_at(ptr).decode()
            if name not in except_:
                names.append(name)
    return names


def _python_rootfs(config: dict[str, Any], bundle_dir: Path) -> None:
    rootfs = bundle_dir / "rootfs"
    for link in ("lib", "lib64"):
        if os.path.islink(f"/{link}") and not (rootfs / link).exists():
            (rootfs / link).symlink_to(os.readlink(f"/{link}"))
    config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                             "options": ["rbind", "ro"]})


@pytest.mark.skipif(not os.path.islink("/lib64"), reason="needs a merged-/usr host")
def test_calls_newer_than_the_profile_get_enosys_as_with_runc(runtime, runc, bundle,
                                                            cgroup_path):
    """Default EPERM; every call below 400 allowed except mkdir: mkdir is EPERM (the default),
    process_madvise (440, newer than all named) is ENOSYS, rseq (334, allowed) runs."""
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
               "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": _allow_everything_below(400, except_=("mkdir",)),
                             "action": "SCMP_ACT_ALLOW"}]}

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["seccomp"] = profile
        config["process"]["env"].append("PYTHONDONTWRITEBYTECODE=1")

    ours, theirs = both(runtime, runc, bundle, cgroup_path, PYTHON, "-S", "-c", PROBE,
                        edit=edit)
    outputs = []
    for rt, b in ((runtime, ours), (runc, theirs)):
        config = json.loads((b / "config.json").read_text())
        _python_rootfs(config, b)
        (b / "config.json").write_text(json.dumps(config))
        outputs.append(rt("run", "-b", str(b), "enosys").stdout.split())
    # rseq(-1, 0, …) is EINVAL: it ran.
    assert outputs[0] == [str(errno.EPERM), str(errno.ENOSYS), str(errno.EINVAL)]
    assert outputs[0] == outputs[1]


def test_permissive_default_gets_no_stub(runtime, bundle):
    """runc: no stub when the default action allows (or logs, or traces)."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["seccomp"] = profile
        _python_rootfs(config, b)

    b = bundle(PYTHON, "-S", "-c", PROBE)
    config = json.loads((b / "config.json").read_text())
    edit(config)
    (b / "config.json").write_text(json.dumps(config))
    assert runtime("run", "-b", str(b), "allow").stdout.split()[:2] == [
        str(errno.EPERM), str(errno.EBADF)]


def _flags_logged(runtime, b: Path, log_file: Path) -> list[str]:
    runtime("run", "-b", str(b), "fl", global_args=("--debug", "--log", str(log_file),
                                                    "--log-format", "json"))
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    return [r["msg"] for r in records if r["msg"].startswith("seccomp filter flags:")]


@pytest.mark.parametrize("flags, value", [
    (None, "default"), ([], 0), (["SECCOMP_FILTER_FLAG_TSYNC"], 0),
    (["SECCOMP_FILTER_FLAG_LOG"], 2), (["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"], 6),
], ids=str)
def test_debug_logs_the_seccomp_flags_as_runc_1_5(runtime, bundle, tmp_path, flags, value):
    """runc 1.5 (patchbpf sysSeccompSetFilter; tests/integration/seccomp.bats): one debug line
    `seccomp filter flags: N`; TSYNC counts 0; without `flags` SPEC_ALLOW (4) when supported.
    runc 1.1.5 does not log them."""
    from pyrunc import seccomp

    profile: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    if flags is not None:
        profile["flags"] = flags
    if value == "default":
        value = 4 if "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in seccomp.features()["supportedFlags"] else 0
    b = bundle("sh", "-c", "mkdir /tmp/x 2>&1 || true",
               edit=lambda c: c["linux"].update(seccomp=profile))
    assert _flags_logged(runtime, b, tmp_path / "log.json") == [f"seccomp filter flags: {value}"]
