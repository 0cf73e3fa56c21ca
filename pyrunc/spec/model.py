"""A typed, read-only view of a validated config.json.

The JSON is parsed and validated once, at the edge (`pyrunc.spec.load`); everything below the CLI
receives these immutable NamedTuples (cheaper to define than dataclasses, which matters at
start-up) instead of dicts, so a typo in a field name is an AttributeError
in our code rather than a silently ignored key in the user's config.

Only the fields pyrunc acts on are modelled; the raw document stays available as `Config.raw`
(for hooks' state and for reporting parts that are not applied yet).
"""

from __future__ import annotations

from pyrunc.spec.mempolicy import MemoryPolicy, parse_memory_policy
from pyrunc.spec.resources import Resources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from pyrunc.records import NamedTuple

#: Namespace types as the runtime-spec names them, in the order pyrunc joins or creates them.
#: The user namespace comes first so that every other namespace is owned by it.
NAMESPACE_ORDER = ("user", "ipc", "uts", "network", "pid", "mount", "cgroup", "time")

HOOK_PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
               "poststop")


class IDMapping(NamedTuple):
    container_id: int
    host_id: int
    size: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> IDMapping:
        return cls(d["containerID"], d["hostID"], d["size"])


class Rlimit(NamedTuple):
    type: str
    soft: int
    hard: int


class User(NamedTuple):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()


class Capabilities(NamedTuple):
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()


class Process(NamedTuple):
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: User
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Process:
        user = d.get("user") or {}
        caps = d.get("capabilities")
        size = d.get("consoleSize")
        return cls(
            args=tuple(d.get("args") or ()),
            env=tuple(d.get("env") or ()),
            cwd=d.get("cwd", "/"),
            user=User(uid=user.get("uid", 0), gid=user.get("gid", 0), umask=user.get("umask"),
                      additional_gids=tuple(user.get("additionalGids") or ())),
            terminal=bool(d.get("terminal", False)),
            console_size=(size["height"], size["width"]) if size else None,
            capabilities=None if caps is None else Capabilities(
                **{k: tuple(caps.get(k) or ()) for k in
                   ("bounding", "effective", "inheritable", "permitted", "ambient")}),
            rlimits=tuple(Rlimit(r["type"], r["soft"], r["hard"]) for r in d.get("rlimits") or ()),
            no_new_privileges=bool(d.get("noNewPrivileges", False)),
            oom_score_adj=d.get("oomScoreAdj"),
        )


class Mount(NamedTuple):
    destination: str
    type: str | None = None
    source: str | None = None
    options: tuple[str, ...] = ()
    uid_mappings: tuple[IDMapping, ...] | None = None
    """An idmapped mount's uid mapping; None when config.json has no `uidMappings` (an empty
    list is kept apart: runc refuses it)."""
    gid_mappings: tuple[IDMapping, ...] | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Mount:
        uids, gids = d.get("uidMappings"), d.get("gidMappings")
        return cls(d["destination"], d.get("type"), d.get("source"), tuple(d.get("options") or ()),
                   None if uids is None else tuple(IDMapping.from_json(m) for m in uids),
                   None if gids is None else tuple(IDMapping.from_json(m) for m in gids))

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options


class Hook(NamedTuple):
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] | None = None
    """None when config.json gives no `env` (or null): the hook then inherits, as in runc."""
    timeout: int | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Hook:
        env = d.get("env")
        return cls(d["path"], tuple(d.get("args") or ()), None if env is None else tuple(env),
                   d.get("timeout"))


class Namespace(NamedTuple):
    type: str
    path: str | None = None


class Device(NamedTuple):
    path: str
    type: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Device:
        return cls(d["path"], d["type"], d.get("major", 0), d.get("minor", 0), d.get("fileMode"),
                   d.get("uid"), d.get("gid"))


class Linux(NamedTuple):
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IDMapping, ...] = ()
    gid_mappings: tuple[IDMapping, ...] = ()
    time_offsets: dict[str, tuple[int, int]] = {}  # clock -> (secs, nanosecs); never mutated
    devices: tuple[Device, ...] = ()
    cgroups_path: str | None = None
    resources: Resources = Resources()
    memory_policy: MemoryPolicy | None = None
    rootfs_propagation: str | None = None
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    sysctl: dict[str, str] = {}
    net_devices: dict[str, str] = {}  # host interface -> name in the container; never mutated

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Linux:
        offsets = {clock: (v.get("secs", 0), v.get("nanosecs", 0))
                   for clock, v in (d.get("timeOffsets") or {}).items()}
        return cls(
            namespaces=tuple(Namespace(n["type"], n.get("path") or None)
                             for n in d.get("namespaces") or ()),
            uid_mappings=tuple(IDMapping.from_json(m) for m in d.get("uidMappings") or ()),
            gid_mappings=tuple(IDMapping.from_json(m) for m in d.get("gidMappings") or ()),
            time_offsets=offsets,
            devices=tuple(Device.from_json(x) for x in d.get("devices") or ()),
            cgroups_path=d.get("cgroupsPath") or None,
            resources=Resources.from_json(d.get("resources")),
            memory_policy=None if d.get("memoryPolicy") is None
            else parse_memory_policy(d["memoryPolicy"]),
            rootfs_propagation=d.get("rootfsPropagation") or None,
            masked_paths=tuple(d.get("maskedPaths") or ()),
            readonly_paths=tuple(d.get("readonlyPaths") or ()),
            sysctl=dict(d.get("sysctl") or {}),
            net_devices={host: (dev or {}).get("name") or host
                         for host, dev in (d.get("netDevices") or {}).items()},
        )

    def namespace(self, ns_type: str) -> Namespace | None:
        """The config entry for namespace `ns_type`, or None when the host's is shared."""
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None

    def creates(self, ns_type: str) -> bool:
        """True when the container gets a *new* namespace of this type."""
        ns = self.namespace(ns_type)
        return ns is not None and ns.path is None


class Config(NamedTuple):
    """The whole config.json, typed. `root_path` is absolute (resolved against the bundle)."""

    oci_version: str
    root_path: str
    root_readonly: bool
    process: Process | None
    hostname: str | None
    domainname: str | None
    mounts: tuple[Mount, ...]
    hooks: dict[str, tuple[Hook, ...]]
    annotations: dict[str, str]
    linux: Linux
    raw: dict[str, Any] = {}

    @classmethod
    def from_json(cls, d: dict[str, Any], bundle: str) -> Config:
        import os.path

        root = d.get("root") or {}
        root_path = root.get("path", "rootfs")
        if not os.path.isabs(root_path):
            root_path = os.path.join(bundle, root_path)
        hooks = {phase: tuple(Hook.from_json(h) for h in (d.get("hooks") or {}).get(phase) or ())
                 for phase in HOOK_PHASES}
        return cls(
            oci_version=d["ociVersion"],
            root_path=os.path.normpath(root_path),
            root_readonly=bool(root.get("readonly", False)),
            process=Process.from_json(d["process"]) if d.get("process") else None,
            hostname=d.get("hostname"),
            domainname=d.get("domainname"),
            mounts=tuple(Mount.from_json(m) for m in d.get("mounts") or ()),
            hooks=hooks,
            annotations=dict(d.get("annotations") or {}),
            linux=Linux.from_json(d.get("linux") or {}),
            raw=d,
        )
