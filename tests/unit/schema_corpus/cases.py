"""Corpus of config.json documents for the schema tests.

CROSSCHECK documents get the same verdict from our schemas/ and from the older
upstream schema shipped by Debian; EXPECTED_DIFFERENCES are documents where
runtime-spec v1.3.0 (or a deliberate choice of ours) legitimately disagrees
with that older schema, each with the reason. The validator tests use both.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    doc: Any
    valid: bool  # our verdict (schemas/ and the compiled validator)
    pointer: str | None = None  # for invalid cases: the JSON pointer the explainer must report
    section: str | None = None  # for invalid cases: the spec section the explainer must cite


@dataclass(frozen=True)
class Difference:
    case: Case
    upstream_valid: bool
    reason: str


MINIMAL = {"ociVersion": "1.0.0"}

#: What `runc spec` writes (rootless off), used as the base for most mutations.
RUNC_DEFAULT: dict[str, Any] = {
    "ociVersion": "1.2.0",
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                       {"type": "mount"}, {"type": "cgroup"}],
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                        "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}

_MISSING = object()


def edit(base: Any, pointer: str, value: Any = _MISSING) -> Any:
    """A deep copy of *base* with *pointer* set to *value* (or removed when no value is given).

    Missing intermediate objects are created, so edit(MINIMAL, "/linux/sysctl", {...}) works.
    """
    doc = copy.deepcopy(base)
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node = doc
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        if value is _MISSING:
            del node[int(last)]
        elif last == "-":
            node.append(value)
        else:
            node[int(last)] = value
    elif value is _MISSING:
        del node[last]
    else:
        node[last] = value
    return doc


def ok(name: str, doc: Any) -> Case:
    return Case(name, doc, True)


def bad(name: str, doc: Any, pointer: str, section: str) -> Case:
    return Case(name, doc, False, pointer, section)


_NS = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup"]
_SECCOMP = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [
        {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
    ],
}
_RESOURCES = {
    "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
    "memory": {"limit": 536870912, "reservation": -1, "swap": -1, "swappiness": 0, "disableOOMKiller": False},
    "cpu": {"shares": 1024, "quota": 100000, "period": 100000, "cpus": "0-3", "mems": "0", "idle": 0},
    "pids": {"limit": 32},
    "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
    "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
    "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
    "unified": {"io.weight": "default 100"},
}
_HOOK = {"path": "/usr/bin/fix-mounts", "args": ["fix-mounts", "arg1"], "env": ["KEY=value"], "timeout": 5}

CROSSCHECK: list[Case] = [
    # --- valid -----------------------------------------------------------------------------
    ok("runc-default", RUNC_DEFAULT),
    ok("minimal", MINIMAL),
    *[ok(f"namespace-{ns}", edit(MINIMAL, "/linux/namespaces", [{"type": ns}])) for ns in _NS],
    ok("namespace-with-path", edit(RUNC_DEFAULT, "/linux/namespaces/1", {"type": "network", "path": "/var/run/netns/x"})),
    ok("user-namespace-mappings", edit(edit(edit(RUNC_DEFAULT, "/linux/namespaces/-", {"type": "user"}),
                                            "/linux/uidMappings", [{"containerID": 0, "hostID": 1000, "size": 65536}]),
                                       "/linux/gidMappings", [{"containerID": 0, "hostID": 1000, "size": 65536}])),
    ok("idmapped-mount", edit(RUNC_DEFAULT, "/mounts/-", {
        "destination": "/data", "source": "/srv/data", "options": ["rbind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]})),
    ok("all-hooks", edit(RUNC_DEFAULT, "/hooks", {k: [_HOOK] for k in (
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")})),
    ok("seccomp", edit(RUNC_DEFAULT, "/linux/seccomp", _SECCOMP)),
    ok("resources", edit(RUNC_DEFAULT, "/linux/resources", _RESOURCES)),
    ok("devices", edit(RUNC_DEFAULT, "/linux/devices", [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}])),
    ok("annotations", edit(RUNC_DEFAULT, "/annotations", {"com.example.key": "value", "org.opencontainers.x": ""})),
    ok("rootfs-propagation-slave", edit(RUNC_DEFAULT, "/linux/rootfsPropagation", "slave")),
    ok("personality", edit(RUNC_DEFAULT, "/linux/personality", {"domain": "LINUX32", "flags": []})),
    ok("intel-rdt", edit(RUNC_DEFAULT, "/linux/intelRdt", {"closID": "guaranteed_group",
                                                           "l3CacheSchema": "L3:0=7f0;1=1f", "memBwSchema": "MB:0=20;1=70"})),
    ok("process-without-args", {"ociVersion": "1.0.0", "process": {"cwd": "/"}}),
    ok("extension-property", edit(RUNC_DEFAULT, "/org.example.extension", {"anything": [1, 2, 3]})),
    ok("console-size-and-oom", edit(edit(RUNC_DEFAULT, "/process/consoleSize", {"height": 25, "width": 80}),
                                    "/process/oomScoreAdj", -500)),
    ok("sysctl-and-labels", edit(edit(RUNC_DEFAULT, "/linux/sysctl", {"net.ipv4.ip_forward": "1"}),
                                 "/linux/mountLabel", "system_u:object_r:svirt_sandbox_file_t:s0")),
    ok("user-umask-additional-gids", edit(RUNC_DEFAULT, "/process/user",
                                          {"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [5, 6]})),
    ok("uint32-max-uid", edit(RUNC_DEFAULT, "/process/user/uid", 4294967295)),
    ok("memory-unlimited", edit(RUNC_DEFAULT, "/linux/resources/memory", {"limit": -1, "swap": -1})),
    # --- invalid ---------------------------------------------------------------------------
    bad("empty-object", {}, "/ociVersion", "config.md#specification-version"),
    bad("document-is-array", [], "", "config.md"),
    bad("oci-version-number", {"ociVersion": 1.0}, "/ociVersion", "config.md#specification-version"),
    bad("process-missing-cwd", edit(RUNC_DEFAULT, "/process/cwd"), "/process/cwd", "config.md#process"),
    bad("args-is-string", edit(RUNC_DEFAULT, "/process/args", "sh"), "/process/args", "config.md#process"),
    bad("args-item-integer", edit(RUNC_DEFAULT, "/process/args", ["sleep", 10]), "/process/args/1", "config.md#process"),
    bad("env-is-object", edit(RUNC_DEFAULT, "/process/env", {"PATH": "/bin"}), "/process/env", "config.md#process"),
    bad("terminal-is-string", edit(RUNC_DEFAULT, "/process/terminal", "yes"), "/process/terminal", "config.md#process"),
    bad("uid-negative", edit(RUNC_DEFAULT, "/process/user/uid", -1), "/process/user/uid", "config.md#user"),
    bad("gid-too-big", edit(RUNC_DEFAULT, "/process/user/gid", 4294967296), "/process/user/gid", "config.md#user"),
    bad("uid-float", edit(RUNC_DEFAULT, "/process/user/uid", 0.5), "/process/user/uid", "config.md#user"),
    bad("uid-bool", edit(RUNC_DEFAULT, "/process/user/uid", True), "/process/user/uid", "config.md#user"),
    bad("additional-gids-string", edit(RUNC_DEFAULT, "/process/user/additionalGids", ["wheel"]),
        "/process/user/additionalGids/0", "config.md#user"),
    bad("rlimit-bad-type", edit(RUNC_DEFAULT, "/process/rlimits/0/type", "NOFILE"),
        "/process/rlimits/0/type", "config.md#posix-process"),
    bad("rlimit-missing-soft", edit(RUNC_DEFAULT, "/process/rlimits/0/soft"),
        "/process/rlimits/0/soft", "config.md#posix-process"),
    bad("rlimit-negative-hard", edit(RUNC_DEFAULT, "/process/rlimits/0/hard", -1),
        "/process/rlimits/0/hard", "config.md#posix-process"),
    bad("console-size-missing-width", edit(RUNC_DEFAULT, "/process/consoleSize", {"height": 25}),
        "/process/consoleSize/width", "config.md#process"),
    bad("capabilities-not-array", edit(RUNC_DEFAULT, "/process/capabilities/bounding", "CAP_KILL"),
        "/process/capabilities/bounding", "config.md#linux-process"),
    bad("root-missing-path", edit(RUNC_DEFAULT, "/root/path"), "/root/path", "config.md#root"),
    bad("root-readonly-string", edit(RUNC_DEFAULT, "/root/readonly", "true"), "/root/readonly", "config.md#root"),
    bad("hostname-integer", edit(RUNC_DEFAULT, "/hostname", 42), "/hostname", "config.md#hostname"),
    bad("mounts-not-array", edit(RUNC_DEFAULT, "/mounts", {"destination": "/x"}), "/mounts", "config.md#mounts"),
    bad("mount-missing-destination", edit(RUNC_DEFAULT, "/mounts/0/destination"),
        "/mounts/0/destination", "config.md#mounts"),
    bad("mount-options-string", edit(RUNC_DEFAULT, "/mounts/1/options", "nosuid,nodev"),
        "/mounts/1/options", "config.md#mounts"),
    bad("mount-destination-integer", edit(RUNC_DEFAULT, "/mounts/0/destination", 5),
        "/mounts/0/destination", "config.md#mounts"),
    bad("hook-missing-path", edit(RUNC_DEFAULT, "/hooks", {"prestart": [{"args": ["x"]}]}),
        "/hooks/prestart/0/path", "config.md#posix-platform-hooks"),
    bad("hook-zero-timeout", edit(RUNC_DEFAULT, "/hooks", {"poststart": [{"path": "/bin/true", "timeout": 0}]}),
        "/hooks/poststart/0/timeout", "config.md#posix-platform-hooks"),
    bad("hook-args-string", edit(RUNC_DEFAULT, "/hooks", {"createRuntime": [{"path": "/bin/true", "args": "true"}]}),
        "/hooks/createRuntime/0/args", "config.md#posix-platform-hooks"),
    bad("hooks-not-array", edit(RUNC_DEFAULT, "/hooks", {"poststop": {"path": "/bin/true"}}),
        "/hooks/poststop", "config.md#posix-platform-hooks"),
    bad("namespace-bad-type", edit(RUNC_DEFAULT, "/linux/namespaces/0/type", "pidd"),
        "/linux/namespaces/0/type", "config-linux.md#namespaces"),
    bad("namespace-missing-type", edit(RUNC_DEFAULT, "/linux/namespaces/0", {"path": "/proc/1/ns/pid"}),
        "/linux/namespaces/0/type", "config-linux.md#namespaces"),
    bad("namespaces-object", edit(RUNC_DEFAULT, "/linux/namespaces", {"pid": {}}),
        "/linux/namespaces", "config-linux.md#namespaces"),
    bad("uid-mapping-missing-size", edit(RUNC_DEFAULT, "/linux/uidMappings", [{"containerID": 0, "hostID": 1000}]),
        "/linux/uidMappings/0/size", "config-linux.md#user-namespace-mappings"),
    bad("uid-mapping-negative-host", edit(RUNC_DEFAULT, "/linux/uidMappings",
                                          [{"containerID": 0, "hostID": -5, "size": 1}]),
        "/linux/uidMappings/0/hostID", "config-linux.md#user-namespace-mappings"),
    bad("gid-mapping-string-id", edit(RUNC_DEFAULT, "/linux/gidMappings",
                                      [{"containerID": "0", "hostID": 1000, "size": 1}]),
        "/linux/gidMappings/0/containerID", "config-linux.md#user-namespace-mappings"),
    bad("device-missing-path", edit(RUNC_DEFAULT, "/linux/devices", [{"type": "c", "major": 1, "minor": 3}]),
        "/linux/devices/0/path", "config-linux.md#devices"),
    bad("device-bad-type", edit(RUNC_DEFAULT, "/linux/devices", [{"path": "/dev/x", "type": "x", "major": 1, "minor": 3}]),
        "/linux/devices/0/type", "config-linux.md#devices"),
    bad("seccomp-missing-default-action", edit(RUNC_DEFAULT, "/linux/seccomp", {"syscalls": []}),
        "/linux/seccomp/defaultAction", "config-linux.md#seccomp"),
    bad("seccomp-bad-action", edit(RUNC_DEFAULT, "/linux/seccomp", {"defaultAction": "SCMP_ACT_FOO"}),
        "/linux/seccomp/defaultAction", "config-linux.md#seccomp"),
    bad("seccomp-empty-names", edit(RUNC_DEFAULT, "/linux/seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}),
        "/linux/seccomp/syscalls/0/names", "config-linux.md#seccomp"),
    bad("seccomp-arg-missing-op", edit(RUNC_DEFAULT, "/linux/seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1}]}]}),
        "/linux/seccomp/syscalls/0/args/0/op", "config-linux.md#seccomp"),
    bad("seccomp-bad-arch", edit(RUNC_DEFAULT, "/linux/seccomp", {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]}),
        "/linux/seccomp/architectures/0", "config-linux.md#seccomp"),
    bad("memory-limit-string", edit(RUNC_DEFAULT, "/linux/resources/memory", {"limit": "512M"}),
        "/linux/resources/memory/limit", "config-linux.md#memory"),
    bad("cpu-shares-negative", edit(RUNC_DEFAULT, "/linux/resources/cpu", {"shares": -2}),
        "/linux/resources/cpu/shares", "config-linux.md#cpu"),
    bad("hugepage-bad-size", edit(RUNC_DEFAULT, "/linux/resources/hugepageLimits", [{"pageSize": "2M", "limit": 1}]),
        "/linux/resources/hugepageLimits/0/pageSize", "config-linux.md#huge-page-limits"),
    bad("net-priority-missing-priority", edit(RUNC_DEFAULT, "/linux/resources/network", {"priorities": [{"name": "eth0"}]}),
        "/linux/resources/network/priorities/0/priority", "config-linux.md#network"),
    bad("blkio-weight-too-big", edit(RUNC_DEFAULT, "/linux/resources/blockIO", {"weight": 70000}),
        "/linux/resources/blockIO/weight", "config-linux.md#block-io"),
    bad("device-cgroup-missing-allow", edit(RUNC_DEFAULT, "/linux/resources/devices", [{"access": "rwm"}]),
        "/linux/resources/devices/0/allow", "config-linux.md#allowed-device-list"),
    bad("annotation-value-integer", edit(RUNC_DEFAULT, "/annotations", {"com.example.n": 1}),
        "/annotations/com.example.n", "config.md#annotations"),
    bad("sysctl-value-integer", edit(RUNC_DEFAULT, "/linux/sysctl", {"net.ipv4.ip_forward": 1}),
        "/linux/sysctl/net.ipv4.ip_forward", "config-linux.md#sysctl"),
    bad("masked-paths-string", edit(RUNC_DEFAULT, "/linux/maskedPaths", "/proc/kcore"),
        "/linux/maskedPaths", "config-linux.md#masked-paths"),
    bad("rootfs-propagation-bad", edit(RUNC_DEFAULT, "/linux/rootfsPropagation", "public"),
        "/linux/rootfsPropagation", "config-linux.md#rootfs-mount-propagation"),
    bad("personality-bad-domain", edit(RUNC_DEFAULT, "/linux/personality", {"domain": "LINUX64"}),
        "/linux/personality/domain", "config-linux.md#personality"),
    bad("intel-rdt-bad-membw", edit(RUNC_DEFAULT, "/linux/intelRdt", {"memBwSchema": "L3:0=20"}),
        "/linux/intelRdt/memBwSchema", "config-linux.md#intelrdt"),
    bad("linux-is-array", edit(RUNC_DEFAULT, "/linux", []), "/linux", "config-linux.md"),
]

EXPECTED_DIFFERENCES: list[Difference] = [
    Difference(ok("namespace-time", edit(MINIMAL, "/linux/namespaces", [{"type": "time"}])), False,
               "the time namespace was added to the spec after the upstream schema's version"),
    Difference(ok("time-offsets", edit(edit(MINIMAL, "/linux/namespaces", [{"type": "time"}]),
                                       "/linux/timeOffsets", {"monotonic": {"secs": -3600, "nanosecs": 0}})), False,
               "time namespace (and timeOffsets) are v1.3.0 additions"),
    Difference(ok("pids-without-limit", edit(RUNC_DEFAULT, "/linux/resources/pids", {})), False,
               "v1.3.0 made pids.limit OPTIONAL; the older schema requires it"),
    Difference(ok("seccomp-arch-loongarch64", edit(RUNC_DEFAULT, "/linux/seccomp",
                                                   {"defaultAction": "SCMP_ACT_ALLOW",
                                                    "architectures": ["SCMP_ARCH_LOONGARCH64"]})), False,
               "LOONGARCH64, M68K, SH and SHEB joined the v1.3.0 architecture list"),
    Difference(ok("device-file-mode-with-type-bits", edit(RUNC_DEFAULT, "/linux/devices",
                                                          [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3,
                                                            "fileMode": 8630}])), False,
               "config-linux.md#devices types fileMode as uint32; the schema caps it at 512 (0o1000)"),
    Difference(ok("rootfs-propagation-rshared", edit(RUNC_DEFAULT, "/linux/rootfsPropagation", "rshared")), False,
               "our choice: runc accepts the recursive r-forms and containerd's CRI emits rshared/rslave"),
    Difference(bad("idmap-mount-uid-only", edit(RUNC_DEFAULT, "/mounts/-", {
        "destination": "/data", "source": "/srv", "options": ["bind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}),
        "/mounts/7/gidMappings", "config.md#posix-platform-mounts"), True,
        "config.md#posix-platform-mounts: uidMappings MUST come with gidMappings; the schema does not encode it"),
    Difference(bad("device-char-without-major", edit(RUNC_DEFAULT, "/linux/devices", [{"path": "/dev/x", "type": "c"}]),
                   "/linux/devices/0/major", "config-linux.md#devices"), True,
               "config-linux.md#devices: major/minor are REQUIRED unless type is p; the schema leaves them optional"),
    Difference(bad("personality-without-domain", edit(RUNC_DEFAULT, "/linux/personality", {"flags": []}),
                   "/linux/personality/domain", "config-linux.md#personality"), True,
               "config-linux.md#personality: domain is REQUIRED; the schema leaves it optional"),
    Difference(bad("throttle-without-rate", edit(RUNC_DEFAULT, "/linux/resources/blockIO",
                                                 {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}),
                   "/linux/resources/blockIO/throttleReadBpsDevice/0/rate", "config-linux.md#block-io"), True,
               "config-linux.md#block-io: rate is REQUIRED; the schema leaves it optional"),
    Difference(bad("weight-device-without-weights", edit(RUNC_DEFAULT, "/linux/resources/blockIO",
                                                         {"weightDevice": [{"major": 8, "minor": 0}]}),
                   "/linux/resources/blockIO/weightDevice/0", "config-linux.md#block-io"), True,
               "config-linux.md#block-io: at least one of weight/leafWeight MUST be given"),
    Difference(bad("rdma-without-limits", edit(RUNC_DEFAULT, "/linux/resources/rdma", {"mlx5_1": {}}),
                   "/linux/resources/rdma/mlx5_1", "config-linux.md#rdma"), True,
               "config-linux.md#rdma: at least one of hcaHandles/hcaObjects MUST be given"),
    Difference(bad("seccomp-metadata-without-listener", edit(RUNC_DEFAULT, "/linux/seccomp",
                                                             {"defaultAction": "SCMP_ACT_ALLOW",
                                                              "listenerMetadata": "x"}),
                   "/linux/seccomp/listenerPath", "config-linux.md#seccomp"), True,
               "config-linux.md#seccomp: listenerMetadata MUST NOT be set without listenerPath"),
    Difference(bad("device-cgroup-bad-type", edit(RUNC_DEFAULT, "/linux/resources/devices",
                                                  [{"allow": True, "type": "x"}]),
                   "/linux/resources/devices/0/type", "config-linux.md#allowed-device-list"), True,
               "config-linux.md#allowed-device-list: type is one of a, c, b; the schema takes any string"),
    Difference(bad("scheduler-bad-policy", edit(RUNC_DEFAULT, "/process/scheduler", {"policy": "SCHED_FAST"}),
                   "/process/scheduler/policy", "config.md#linux-process"), True,
               "process.scheduler is a v1.3.0 addition unknown to the older schema"),
    Difference(bad("io-priority-missing-priority", edit(RUNC_DEFAULT, "/process/ioPriority",
                                                        {"class": "IOPRIO_CLASS_BE"}),
                   "/process/ioPriority/priority", "config.md#linux-process"), True,
               "process.ioPriority (priority REQUIRED per config.md) is unknown to the older schema"),
    Difference(bad("memory-policy-bad-mode", edit(RUNC_DEFAULT, "/linux/memoryPolicy", {"mode": "MPOL_FAST"}),
                   "/linux/memoryPolicy/mode", "config-linux.md#memory-policy"), True,
               "linux.memoryPolicy is a v1.3.0 addition unknown to the older schema"),
    Difference(bad("net-device-name-integer", edit(RUNC_DEFAULT, "/linux/netDevices", {"eth1": {"name": 7}}),
                   "/linux/netDevices/eth1/name", "config-linux.md#network-devices"), True,
               "linux.netDevices is a v1.3.0 addition unknown to the older schema"),
    Difference(bad("exec-cpu-affinity-bad", edit(RUNC_DEFAULT, "/process/execCPUAffinity", {"initial": "all"}),
                   "/process/execCPUAffinity/initial", "config.md#linux-process"), True,
               "process.execCPUAffinity is a v1.3.0 addition unknown to the older schema"),
]

#: Every document, for the tests that compare our two validators with each other.
ALL_CASES: list[Case] = CROSSCHECK + [d.case for d in EXPECTED_DIFFERENCES]
