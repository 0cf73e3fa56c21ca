"""A typed view of `linux.resources` (cgroup limits), validated once at the edge.

The cgroup drivers receive these objects instead of the raw JSON, so a limit is either modelled
(and applied) or refused; nothing is silently dropped.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from pyrunc.records import NamedTuple



class DeviceRule(NamedTuple):
    """One `linux.resources.devices[]` entry: allow or deny access to a class of devices.

    `type` is "a" (all), "c" or "b"; `major`/`minor` of -1 mean "any" (the config's absent field,
    runc's wildcard); `access` is a subset of "rwm".
    """

    allow: bool
    type: str = "a"
    major: int = -1
    minor: int = -1
    access: str = "rwm"


class ResourcesError(ValueError):
    """A `linux.resources` value pyrunc cannot use; `str()` is one line starting with its JSON
    pointer, e.g. `/linux/resources/cpu/cpus: "0-x" is not a cpu list`."""


INT64 = (-(2**63), 2**63 - 1)
UINT64 = (0, 2**64 - 1)
UINT32 = (0, 2**32 - 1)
UINT16 = (0, 2**16 - 1)

#: memory.swappiness of 2^64-1 is how a Go runtime spells -1 ("leave it as it is") in a uint64.
SWAPPINESS_UNSET = 2**64 - 1

_PAGE_SIZE = r"[1-9][0-9]*[KMG]B"
#: (Patterns as strings: `re` is imported only when a config has these fields.)
#: One item of a kernel cpu/node list: N, N-M or N-M:used/group (see bitmap_parselist()).
_LIST_ITEM = r"([0-9]+)(?:-([0-9]+)(?::([0-9]+)/([0-9]+))?)?"


class Memory(NamedTuple):
    """`memory`: byte limits (-1 = unlimited, None = not set) and switches."""

    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool | None = None
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


class CPU(NamedTuple):
    """`cpu`: CFS shares/quota/period/burst, RT runtime/period, cpuset lists, SCHED_IDLE."""

    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


class Pids(NamedTuple):
    """`pids`: the task limit; negative means unlimited ("max"); runc writes 0 as 1."""

    limit: int | None = None


class WeightDevice(NamedTuple):
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None


class ThrottleDevice(NamedTuple):
    major: int
    minor: int
    rate: int


class BlockIO(NamedTuple):
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[WeightDevice, ...] = ()
    throttle_read_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_iops_device: tuple[ThrottleDevice, ...] = ()

    def is_empty(self) -> bool:
        return self == BlockIO()


class HugepageLimit(NamedTuple):
    """`hugepageLimits[]`: `page_size` as the cgroup file names spell it ("2MB", "1GB")."""

    page_size: str
    limit: int


class NetPriority(NamedTuple):
    name: str
    priority: int


class Network(NamedTuple):
    class_id: int | None = None
    priorities: tuple[NetPriority, ...] = ()


class Rdma(NamedTuple):
    hca_handles: int | None = None
    hca_objects: int | None = None


class Resources(NamedTuple):
    """The whole of `linux.resources` (runtime-spec 1.3.0); absent parts are None or empty."""

    devices: tuple[DeviceRule, ...] = ()
    memory: Memory | None = None
    cpu: CPU | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = None
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    network: Network | None = None
    rdma: dict[str, Rdma] = {}       # device name -> limits; never mutated
    unified: dict[str, str] = {}     # cgroup v2 file name -> value; never mutated

    @classmethod
    def from_json(cls, d: Any, pointer: str = "/linux/resources") -> Resources:
        """Type and check a LinuxResources object (config.json's, or `update -r`'s).

        The schema already rejects most bad shapes in config.json, but `update` gets its JSON
        from elsewhere, so every value is checked here too. Raises ResourcesError.
        """
        if d is None:
            return cls()
        _expect(d, dict, pointer, "an object")
        return cls(
            devices=tuple(_device_rule(x, f"{pointer}/devices/{i}")
                          for i, x in enumerate(_list(d, "devices", pointer))),
            memory=_memory(d.get("memory"), f"{pointer}/memory"),
            cpu=_cpu(d.get("cpu"), f"{pointer}/cpu"),
            pids=_pids(d.get("pids"), f"{pointer}/pids"),
            block_io=_block_io(d.get("blockIO"), f"{pointer}/blockIO"),
            hugepage_limits=tuple(_hugepage_limit(x, f"{pointer}/hugepageLimits/{i}")
                                  for i, x in enumerate(_list(d, "hugepageLimits", pointer))),
            network=_network(d.get("network"), f"{pointer}/network"),
            rdma=_rdma(d.get("rdma"), f"{pointer}/rdma"),
            unified=_unified(d.get("unified"), f"{pointer}/unified"),
        )

    def is_empty(self) -> bool:
        """True when there is nothing to write to any cgroup file."""
        return self == Resources()


# --- field checks ---------------------------------------------------------------------------------

def _fail(pointer: str, message: str) -> ResourcesError:
    return ResourcesError(f"{pointer}: {message}")


def _expect(value: Any, kind: type, pointer: str, what: str) -> None:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _fail(pointer, f"{_show(value)} is not {what}")


def _show(value: Any) -> str:
    import json

    text = json.dumps(value) if not isinstance(value, (set, bytes)) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _key(key: str) -> str:
    """A JSON object key as one JSON pointer token (RFC 6901 escapes)."""
    return key.replace("~", "~0").replace("/", "~1")


def _list(d: dict[str, Any], key: str, pointer: str) -> list[Any]:
    value = d.get(key)
    if value is None:
        return []
    _expect(value, list, f"{pointer}/{key}", "an array")
    return value  # type: ignore[no-any-return]


def _obj(value: Any, pointer: str) -> dict[str, Any] | None:
    if value is None:
        return None
    _expect(value, dict, pointer, "an object")
    return value  # type: ignore[no-any-return]


def _int(d: dict[str, Any], key: str, pointer: str, bounds: tuple[int, int] = INT64,
         *, required: bool = False) -> int | None:
    value = d.get(key)
    where = f"{pointer}/{key}"
    if value is None:
        if required:
            raise _fail(where, "is required")
        return None
    _expect(value, int, where, "an integer")
    lo, hi = bounds
    if not lo <= value <= hi:
        if value < 0 and lo == 0:
            raise _fail(where, f"{value} must not be negative")
        raise _fail(where, f"{value} is out of range {lo}..{hi}")
    return value  # type: ignore[no-any-return]


def _bool(d: dict[str, Any], key: str, pointer: str) -> bool | None:
    value = d.get(key)
    if value is not None:
        _expect(value, bool, f"{pointer}/{key}", "a boolean")
    return value


def _str(d: dict[str, Any], key: str, pointer: str) -> str | None:
    value = d.get(key)
    if value is not None:
        _expect(value, str, f"{pointer}/{key}", "a string")
    return value


def parse_cpu_list(text: str) -> list[int]:
    """The numbers in a kernel cpu/node list ("0-3,8", "0-7:2/4"); ValueError if it is not one."""
    import re  # only configs with a cpuset pay for it

    found: list[int] = []
    for item in text.split(","):
        m = re.fullmatch(_LIST_ITEM, item)
        if m is None:
            raise ValueError(item)
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        if last < first:
            raise ValueError(item)
        used, group = (int(m.group(3)), int(m.group(4))) if m.group(3) is not None else (1, 1)
        if not 0 < used <= group:
            raise ValueError(item)
        found.extend(n for n in range(first, last + 1) if (n - first) % group < used)
    return found


def _cpu_list(d: dict[str, Any], key: str, pointer: str, what: str) -> str | None:
    value = _str(d, key, pointer)
    if value:
        try:
            parse_cpu_list(value)
        except ValueError:
            raise _fail(f"{pointer}/{key}", f"{_show(value)} is not a {what} list "
                        "(e.g. \"0-3,6\")") from None
    return value


def _device_rule(x: Any, pointer: str) -> DeviceRule:
    _expect(x, dict, pointer, "an object")
    allow = x.get("allow")
    if allow is None:
        raise _fail(f"{pointer}/allow", "is required")
    _expect(allow, bool, f"{pointer}/allow", "a boolean")
    kind = _str(x, "type", pointer) or "a"
    if kind not in ("a", "b", "c"):
        raise _fail(f"{pointer}/type", f"{_show(kind)} is not one of \"a\", \"b\", \"c\"")
    major = _int(x, "major", pointer, (-1, INT64[1]))
    minor = _int(x, "minor", pointer, (-1, INT64[1]))
    access = _str(x, "access", pointer)
    if not access:   # runc refuses an empty access ("device access ... cannot be empty")
        raise _fail(f"{pointer}/access", "must name at least one of r, w, m")
    if set(access) - set("rwm"):
        raise _fail(f"{pointer}/access", f"{_show(access)} may only contain r, w and m")
    return DeviceRule(allow, kind, -1 if major is None else major,
                      -1 if minor is None else minor, access)


def _memory(value: Any, pointer: str) -> Memory | None:
    d = _obj(value, pointer)
    if d is None:
        return None
    bytes_ = (-1, INT64[1])   # -1 is "unlimited"; other negative values mean nothing
    swappiness = _int(d, "swappiness", pointer, UINT64)
    if swappiness is not None and swappiness > 100 and swappiness != SWAPPINESS_UNSET:
        raise _fail(f"{pointer}/swappiness", f"{swappiness} is out of range 0..100")
    return Memory(
        limit=_int(d, "limit", pointer, bytes_),
        reservation=_int(d, "reservation", pointer, bytes_),
        swap=_int(d, "swap", pointer, bytes_),
        kernel=_int(d, "kernel", pointer, bytes_),
        kernel_tcp=_int(d, "kernelTCP", pointer, bytes_),
        swappiness=None if swappiness == SWAPPINESS_UNSET else swappiness,
        disable_oom_killer=_bool(d, "disableOOMKiller", pointer),
        use_hierarchy=_bool(d, "useHierarchy", pointer),
        check_before_update=_bool(d, "checkBeforeUpdate", pointer),
    )


def _cpu(value: Any, pointer: str) -> CPU | None:
    d = _obj(value, pointer)
    if d is None:
        return None
    idle = _int(d, "idle", pointer)
    if idle is not None and idle not in (0, 1):
        raise _fail(f"{pointer}/idle", f"{idle} must be 0 or 1")
    return CPU(
        shares=_int(d, "shares", pointer, UINT64),
        quota=_int(d, "quota", pointer),
        burst=_int(d, "burst", pointer, UINT64),
        period=_int(d, "period", pointer, UINT64),
        realtime_runtime=_int(d, "realtimeRuntime", pointer),
        realtime_period=_int(d, "realtimePeriod", pointer, UINT64),
        cpus=_cpu_list(d, "cpus", pointer, "cpu"),
        mems=_cpu_list(d, "mems", pointer, "memory node"),
        idle=idle,
    )


def _pids(value: Any, pointer: str) -> Pids | None:
    d = _obj(value, pointer)
    return None if d is None else Pids(limit=_int(d, "limit", pointer))


def _throttle(x: Any, pointer: str) -> ThrottleDevice:
    _expect(x, dict, pointer, "an object")
    return ThrottleDevice(_int(x, "major", pointer, (0, INT64[1]), required=True) or 0,
                          _int(x, "minor", pointer, (0, INT64[1]), required=True) or 0,
                          _int(x, "rate", pointer, UINT64, required=True) or 0)


def _weight_device(x: Any, pointer: str) -> WeightDevice:
    _expect(x, dict, pointer, "an object")
    device = WeightDevice(_int(x, "major", pointer, (0, INT64[1]), required=True) or 0,
                          _int(x, "minor", pointer, (0, INT64[1]), required=True) or 0,
                          _int(x, "weight", pointer, UINT16),
                          _int(x, "leafWeight", pointer, UINT16))
    if device.weight is None and device.leaf_weight is None:
        raise _fail(pointer, "needs weight or leafWeight")
    return device


def _block_io(value: Any, pointer: str) -> BlockIO | None:
    d = _obj(value, pointer)
    if d is None:
        return None

    def throttles(key: str) -> tuple[ThrottleDevice, ...]:
        return tuple(_throttle(x, f"{pointer}/{key}/{i}")
                     for i, x in enumerate(_list(d, key, pointer)))

    return BlockIO(
        weight=_int(d, "weight", pointer, UINT16),
        leaf_weight=_int(d, "leafWeight", pointer, UINT16),
        weight_device=tuple(_weight_device(x, f"{pointer}/weightDevice/{i}")
                            for i, x in enumerate(_list(d, "weightDevice", pointer))),
        throttle_read_bps_device=throttles("throttleReadBpsDevice"),
        throttle_write_bps_device=throttles("throttleWriteBpsDevice"),
        throttle_read_iops_device=throttles("throttleReadIOPSDevice"),
        throttle_write_iops_device=throttles("throttleWriteIOPSDevice"),
    )


def _hugepage_limit(x: Any, pointer: str) -> HugepageLimit:
    _expect(x, dict, pointer, "an object")
    size = _str(x, "pageSize", pointer)
    if size is None:
        raise _fail(f"{pointer}/pageSize", "is required")
    import re

    if not re.fullmatch(_PAGE_SIZE, size):
        raise _fail(f"{pointer}/pageSize", f"{_show(size)} is not a huge page size "
                    "(<number>KB, MB or GB, e.g. \"2MB\")")
    return HugepageLimit(size, _int(x, "limit", pointer, UINT64, required=True) or 0)


def _network(value: Any, pointer: str) -> Network | None:
    d = _obj(value, pointer)
    if d is None:
        return None
    priorities = []
    for i, x in enumerate(_list(d, "priorities", pointer)):
        where = f"{pointer}/priorities/{i}"
        _expect(x, dict, where, "an object")
        name = _str(x, "name", where)
        if not name or any(c.isspace() for c in name):
            raise _fail(f"{where}/name", f"{_show(name)} is not an interface name")
        priorities.append(NetPriority(name, _int(x, "priority", where, UINT32, required=True) or 0))
    return Network(class_id=_int(d, "classID", pointer, UINT32), priorities=tuple(priorities))


def _rdma(value: Any, pointer: str) -> dict[str, Rdma]:
    d = _obj(value, pointer)
    if not d:
        return {}
    out: dict[str, Rdma] = {}
    for name, x in d.items():
        where = f"{pointer}/{_key(name)}"
        if not name or any(c.isspace() for c in name):
            raise _fail(where, f"{_show(name)} is not an RDMA device name")
        _expect(x, dict, where, "an object")
        limits = Rdma(_int(x, "hcaHandles", where, UINT32), _int(x, "hcaObjects", where, UINT32))
        if limits == Rdma():
            raise _fail(where, "needs hcaHandles or hcaObjects")
        out[name] = limits
    return out


def _unified(value: Any, pointer: str) -> dict[str, str]:
    d = _obj(value, pointer)
    if not d:
        return {}
    for key, v in d.items():
        where = f"{pointer}/{_key(key)}"
        # runc writes <cgroup dir>/<key>: a key must be one file name of the CONTROLLER.PARAMETER
        # form (cgroup v2 has no other), never a path that could leave the container's cgroup.
        controller, dot, parameter = key.partition(".")
        if "/" in key or "\0" in key or "\n" in key:
            raise _fail(where, f"{_show(key)} must be a file name (no slashes)")
        if not (dot and controller and parameter) or not controller.replace("_", "").isalnum():
            raise _fail(where, f"{_show(key)} must be in the form CONTROLLER.PARAMETER")
        _expect(v, str, where, "a string")
    return dict(d)
