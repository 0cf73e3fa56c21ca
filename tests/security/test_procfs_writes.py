"""The runtime's own /proc writes inside a container go to the kernel, never to the image's files
(the CVE-2025-52881 class).

The config mounts no procfs, and the image's /proc is a directory with a fake sys/ tree of
regular files (or a symlink to one): a runtime that wrote sysctls by opening "/proc/sys/..." in
the container would write those files. pyrunc writes through its own procfs instance, so the
kernel's value changes (read back from the host, inside the container's namespaces) and the
image's files keep their content.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pyrunc_testing import needs_root

pytestmark = [needs_root, pytest.mark.integration]

_SYSCTLS = {
    # key: (value written, namespace to read it back in, the /proc file)
    "net.ipv4.ip_forward": ("1", "--net", "sys/net/ipv4/ip_forward"),
    "kernel.domainname": ("pyrunc-sysctl.test", "--uts", "sys/kernel/domainname"),
}


def _plant_fake_proc(rootfs: Path, style: str) -> list[Path]:
    """A fake /proc/sys with sentinel files; returns the sentinels."""
    proc = rootfs / "proc"
    if proc.is_symlink() or proc.is_file():
        proc.unlink()
    elif proc.exists():
        proc.rmdir()
    fake = rootfs / ("fakeproc" if style == "symlink" else "proc")
    sentinels = []
    for _, _, relative in _SYSCTLS.values():
        path = fake / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("sentinel\n")
        sentinels.append(path)
    if style == "symlink":
        proc.symlink_to("/fakeproc")
    return sentinels


def _read_in_namespace(pid: int, ns_flag: str, relative: str) -> str:
    """The kernel's value of a /proc file as a process in the container's namespace sees it."""
    ns = {"--net": "net", "--uts": "uts"}[ns_flag]
    out = subprocess.run(["nsenter", f"{ns_flag}=/proc/{pid}/ns/{ns}", "cat",
                          f"/proc/{relative}"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("style", ["fake-tree", "symlink"])
def test_cve_2025_52881_sysctls_reach_the_kernel_not_the_images_fake_proc(
        runtime, bundle, style):
    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
        config["linux"]["maskedPaths"] = []
        config["linux"]["readonlyPaths"] = []
        config.pop("hostname", None)
        namespaces = {ns["type"] for ns in config["linux"]["namespaces"]}
        for ns in ("network", "uts"):
            if ns not in namespaces:
                config["linux"]["namespaces"].append({"type": ns})
        config["linux"]["sysctl"] = {key: value for key, (value, _, _) in _SYSCTLS.items()}

    b = bundle("true", edit=edit)
    sentinels = _plant_fake_proc(b / "rootfs", style)
    result = runtime("create", "-b", str(b), f"sysctl-{style}", check=False)
    try:
        assert [s.read_text() for s in sentinels] == ["sentinel\n"] * len(sentinels), result
        assert result.returncode == 0, result.stderr
        pid = runtime.state(f"sysctl-{style}")["pid"]
        for value, ns_flag, relative in _SYSCTLS.values():
            assert _read_in_namespace(pid, ns_flag, relative) == value, relative
    finally:
        runtime("delete", "--force", f"sysctl-{style}", check=False)
