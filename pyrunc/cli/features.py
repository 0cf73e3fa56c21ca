"""`pyrunc features`: what this runtime implements, in runtime-spec features.md's JSON.

Only what is really implemented is advertised: callers (containerd's CRI) switch behaviour on
these fields, e.g. recursive read-only mounts only when `mountOptions` has "rro".
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from pyrunc.cli.flags import UsageError

if TYPE_CHECKING:
    from pyrunc.cli.main import Context

USAGE = ""
DESCRIPTION = """   Show the enabled features, as a runtime-spec features.md JSON document.
"""
FLAGS: list[Any] = []


def features() -> dict[str, Any]:
    from pyrunc import OCI_VERSION, __version__, capabilities, mountopts, seccomp
    from pyrunc.cgroups import is_v2_host
    from pyrunc.namespaces import CLONE_FLAGS
    from pyrunc.spec.model import HOOK_PHASES

    v2 = is_v2_host()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_PHASES),
        "mountOptions": sorted(mountopts.KNOWN_MOUNT_OPTIONS),
        "linux": {
            "namespaces": list(CLONE_FLAGS),
            "capabilities": capabilities.known_names(),
            # rdma: rdma.max limits are written (where the host has the rdma controller).
            "cgroup": {"v1": not v2, "v2": v2, "systemd": False, "systemdUser": False,
                       "rdma": True},
            "seccomp": seccomp.features(),
            "memoryPolicy": _memory_policy(),
            "apparmor": {"enabled": True},  # supported (applied where the host runs it)
            "selinux": {"enabled": True},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
        },
        "annotations": {
            "org.opencontainers.runc.version": __version__,
            "org.opencontainers.runc.checkpoint.enabled": "false",
        },
        "potentiallyUnsafeConfigAnnotations": [],
    }


def _memory_policy() -> dict[str, list[str]]:
    from pyrunc.spec.mempolicy import FLAGS, MODES

    return {"modes": sorted(MODES), "flags": sorted(FLAGS)}


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    if args:
        raise UsageError("features takes no arguments")
    sys.stdout.write(json.dumps(features(), indent=4) + "\n")
    return 0
