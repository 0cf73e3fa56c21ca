"""`pyrunc update`: change a running container's resource limits (runc's flags and -r JSON)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pyrunc.cli.flags import Flag, container_id_arg
from pyrunc.container.state import ContainerError

if TYPE_CHECKING:
    from pyrunc.cli.main import Context

USAGE = "[command options] <container-id>"
DESCRIPTION = """\
   Change the cgroup limits of a running, created or paused container and record them in
   its state. Either give a LinuxResources JSON object with --resources FILE (or - for stdin),
   the form containerd and podman send, or set single values with the flags below; with
   --resources the other flags are ignored. Only the values given change. Memory sizes take
   units as in 512m or 1g (powers of 1024); -1 means unlimited.
"""
FLAGS = [
    Flag("resources, r", "str", help="LinuxResources JSON file to apply, or - for stdin"),
    Flag("blkio-weight", "int", help="block IO weight of the cgroup, 10 to 1000"),
    Flag("cpu-period", "str", help="CPU CFS period in microseconds (0: system default)"),
    Flag("cpu-quota", "str", help="CPU CFS quota in microseconds per period"),
    Flag("cpu-burst", "str", help="CPU CFS burst in microseconds"),
    Flag("cpu-share, cpu-shares", "str", help="CPU shares (weight against other cgroups)"),
    Flag("cpu-rt-period", "str", help="realtime period in microseconds (0: system default)"),
    Flag("cpu-rt-runtime", "str", help="realtime runtime in microseconds per period"),
    Flag("cpuset-cpus", "str", help="CPUs the container may run on (0-3,7)"),
    Flag("cpuset-mems", "str", help="memory nodes the container may use"),
    Flag("cpu-idle", "str", help="1: run the cgroup as SCHED_IDLE, 0: normally"),
    Flag("kernel-memory", "str", hidden=True),
    Flag("kernel-memory-tcp", "str", hidden=True),
    Flag("memory", "str", help="memory limit in bytes (units allowed, -1: unlimited)"),
    Flag("memory-reservation", "str", help="memory soft limit in bytes"),
    Flag("memory-swap", "str", help="memory plus swap limit in bytes (-1: unlimited swap)"),
    Flag("pids-limit", "str", help="most processes the container may have"),
    Flag("l3-cache-schema", "str", help="Intel RDT L3 cache schema (needs resctrl)"),
    Flag("mem-bw-schema", "str", help="Intel RDT memory bandwidth schema (needs resctrl)"),
]

_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """A memory size as docker's go-units RAMInBytes reads it: "512m", "1.5GiB", "1024", "2 kb".

    The units are powers of 1024 (k, m, g, t, p, optionally followed by b or ib, any case).
    """
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep < 0:
        raise ValueError(f"invalid size: '{text}'")
    if text[sep] == " ":
        number, suffix = text[:sep], text[sep + 1:]
    else:
        number, suffix = text[:sep + 1], text[sep + 1:]
    try:
        if "_" in number:
            raise ValueError
        size = float(number)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": invalid syntax') from None
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    lowered = suffix.lower()
    if len(lowered) <= 3:
        if lowered == "b":
            return int(size)
        if lowered[0] in _BINARY and lowered[1:] in ("", "b", "ib"):
            return int(size * _BINARY[lowered[0]])
    raise ValueError(f"invalid suffix: '{lowered if len(suffix) <= 3 else suffix}'")


def _uint(name: str, text: str) -> int:
    if not text.isdigit() or int(text) >= 1 << 64:
        raise ContainerError(f'invalid value for {name}: strconv.ParseUint: parsing "{text}": '
                             "invalid syntax")
    return int(text)


def _int(name: str, text: str) -> int:
    body = text[1:] if text[:1] in "+-" else text
    if not body.isdigit() or not -(1 << 63) <= int(text) < 1 << 63:
        raise ContainerError(f'invalid value for {name}: strconv.ParseInt: parsing "{text}": '
                             "invalid syntax")
    return int(text)


def resources_from_flags(opts: dict[str, Any]) -> dict[str, Any]:
    """The LinuxResources object the flags describe (only the flags given)."""
    memory: dict[str, Any] = {}
    cpu: dict[str, Any] = {}
    out: dict[str, Any] = {}
    if opts["blkio_weight"]:
        out["blockIO"] = {"weight": opts["blkio_weight"]}
    for flag, key in (("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):
        if opts[flag]:
            cpu[key] = opts[flag]
    if opts["cpu_idle"]:
        cpu["idle"] = _int("cpu-idle", opts["cpu_idle"])
    for flag, key in (("cpu_burst", "burst"), ("cpu_period", "period"),
                      ("cpu_rt_period", "realtimePeriod"), ("cpu_share", "shares")):
        if opts[flag]:
            cpu[key] = _uint(flag.replace("_", "-"), opts[flag])
    for flag, key in (("cpu_quota", "quota"), ("cpu_rt_runtime", "realtimeRuntime")):
        if opts[flag]:
            cpu[key] = _int(flag.replace("_", "-"), opts[flag])
    for flag, key in (("memory", "limit"), ("memory_swap", "swap"), ("kernel_memory", "kernel"),
                      ("kernel_memory_tcp", "kernelTCP"), ("memory_reservation", "reservation")):
        value = opts[flag]
        if value:
            try:
                memory[key] = -1 if value == "-1" else ram_in_bytes(value)
            except ValueError as exc:
                raise ContainerError(f"invalid value for {flag.replace('_', '-')}: {exc}") from None
    if opts["pids_limit"]:
        out["pids"] = {"limit": _int("pids-limit", opts["pids_limit"])}
    if memory:
        out["memory"] = memory
    if cpu:
        out["cpu"] = cpu
    return out


def resources_from_file(source: str) -> dict[str, Any]:
    """--resources FILE or - (stdin): one LinuxResources JSON object."""
    import json

    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source) as f:
                text = f.read()
    except OSError as exc:
        raise ContainerError(f"open {source}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ContainerError(f"update: {source}: invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ContainerError(f"update: {source}: the resources must be a JSON object")
    return value


def _resctrl_mounted() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.partition(" - ")[2].startswith("resctrl ") for line in f)


def _check_intel_rdt(opts: dict[str, Any]) -> None:
    """runc's order of refusals for --l3-cache-schema / --mem-bw-schema."""
    if not (opts["l3_cache_schema"] or opts["mem_bw_schema"]):
        return
    if not _resctrl_mounted():
        if opts["l3_cache_schema"]:
            raise ContainerError("Intel RDT/CAT: l3 cache schema is not enabled")
        raise ContainerError("Intel RDT/MBA: memory bandwidth schema is not enabled")
    raise ContainerError("updating Intel RDT schemas is not implemented in pyrunc")


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import update

    container_id = container_id_arg(args, "update")
    if opts["resources"]:
        resources = resources_from_file(opts["resources"])
    else:
        resources = resources_from_flags(opts)
    _check_intel_rdt(opts)
    update.update(ctx.root, container_id, resources)
    return 0

