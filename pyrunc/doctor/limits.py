"""What will limit every container on this host, whatever its config says: capabilities missing
from the bounding set (no process below can ever get them back) and hard resource limits that
the runtime cannot raise.
"""

from __future__ import annotations

import errno
import resource

from pyrunc.doctor import Finding, finding
from pyrunc.doctor.child import in_child

_AREA = "limits"

#: What a container loses without a capability, for the ones people meet.
CONSEQUENCES = {
    "CAP_SYS_RESOURCE": "process.rlimits above the host's hard limits fail with EPERM",
    "CAP_SYS_ADMIN": "no mounts, no namespaces, no seccomp without no_new_privs",
    "CAP_NET_ADMIN": "containers cannot configure their network devices",
    "CAP_NET_RAW": "no raw sockets (ping) in containers",
    "CAP_SYS_PTRACE": "no ptrace or /proc/<pid>/mem of other processes",
    "CAP_MKNOD": "device nodes cannot be created in the rootfs",
    "CAP_SETUID": "process.user.uid cannot be changed",
    "CAP_SETGID": "process.user.gid and additionalGids cannot be set",
    "CAP_SETPCAP": "capability sets cannot be dropped or raised",
    "CAP_SYS_CHROOT": "no chroot in containers",
    "CAP_BPF": "eBPF programs (the cgroup v2 device filter) need CAP_SYS_ADMIN instead",
}

#: The rlimits of runtime-spec's process.rlimits that resource knows, by their OCI names.
RLIMITS = {name: getattr(resource, name) for name in (
    "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_MEMLOCK", "RLIMIT_STACK", "RLIMIT_CORE",
    "RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS", "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_CPU",
    "RLIMIT_RSS") if hasattr(resource, name)}

#: podman's default RLIMIT_NOFILE for containers (when no --ulimit is given).
PODMAN_NOFILE = 1048576


def capability_findings() -> list[Finding]:
    """The bounding set line, then one line per missing capability."""
    from pyrunc import capabilities

    bounding = capabilities.bounding_set()
    top = capabilities.last_cap()
    missing = [capabilities.name_of(cap) for cap in range(top + 1) if not bounding >> cap & 1]
    data = {"bounding": f"{bounding:016x}", "lastCap": top, "missing": missing}
    if not missing:
        out = [finding("capabilities.bounding", _AREA, True,
                       f"all {top + 1} capabilities are in the bounding set ({bounding:016x})",
                       **data)]
    else:
        out = [finding("capabilities.bounding", _AREA, False,
                       f"missing from the bounding set ({bounding:016x}): {', '.join(missing)}; "
                       "no container can hold them", **data)]
    for name in missing:
        why = "not in the bounding set"
        if name in CONSEQUENCES:
            why += f": {CONSEQUENCES[name]}"
        out.append(finding(f"capability.{name}", _AREA, False, why))
    return out


def _raise_each(finite: dict[str, tuple[int, int]]) -> str:
    """In a child: try to set each hard limit one above its current value; report per rlimit.

    prlimit, not setrlimit: Python's setrlimit turns EPERM into a ValueError without the errno.
    """
    results = []
    for name, (soft, hard) in finite.items():
        try:
            resource.prlimit(0, RLIMITS[name], (soft, hard + 1))
            results.append(f"{name}=0")
        except OSError as exc:
            results.append(f"{name}={exc.errno}")
        except ValueError:
            results.append(f"{name}={errno.EINVAL}")
    return " ".join(results)


def _nr_open() -> int | None:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def rlimit_findings() -> list[Finding]:
    """One line per rlimit with a finite hard limit: can a container get more than that?"""
    current = {name: resource.getrlimit(r) for name, r in RLIMITS.items()}
    finite = {name: lim for name, lim in current.items() if lim[1] != resource.RLIM_INFINITY}
    outcome = in_child(lambda: _raise_each(finite))
    raised: dict[str, int] = {}
    if outcome.ok:
        for item in outcome.text.split():
            name, _, value = item.partition("=")
            raised[name] = int(value)
    out: list[Finding] = []
    for name, (soft, hard) in finite.items():
        code = raised.get(name, errno.EIO)
        data = {"soft": soft, "hard": hard}
        if code == 0:
            why = f"hard limit {hard}, and a child could raise it"
            if name == "RLIMIT_NOFILE" and (nr_open := _nr_open()) is not None:
                why += f" (up to fs.nr_open = {nr_open})"
            out.append(finding(f"rlimit.{name}", _AREA, True, why, **data))
            continue
        errname = errno.errorcode.get(code, str(code))
        why = (f"hard limit {hard}: raising it in a child failed with {errname}, so a container "
               f"asking for more than {hard} fails")
        if name == "RLIMIT_NOFILE" and hard < PODMAN_NOFILE:
            why += f" (podman asks for {PODMAN_NOFILE} unless given --ulimit nofile=...)"
        out.append(finding(f"rlimit.{name}", _AREA, False, why, **data))
    if not finite:
        out.append(finding("rlimit.all", _AREA, True, "every hard limit is unlimited"))
    return out


def all_limits() -> list[Finding]:
    return capability_findings() + rlimit_findings()

