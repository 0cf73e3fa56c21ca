"""A container's cgroup statistics, in the JSON shape of `runc events` (its types/events.go).

containerd's shim and go-runc decode this object, so every key is spelled as runc spells it, keys
are emitted in runc's order, and a field is left out exactly where runc leaves it out (its
`omitempty` / `omitzero` tags): `read_stats(paths)` returns the `data` object of a stats event.

The values come from the same files runc reads:
  * cgroup v1: cpu.stat (throttling), cpuacct.* (usage), cpuset.*, memory.* (usage, memsw, kmem,
    kmem.tcp, memory.stat), pids.*, blkio.* (the first complete group of bfq / cfq / throttle files,
    in runc's order), hugetlb.<size>.*;
  * cgroup v2: cpu.stat, memory.{current,max,peak,stat}, memory.swap.*, io.stat, pids.* (or the
    number of lines in cgroup.procs), hugetlb.<size>.{current,events}, and the *.pressure files.
A file the kernel does not offer (controller not mounted, feature not built) leaves its fields out;
a cgroup directory that is gone is an error.
"""

from __future__ import annotations

import errno
import os

from pyrunc.cgroups import CREATED_KEY, UNIFIED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: What the kernel's "max" (no limit) reads as in runc's uint64 fields.
MAX_UINT64 = (1 << 64) - 1
_NS_PER_SEC = 1_000_000_000


class StatsError(RuntimeError):
    """The container's cgroup cannot be read (gone, or a file in a form runc would reject)."""


# --- reading files -------------------------------------------------------------------------------

