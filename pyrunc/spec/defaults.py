"""The config.json that `pyrunc spec` writes: runc's default container, with pyrunc's name."""

from __future__ import annotations

import os
from typing import Any

from pyrunc import OCI_VERSION

_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def _default_namespaces() -> tuple[str, ...]:
    """runc's example spec: a cgroup namespace only on a pure cgroup v2 host.

    On a v1 or hybrid host runc leaves it out, and configs written from that spec add their own;
    a default that already had one would make them fail as a duplicate namespace.
    """
    base = ("pid", "network", "ipc", "uts", "mount")
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return (*base, "cgroup")
    return base


def default_config(rootless: bool = False) -> dict[str, Any]:
    """A minimal, safe container: `sh` on a terminal, read-only root, new namespaces.

    With rootless=True: a user namespace mapping the caller's uid/gid to root, no network
    namespace, sysfs bind-mounted (an unprivileged user may not mount a new one).
    """
    config: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            # runc 1.5's example: no ambient set (raising it would fail without inheritable,
            # which runc then warns about).
            "capabilities": {name: list(_DEFAULT_CAPS)
                             for name in ("bounding", "permitted", "effective")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyrunc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in _default_namespaces()],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
    if rootless:
        make_rootless(config)
    return config


def make_rootless(config: dict[str, Any]) -> None:
    """Adapt a default config for a user without privileges (what `spec --rootless` writes)."""
    linux = config["linux"]
    linux.pop("resources", None)
    # No network namespace (nothing could wire it up) and exactly one, new, user namespace.
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] not in ("network",
                                                                                 "user")]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    for mount in config["mounts"]:
        if mount["destination"] == "/sys":
            mount.update(type="none", source="/sys",
                         options=["rbind", "nosuid", "noexec", "nodev", "ro"])
        else:
            # uid=/gid= name host ids (devpts' gid=5 is the tty group) that are not mapped.
            mount["options"] = [o for o in mount.get("options", [])
                                if not o.startswith(("uid=", "gid="))]
