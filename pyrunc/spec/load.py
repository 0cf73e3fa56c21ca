"""Loading a bundle: read config.json, validate it, check what the schema cannot, return a Config.

This is the edge where untrusted JSON becomes typed objects; nothing below it sees a dict.
"""

from __future__ import annotations

import errno
import os

from pyrunc import fastjson
from pyrunc.spec.model import Config, Linux, Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class BundleError(ValueError):
    """The bundle or its config.json cannot be used; `str()` is one line naming the field."""


def _drop_nulls(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object member whose value is null is absent, as Go's encoding/json (runc) reads it:
    `"timeOffsets": null` leaves the field unset. Nulls anywhere else (in arrays) still fail
    validation, and so does a required member given as null (it is then missing)."""
    return {key: value for key, value in pairs if value is not None}


def read_config(bundle: str) -> dict[str, Any]:
    """Parse <bundle>/config.json, reporting JSON syntax errors with line and column."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BundleError(
            f"bundle {bundle}: config.json: ENOENT (no such file or directory)") from None
    except OSError as exc:
        raise BundleError(f"read {path}: {exc.strerror}") from None
    try:
        doc = fastjson.loads(data, object_pairs_hook=_drop_nulls)
    except ValueError:   # malformed, or not UTF-8: json says exactly where and why
        doc = _parse_with_json(data)
    if not isinstance(doc, dict):
        raise BundleError("config.json: the document must be a JSON object")
    return doc


def _parse_with_json(data: bytes) -> Any:
    """The `json` module's reading of a document fastjson refused: the same result where it
    succeeds (a UTF-8 byte order mark), else the error with line and column. Only on this
    path: importing json costs milliseconds of every create."""
    import json

    try:
        return json.loads(data, object_pairs_hook=_drop_nulls)
    except json.JSONDecodeError as exc:
        raise BundleError(f"config.json: invalid JSON at line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg}") from None
    except UnicodeDecodeError:
        raise BundleError("config.json: not valid UTF-8") from None


def load_bundle(bundle: str) -> Config:
    """Read, validate and type the bundle's config.json (bundle must be an absolute path)."""
    from pyrunc.spec.validate import validate_config

    doc = read_config(bundle)
    validate_config(doc)
    from pyrunc.spec.mempolicy import MemoryPolicyError
    from pyrunc.spec.resources import ResourcesError

    try:
        config = Config.from_json(doc, bundle)
    except (ResourcesError, MemoryPolicyError) as exc:
        pointer, _, message = str(exc).partition(": ")
        section = "config-linux.md#memory-policy" if isinstance(exc, MemoryPolicyError) \
            else "config-linux.md#control-groups"
        raise _fail(pointer, message, section) from None
    check_semantics(config)
    return config


def _fail(pointer: str, message: str, section: str) -> BundleError:
    return BundleError(f"config.json: {pointer}: {message} (see runtime-spec {section})")


def check_semantics(config: Config) -> None:
    """Rules the JSON Schema cannot express, each with the field it is about."""
    linux = config.linux
    if config.process is None:
        raise _fail("/process", "is required to create a container", "config.md#process")
    if not config.process.args:
        raise _fail("/process/args", "must name at least one argument (the program to run)",
                    "config.md#process")
    _check_process_values(config.process)
    _check_labels(config)
    if not os.path.isabs(config.process.cwd):
        raise _fail("/process/cwd", f"{config.process.cwd!r} must be an absolute path",
                    "config.md#process")
    if not os.path.isdir(config.root_path):
        raise _fail("/root/path", f"{config.root_path}: ENOENT (no such directory)",
                    "config.md#root")
    seen: set[str] = set()
    for i, ns in enumerate(linux.namespaces):
        if ns.type in seen:
            raise _fail(f"/linux/namespaces/{i}", f"duplicate namespace type {ns.type!r}",
                        "config-linux.md#namespaces")
        seen.add(ns.type)
        if ns.path is not None:
            try:
                os.stat(ns.path)
            except OSError as exc:
                name = errno.errorcode.get(exc.errno or 0, "error")
                raise _fail(f"/linux/namespaces/{i}/path", f"{ns.path}: {name} ({exc.strerror})",
                            "config-linux.md#namespaces") from None
    if (linux.uid_mappings or linux.gid_mappings) and not linux.creates("user"):
        raise _fail("/linux/uidMappings", "mappings need a new user namespace",
                    "config-linux.md#user-namespace-mappings")
    if linux.creates("user") and not (linux.uid_mappings and linux.gid_mappings):
        raise _fail("/linux/uidMappings", "a new user namespace needs uidMappings and gidMappings",
                    "config-linux.md#user-namespace-mappings")
    # A uts namespace joined by path counts: the hostname is then set in that namespace.
    if config.hostname and linux.namespace("uts") is None:
        raise _fail("/hostname", "setting the hostname needs a uts namespace",
                    "config.md#hostname")
    if config.domainname and linux.namespace("uts") is None:
        raise _fail("/domainname", "setting the domainname needs a uts namespace",
                    "config.md#domainname")
    if linux.time_offsets and not linux.creates("time"):
        raise _fail("/linux/timeOffsets", "time offsets need a new time namespace",
                    "config-linux.md#offset-for-time-namespace")
    for key in linux.sysctl:
        problem = sysctl_problem(key, linux)
        if problem:
            raise _fail(f"/linux/sysctl/{key}", problem, "config-linux.md#sysctl")
    seccomp_profile = config.raw.get("linux", {}).get("seccomp")
    if seccomp_profile:
        from pyrunc import seccomp

        try:
            seccomp.check_profile(seccomp_profile)
        except ValueError as exc:
            pointer, _, message = str(exc).partition(": ")
            raise _fail(pointer, message, "config-linux.md#seccomp") from None
    for i, mount in enumerate(config.mounts):
        if not os.path.isabs(mount.destination):
            raise _fail(f"/mounts/{i}/destination", f"{mount.destination!r} must be absolute",
                        "config.md#mounts")
    from pyrunc.spec.idmap import IdmapError, check_idmapped_mounts

    try:
        check_idmapped_mounts(config)
    except IdmapError as exc:
        pointer, _, message = str(exc).partition(": ")
        raise _fail(pointer, message, "config.md#posix-platform-mounts") from None
    _check_host_resources(config)