def _read(directory: str, name: str) -> str | None:
    """The file's text, stripped; None when the file does not exist."""
    try:
        with open(os.path.join(directory, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def parse_uint(text: str) -> int:
    """runc's cgroup integer: "max" is the largest uint64, a negative number reads as 0."""
    if text == "max":
        return MAX_UINT64
    value = int(text)
    return max(value, 0)


def _uint(directory: str, name: str) -> int | None:
    text = _read(directory, name)
    if text is None:
        return None
    try:
        return parse_uint(text)
    except ValueError:
        raise StatsError(f"unable to parse {os.path.join(directory, name)}: {text!r}") from None


def _key_values(directory: str, name: str) -> dict[str, int] | None:
    """A flat-keyed file ("key value" per line, like memory.stat) as a dict; None if missing."""
    text = _read(directory, name)
    if text is None:
        return None
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = parse_uint(value.strip())
        except ValueError:
            raise StatsError(f"unable to parse {os.path.join(directory, name)}: line {line!r} is "
                             "not in \"key value\" format") from None
    return out


def _psi(directory: str, name: str) -> dict[str, Any] | None:
    """A *.pressure file as {"some": {...}, "full": {...}} (a missing line is left out).

    None when there is no such file, or when the kernel has PSI switched off (EOPNOTSUPP).
    """
    try:
        text = _read(directory, name)
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            return None
        raise
    if not text:
        return None
    psi: dict[str, Any] = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        if kind not in ("some", "full"):
            continue
        data: dict[str, Any] = {"avg10": 0, "avg60": 0, "avg300": 0, "total": 0}
        for field in fields:
            key, _, value = field.partition("=")
            if key == "total":
                data["total"] = int(value)
            elif key in data:
                number = float(value)
                data[key] = int(number) if number.is_integer() else number
        if any(data.values()):
            psi[kind] = data
    return {k: psi[k] for k in ("some", "full") if k in psi}


def hugepage_sizes(sysfs: str = "/sys/kernel/mm/hugepages") -> list[str]:
    """The host's huge page sizes as the cgroup files name them: 2MB, 1GB, 64KB, ..."""
    sizes = []
    try:
        names = os.listdir(sysfs)
    except OSError:
        return []
    for name in sorted(names):
        if not (name.startswith("hugepages-") and name.endswith("kB")):
            continue
        try:
            kib = int(name[len("hugepages-"):-2])
        except ValueError:
            continue
        if kib >= 1 << 20:
            sizes.append(f"{kib >> 20}GB")
        elif kib >= 1 << 10:
            sizes.append(f"{kib >> 10}MB")
        else:
            sizes.append(f"{kib}KB")
    return sizes


def cpu_list(text: str) -> list[int]:
    """"0-2,7" -> [0, 1, 2, 7] (cpuset.cpus / cpuset.mems)."""
    out: list[int] = []
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if dash:
            out.extend(range(int(low), int(high) + 1))
        elif part:
            out.append(int(part))
    return out


# --- the JSON shape ------------------------------------------------------------------------------

def _omit_empty(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Drop `keys` whose value is 0, "", [], {} or None (Go's omitempty / omitzero)."""
    return {k: v for k, v in d.items() if k not in keys or v}


def _memory_entry(usage: int = 0, limit: int = 0, max_usage: int = 0,
                  failcnt: int = 0) -> dict[str, Any]:
    return _omit_empty({"limit": limit, "usage": usage, "max": max_usage, "failcnt": failcnt},
                       "usage", "max")


def _is_zero_entry(entry: dict[str, Any]) -> bool:
    return not any(entry.values())


def _blkio_entries(rows: list[tuple[int, int, str, int]]) -> list[dict[str, Any]]:
    return [_omit_empty({"major": major, "minor": minor, "op": op, "value": value},
                        "major", "minor", "op", "value") for major, minor, op, value in rows]


class _Stats:
    """The libcontainer-level numbers, filled in by the v1 or v2 reader, then shaped for JSON."""

    def __init__(self) -> None:
        self.cpu_total = 0
        self.percpu: list[int] | None = None
        self.percpu_kernel: list[int] | None = None
        self.percpu_user: list[int] | None = None
        self.cpu_kernel = 0
        self.cpu_user = 0
        self.throttling = (0, 0, 0)
        self.cpu_psi: dict[str, Any] | None = None
        self.cpuset: dict[str, Any] = {}
        self.memory_cache = 0
        self.memory: dict[str, tuple[int, int, int, int]] = {}  # name -> usage, limit, max, failcnt
        self.memory_raw: dict[str, int] = {}
        self.memory_psi: dict[str, Any] | None = None
        self.pids = (0, 0)
        self.blkio: dict[str, list[tuple[int, int, str, int]]] = {}
        self.blkio_psi: dict[str, Any] | None = None
        self.hugetlb: dict[str, tuple[int, int, int]] = {}  # size -> usage, max, failcnt

    def to_json(self) -> dict[str, Any]:
        usage = _omit_empty({"total": self.cpu_total, "percpu": self.percpu,
                             "percpu_kernel": self.percpu_kernel, "percpu_user": self.percpu_user,
                             "kernel": self.cpu_kernel, "user": self.cpu_user},
                            "total", "percpu", "percpu_kernel", "percpu_user")
        periods, throttled, throttled_time = self.throttling
        cpu: dict[str, Any] = {}
        if any(usage.values()) or any(v is not None for v in (self.percpu, self.percpu_kernel,
                                                                self.percpu_user)):
            cpu["usage"] = usage
        throttling = _omit_empty({"periods": periods, "throttledPeriods": throttled,
                                  "throttledTime": throttled_time},
                                 "periods", "throttledPeriods", "throttledTime")
        if throttling:
            cpu["throttling"] = throttling
        if self.cpu_psi is not None:
            cpu["psi"] = self.cpu_psi

        cpuset = {"cpus": self.cpuset.get("cpus"), "cpu_exclusive": 0,
                  "mems": self.cpuset.get("mems"), "mem_hardwall": 0, "mem_exclusive": 0,
                  "memory_migrate": 0,
                  "memory_spread_page": 0, "memory_spread_slab": 0, "memory_pressure": 0,
                  "sched_load_balance": 0, "sched_relax_domain_level": 0}
        cpuset.update({k: v for k, v in self.cpuset.items() if k not in ("cpus", "mems")})
        cpuset = _omit_empty(cpuset, "cpus", "mems")

        memory: dict[str, Any] = {}
        if self.memory_cache:
            memory["cache"] = self.memory_cache
        for name in ("usage", "swap", "kernel", "kernelTCP"):
            entry = _memory_entry(*self.memory.get(name, (0, 0, 0, 0)))
            if not _is_zero_entry(entry):
                memory[name] = entry
        if self.memory_raw:
            memory["raw"] = dict(sorted(self.memory_raw.items()))   # Go sorts map keys
        if self.memory_psi is not None:
            memory["psi"] = self.memory_psi

        current, limit = self.pids
        blkio: dict[str, Any] = {}
        for key in ("ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive",
                    "ioServiceTimeRecursive", "ioWaitTimeRecursive", "ioMergedRecursive",
                    "ioTimeRecursive", "sectorsRecursive"):
            if self.blkio.get(key):
                blkio[key] = _blkio_entries(self.blkio[key])
        if self.blkio_psi is not None:
            blkio["psi"] = self.blkio_psi

        return {
            "cpu": cpu,
            "cpuset": cpuset,
            "memory": memory,
            "pids": _omit_empty({"current": current, "limit": limit}, "current", "limit"),
            "blkio": blkio,
            "hugetlb": {size: _omit_empty({"usage": u, "max": m, "failcnt": f}, "usage", "max")
                        for size, (u, m, f) in sorted(self.hugetlb.items())},
            "intel_rdt": {},
            "network_interfaces": None,
        }


# --- cgroup v1 -----------------------------------------------------------------------------------

def _v1_cpu(directory: str, st: _Stats) -> None:
    values = _key_values(directory, "cpu.stat")
    if values is not None:
        st.throttling = (values.get("nr_periods", 0), values.get("nr_throttled", 0),
                         values.get("throttled_time", 0))


def _v1_cpuacct(directory: str, st: _Stats) -> None:
    stat = _read(directory, "cpuacct.stat")
    if stat is None:
        return
    fields = stat.split()
    if len(fields) < 4 or fields[0] != "user" or fields[2] != "system":
        raise StatsError(f"unable to parse {directory}/cpuacct.stat: {stat!r}")
    ticks = os.sysconf("SC_CLK_TCK")
    st.cpu_user = int(fields[1]) * _NS_PER_SEC // ticks
    st.cpu_kernel = int(fields[3]) * _NS_PER_SEC // ticks
    st.cpu_total = _uint(directory, "cpuacct.usage") or 0
    st.percpu = [int(v) for v in (_read(directory, "cpuacct.usage_percpu") or "").split()]
    st.percpu_kernel, st.percpu_user = [], []
    usage_all = _read(directory, "cpuacct.usage_all")
    if usage_all:
        for line in usage_all.splitlines()[1:]:   # header: "cpu user system"
            parts = line.split()
            if len(parts) >= 3:
                st.percpu_user.append(int(parts[1]))
                st.percpu_kernel.append(int(parts[2]))


def _v1_cpuset(directory: str, st: _Stats) -> None:
    for name in ("cpus", "mems"):
        text = _read(directory, f"cpuset.{name}")
        if text:
            st.cpuset[name] = cpu_list(text)
    for name in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                 "memory_spread_page", "memory_spread_slab", "memory_pressure",
                 "sched_load_balance"):
        value = _uint(directory, f"cpuset.{name}")
        if value is not None:
            st.cpuset[name] = value
    level = _read(directory, "cpuset.sched_relax_domain_level")
    if level is not None:
        st.cpuset["sched_relax_domain_level"] = int(level)


def _v1_memory_data(directory: str, prefix: str) -> tuple[int, int, int, int] | None:
    usage = _uint(directory, f"{prefix}.usage_in_bytes")
    if usage is None:
        return None   # memsw / kmem accounting not in this kernel
    return (usage, _uint(directory, f"{prefix}.limit_in_bytes") or 0,
            _uint(directory, f"{prefix}.max_usage_in_bytes") or 0,
            _uint(directory, f"{prefix}.failcnt") or 0)


def _v1_memory(directory: str, st: _Stats) -> None:
    raw = _key_values(directory, "memory.stat")
    if raw is None:
        return
    st.memory_raw = raw
    st.memory_cache = raw.get("cache", 0)
    for name, prefix in (("usage", "memory"), ("swap", "memory.memsw"), ("kernel", "memory.kmem"),
                         ("kernelTCP", "memory.kmem.tcp")):
        data = _v1_memory_data(directory, prefix)
        if data is not None:
            st.memory[name] = data


def _v1_pids(directory: str, st: _Stats) -> None:
    current = _uint(directory, "pids.current")
    if current is None:
        return
    limit = _uint(directory, "pids.max") or 0
    st.pids = (current, 0 if limit == MAX_UINT64 else limit)


def _blkio_rows(directory: str, name: str) -> list[tuple[int, int, str, int]] | None:
    """One blkio stat file as (major, minor, op, value) rows; None if missing or empty."""
    text = _read(directory, name)
    if not text:
        return None
    rows = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) == 2 and fields[0] == "Total":
            continue
        if len(fields) < 3:
            raise StatsError(f"unable to parse {directory}/{name}: {line!r}")
        op, value = (fields[2], fields[3]) if len(fields) == 4 else ("", fields[2])
        rows.append((int(fields[0]), int(fields[1]), op, int(value)))
    return rows


# runc reads the first group whose first file has data, in this order (bfq with debug stats,
# bfq, cfq, throttle recursive, throttle), each file filling one list.
_BLKIO_GROUPS: list[list[tuple[str, str]]] = [
    [("blkio.bfq.sectors_recursive", "sectorsRecursive"),
     ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.bfq.time_recursive", "ioTimeRecursive"),
     ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.sectors_recursive", "sectorsRecursive"),
     ("blkio.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.time_recursive", "ioTimeRecursive"),
     ("blkio.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("blkio.throttle.io_serviced", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive")],
]


def _v1_blkio(directory: str, st: _Stats) -> None:
    for group in _BLKIO_GROUPS:
        for i, (name, key) in enumerate(group):
            rows = _blkio_rows(directory, name)
            if rows is None:
                if i == 0:
                    break          # this group is not there: try the next one
                return             # a group only partly there: runc stops with what it has
            st.blkio[key] = rows
        else:
            return


def _v1_hugetlb(directory: str, st: _Stats) -> None:
    for size in hugepage_sizes():
        prefix = f"hugetlb.{size}.rsvd"
        usage = _uint(directory, f"{prefix}.usage_in_bytes")
        if usage is None:
            prefix = f"hugetlb.{size}"
            usage = _uint(directory, f"{prefix}.usage_in_bytes")
            if usage is None:
                continue
        st.hugetlb[size] = (usage, _uint(directory, f"{prefix}.max_usage_in_bytes") or 0,
                            _uint(directory, f"{prefix}.failcnt") or 0)


_V1_READERS: list[tuple[str, Callable[[str, _Stats], None]]] = [
    ("cpu", _v1_cpu), ("cpuacct", _v1_cpuacct), ("cpuset", _v1_cpuset), ("memory", _v1_memory),
    ("pids", _v1_pids), ("blkio", _v1_blkio), ("hugetlb", _v1_hugetlb),
]


# --- cgroup v2 -----------------------------------------------------------------------------------

def _v2_memory_data(directory: str, prefix: str) -> tuple[int, int, int, int] | None:
    usage = _uint(directory, f"{prefix}.current")
    if usage is None:
        return None
    return (usage, _uint(directory, f"{prefix}.max") or 0, _uint(directory, f"{prefix}.peak") or 0,
            0)


def _v2(directory: str, st: _Stats) -> None:
    current = _uint(directory, "pids.current")
    if current is not None:
        limit = _uint(directory, "pids.max") or 0
        st.pids = (current, 0 if limit == MAX_UINT64 else limit)
    else:
        st.pids = (len((_read(directory, "cgroup.procs") or "").split()), 0)

    raw = _key_values(directory, "memory.stat")
    if raw is not None:
        st.memory_raw = raw
        st.memory_cache = raw.get("file", 0)
        usage = _v2_memory_data(directory, "memory")
        if usage is not None:
            st.memory["usage"] = usage
            swap_usage, swap_limit, _, _ = _v2_memory_data(directory, "memory.swap") or (0, 0, 0, 0)
            # runc's "swap" is memory + swap, with a limit of both unless swap is unlimited.
            if swap_limit != MAX_UINT64:
                swap_limit = (swap_limit + usage[1]) & MAX_UINT64
            st.memory["swap"] = (swap_usage + usage[0], swap_limit, 0, 0)
    st.memory_psi = _psi(directory, "memory.pressure")

    io = _read(directory, "io.stat")
    if io is not None:
        ops = {"rbytes": ("Read", "ioServiceBytesRecursive"),
               "wbytes": ("Write", "ioServiceBytesRecursive"),
               "rios": ("Read", "ioServicedRecursive"), "wios": ("Write", "ioServicedRecursive")}
        for line in io.splitlines():
            device, *items = line.split()
            major, sep, minor = device.partition(":")
            if not sep:
                continue
            for item in items:
                key, _, value = item.partition("=")
                if key in ops:
                    op, table = ops[key]
                    st.blkio.setdefault(table, []).append((int(major), int(minor), op, int(value)))
    st.blkio_psi = _psi(directory, "io.pressure")

    cpu = _key_values(directory, "cpu.stat")
    if cpu is not None:
        st.cpu_total = cpu.get("usage_usec", 0) * 1000
        st.cpu_user = cpu.get("user_usec", 0) * 1000
        st.cpu_kernel = cpu.get("system_usec", 0) * 1000
        st.throttling = (cpu.get("nr_periods", 0), cpu.get("nr_throttled", 0),
                         cpu.get("throttled_usec", 0) * 1000)
    st.cpu_psi = _psi(directory, "cpu.pressure")

    for size in hugepage_sizes():
        usage_h = _uint(directory, f"hugetlb.{size}.rsvd.current")
        if usage_h is None:
            usage_h = _uint(directory, f"hugetlb.{size}.current")
            if usage_h is None:
                continue
        events = _key_values(directory, f"hugetlb.{size}.events") or {}
        st.hugetlb[size] = (usage_h, 0, events.get("max", 0))


# --- entry point ---------------------------------------------------------------------------------

def read_stats(paths: dict[str, str]) -> dict[str, Any]:
    """The `data` of a `runc events` stats event for the cgroup a container state records.

    `paths` is `CgroupManager.paths()`: only the unified key means the v2 driver; otherwise the v1
    controllers are read (on a hybrid host the cgroup2 directory holds no controller runc reads).
    """
    hierarchies = {k: v for k, v in paths.items() if k != CREATED_KEY}
    st = _Stats()
    if set(hierarchies) == {UNIFIED}:
        directory = hierarchies[UNIFIED]
        _require(directory)
        _v2(directory, st)
        return st.to_json()
    found = False
    for controller, reader in _V1_READERS:
        controller_dir = hierarchies.get(controller)
        if controller_dir and os.path.isdir(controller_dir):
            found = True
            reader(controller_dir, st)
    if not found:
        raise StatsError("unable to get container cgroup stats: the container's cgroup is gone")
    return st.to_json()


def _require(directory: str) -> None:
    if not os.path.isdir(directory):
        raise StatsError(f"unable to get container cgroup stats: {directory}: no such cgroup")
