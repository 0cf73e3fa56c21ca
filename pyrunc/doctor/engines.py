"""Who would run pyrunc here: containerd's and podman's runtime configuration, and whether
pyrunc's own state root (--root) is writable.

Configs are read, never changed. A runtime entry "uses pyrunc" when its binary path names pyrunc.
"""

from __future__ import annotations

import glob
import os
import tempfile
from typing import Any

from pyrunc.doctor import Finding, finding

CONTAINERD_CONFIG = "/etc/containerd/config.toml"

#: containers.conf(5) files in the order podman reads them (later ones override earlier ones).
PODMAN_SYSTEM_CONFS = ("/usr/share/containers/containers.conf",
                       "/etc/containers/containers.conf")
PODMAN_DROPIN_DIRS = ("/usr/share/containers/containers.conf.d",
                      "/etc/containers/containers.conf.d")


def _load_toml(path: str) -> dict[str, Any]:
    import tomllib

    with open(path, "rb") as f:
        return tomllib.load(f)


def _names_pyrunc(value: Any) -> bool:
    if isinstance(value, str):
        return "pyrunc" in value
    if isinstance(value, list):
        return any(_names_pyrunc(v) for v in value)
    return False


def _cri_runtimes(config: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Every `runtimes` table of the CRI plugin (config version 2 or 3) and the default name."""
    runtimes: dict[str, dict[str, Any]] = {}
    default = None
    for plugin_name, plugin in (config.get("plugins") or {}).items():
        if "cri" not in plugin_name or not isinstance(plugin, dict):
            continue
        section = plugin.get("containerd", {})
        if isinstance(section, dict):
            runtimes.update({k: v for k, v in (section.get("runtimes") or {}).items()
                             if isinstance(v, dict)})
            default = section.get("default_runtime_name", default)
    return runtimes, default


def containerd(path: str = CONTAINERD_CONFIG) -> Finding:
    """Is a CRI runtime in containerd's config.toml pyrunc (options.BinaryName)?"""
    check = "engine.containerd"
    if not os.path.exists(path):
        return finding(check, "engines", False, f"no {path}: containerd is not configured here "
                       "(ctr run --runc-binary PATH still works per container)", config=path)
    try:
        config = _load_toml(path)
    except (OSError, ValueError) as exc:
        return finding(check, "engines", False, f"read {path}: {exc}", config=path)
    runtimes, default = _cri_runtimes(config)
    ours = {name: entry for name, entry in runtimes.items()
            if _names_pyrunc((entry.get("options") or {}).get("BinaryName"))
            or _names_pyrunc(entry.get("runtime_path"))}
    data: dict[str, Any] = {"config": path, "runtimes": sorted(runtimes), "default": default,
                            "pyrunc": sorted(ours)}
    if not ours:
        return finding(check, "engines", False, f"no CRI runtime in {path} has a BinaryName "
                       "naming pyrunc (ctr run --runc-binary PATH still works per container)",
                       **data)
    parts = []
    for name, entry in sorted(ours.items()):
        binary = str((entry.get("options") or {}).get("BinaryName")
                     or entry.get("runtime_path"))
        usable = os.access(binary, os.X_OK)
        parts.append(f"runtime {name!r} ({entry.get('runtime_type', '?')}, BinaryName {binary}"
                     + ("" if usable else ", not executable") + ")")
        if not usable:
            return finding(check, "engines", False, f"{path}: " + parts[-1], **data)
    default_text = f"; default runtime {default!r}" if default else ""
    return finding(check, "engines", True, f"{path}: {', '.join(parts)}{default_text}", **data)


def podman_configs() -> list[str]:
    """The containers.conf files podman would read, in order; CONTAINERS_CONF alone if set."""
    override = os.environ.get("CONTAINERS_CONF")
    if override:
        return [override]
    files = [p for p in PODMAN_SYSTEM_CONFS if os.path.exists(p)]
    for directory in PODMAN_DROPIN_DIRS:
        files += sorted(glob.glob(os.path.join(directory, "*.conf")))
    if os.geteuid() != 0:
        home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        user = os.path.join(home, "containers", "containers.conf")
        if os.path.exists(user):
            files.append(user)
    return files


def podman() -> Finding:
    """Does [engine.runtimes] in containers.conf name pyrunc, and is it [engine] runtime?"""
    check = "engine.podman"
    files = podman_configs()
    if not files:
        return finding(check, "engines", False, "no containers.conf: podman uses its default "
                       "runtime (podman --runtime PATH still works per container)", configs=[])
    runtimes: dict[str, Any] = {}
    default = None
    for path in files:
        try:
            engine = _load_toml(path).get("engine") or {}
        except (OSError, ValueError) as exc:
            return finding(check, "engines", False, f"read {path}: {exc}", configs=files)
        runtimes.update(engine.get("runtimes") or {})
        default = engine.get("runtime", default)
    ours = sorted(name for name, paths in runtimes.items()
                  if name == "pyrunc" or _names_pyrunc(paths))
    data = {"configs": files, "runtimes": sorted(runtimes), "default": default, "pyrunc": ours}
    where = ", ".join(files)
    if not ours:
        return finding(check, "engines", False, f"no [engine.runtimes] entry names pyrunc in "
                       f"{where} (podman --runtime PATH still works per container)", **data)
    selected = default in ours
    why = (f"[engine.runtimes] {', '.join(ours)} in {where}; " +
           ("it is the default [engine] runtime" if selected else
            f"select it with podman --runtime {ours[0]}"))
    return finding(check, "engines", True, why, **data)


def _filesystem_of(path: str) -> str:
    """fstype of the mount that holds `path` (longest mount point prefix in mountinfo)."""
    best, fstype = "", "?"
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = left.split()[4]
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fstype = point, right.split()[0]
    return fstype


def state_root(root: str) -> Finding:
    """Can pyrunc keep container state under `root`? Tried by creating a file there (and, when
    `root` does not exist yet, the directory), removed again at once."""
    check = "state.root"
    existing, missing = root, []
    while not os.path.lexists(existing):
        missing.append(existing)
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return finding(check, "state", False, f"cannot keep state under {root}: {existing} is "
                       "not a directory", root=root)
    made: list[str] = []
    try:
        for d in reversed(missing):
            os.mkdir(d, 0o711)
            made.append(d)
        fd, probe = tempfile.mkstemp(prefix=".doctor-", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return finding(check, "state", False, f"cannot write state under {root}: "
                       f"{exc.strerror} ({exc.filename or root})", root=root)
    finally:
        for d in reversed(made):
            os.rmdir(d)
    fstype = _filesystem_of(existing)
    why = (f"{root} is writable" if not made else f"{root} can be created under {existing}")
    why += f" (on {fstype}" + (")" if fstype == "tmpfs" else
                               ": state survives a reboot; a tmpfs is best)")
    return finding(check, "state", True, why, root=root, filesystem=fstype, exists=not made)


def all_engines(root: str, containerd_config: str = CONTAINERD_CONFIG) -> list[Finding]:
    return [containerd(containerd_config), podman(), state_root(root)]