def _check_host_resources(config: Config) -> None:
    """Resource settings this host cannot honour, refused before anything is created."""
    raw_linux = config.raw.get("linux") or {}
    resources = config.linux.resources
    if resources.unified or resources.memory is not None:
        from pyrunc.cgroups import is_v2_host

        if resources.unified and not is_v2_host():
            raise _fail("/linux/resources/unified", "cgroup v2 files cannot be set on this host: "
                        "its cgroup controllers are v1 hierarchies", "config-linux.md#unified")
        if resources.memory is not None and is_v2_host():
            from pyrunc.cgroups.convert import ConversionError, swap_to_v2

            try:
                swap_to_v2(resources.memory.swap or 0, resources.memory.limit or 0)
            except ConversionError as exc:
                pointer, _, message = str(exc).partition(": ")
                raise _fail(pointer, message, "config-linux.md#memory") from None
    if resources.hugepage_limits:
        from pyrunc.cgroups.hugepages import check_page_sizes

        problem = check_page_sizes(config.linux.resources)
        if problem:
            pointer, _, message = problem.partition(": ")
            raise _fail(pointer, message, "config-linux.md#huge-page-limits")
    if raw_linux.get("intelRdt") is not None:
        # As runc: refused where the kernel's resctrl filesystem is not there; pyrunc has no
        # resctrl support yet, so it refuses where it is, too, rather than ignore the request.
        why = "Intel RDT is not enabled (resctrl is not mounted)" if not _resctrl_mounted() \
            else "Intel RDT (resctrl) is not supported by pyrunc yet"
        raise _fail("/linux/intelRdt", why, "config-linux.md#intelrdt")


def _resctrl_mounted(mountinfo: str = "/proc/self/mountinfo") -> bool:
    with open(mountinfo) as f:
        return any(" - resctrl " in line for line in f)


#: IPC sysctls: namespaced by the ipc namespace.
_IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                          "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                          "kernel.shm_rmid_forced"})


def sysctl_problem(key: str, linux: Linux) -> str | None:
    """Why writing sysctl `key` would reach beyond the container (None when it would not).

    Sysctls are written through the container's /proc/sys: only the ones that belong to a
    namespace the container owns stay inside it; any other would change the host.
    """
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return None if linux.namespace("ipc") else "needs an ipc namespace (it would change " \
                                                   "the host's)"
    if key.startswith("net."):
        return None if linux.namespace("network") else "needs a network namespace (it would " \
                                                        "change the host's)"
    if key == "kernel.domainname":
        return None if linux.namespace("uts") else "needs a uts namespace (it would change " \
                                                    "the host's)"
    if key == "kernel.hostname":
        return "is not allowed: set /hostname instead"
    return "is not in a separate kernel namespace: writing it would change the host"


#: Parts of config.json that pyrunc does not act on yet, by JSON pointer. They are reported
#: (never silently dropped); the cgroup resources are reported by the cgroup driver.
NOT_APPLIED = (
    ("process", "scheduler"), ("process", "ioPriority"), ("process", "execCPUAffinity"),
    ("linux", "personality"),
)


def not_applied(config: Config) -> list[str]:
    """JSON pointers of the config parts present that pyrunc does not implement yet."""
    return [f"/{section}/{key}" for section, key in NOT_APPLIED
            if (config.raw.get(section) or {}).get(key)]


#: The kernel's uid_t is 32 bits but (uid_t)-1 means "unchanged" to setresuid(2): ids above
#: this would silently leave the process as root.
MAX_ID = 2**31 - 1


def _check_labels(config: Config) -> None:
    """A label for an LSM that is off fails create (pyrunc.lsm says why)."""
    process = config.raw.get("process") or {}
    mount_label = (config.raw.get("linux") or {}).get("mountLabel")
    if not (process.get("apparmorProfile") or process.get("selinuxLabel") or mount_label):
        return
    from pyrunc import lsm

    try:
        lsm.check(process.get("apparmorProfile"), process.get("selinuxLabel"), mount_label)
    except lsm.LSMError as exc:
        pointer, _, message = str(exc).partition(": ")
        raise _fail(pointer, message, "config.md#linux-process") from None


def _check_process_values(process: Process) -> None:
    """Values the schema allows but the kernel would misread or refuse."""
    user = process.user
    for pointer, value in [("/process/user/uid", user.uid), ("/process/user/gid", user.gid)] + [
            (f"/process/user/additionalGids/{i}", g) for i, g in enumerate(user.additional_gids)]:
        if not 0 <= value <= MAX_ID:
            raise _fail(pointer, f"{value} is out of range 0-{MAX_ID}", "config.md#user")
    for i, arg in enumerate(process.args):
        if "\0" in arg:
            raise _fail(f"/process/args/{i}", "contains a NUL byte", "config.md#process")
    for i, item in enumerate(process.env):
        if "\0" in item or "=" not in item or item.startswith("="):
            raise _fail(f"/process/env/{i}", f"{item!r} is not of the form KEY=value",
                        "config.md#process")
    if process.user.umask is not None and not 0 <= process.user.umask <= 0o777:
        raise _fail("/process/user/umask", f"{process.user.umask} is not a file mode (0-0777)",
                    "config.md#user")
