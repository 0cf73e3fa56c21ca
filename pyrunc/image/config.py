"""The image config turned into a runtime config, on top of `pyrunc spec` defaults.

Follows the image spec's conversion rules: Entrypoint + Cmd become process.args, Env the
environment, WorkingDir the cwd, User a uid/gid resolved in the image's own /etc/passwd and
/etc/group (read without following symlinks out of the root), Labels, ExposedPorts and
StopSignal annotations. The root is writable: writes land in the bundle's upper directory.
"""

from __future__ import annotations

import os
from typing import Any

from pyrunc.image.layout import ImageError

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _read_root_file(rootfs: str, parts: list[str]) -> str | None:
    """A small text file inside the merged root, or None; never follows a symlink."""
    from pyrunc.image.unpack import open_dir

    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dir_fd = open_dir(root_fd, parts[:-1], "/".join(parts), "image", create=False)
    except (ImageError, OSError):
        return None
    finally:
        os.close(root_fd)
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as f:
        return f.read(1 << 20).decode("utf-8", "replace")


def _entries(text: str | None) -> list[list[str]]:
    return [line.split(":") for line in (text or "").splitlines()
            if line and not line.startswith("#")]


def resolve_user(spec: str, rootfs: str) -> dict[str, Any]:
    """`user`, `uid`, `user:group`, `uid:gid` ... -> process.user."""
    if not spec:
        return {"uid": 0, "gid": 0}
    user, _, group = spec.partition(":")
    passwd = _entries(_read_root_file(rootfs, ["etc", "passwd"]))
    groups = _entries(_read_root_file(rootfs, ["etc", "group"]))
    entry = next((e for e in passwd if len(e) >= 4 and (e[0] == user or e[2] == user)), None)
    if user.isdigit():
        uid = int(user)
    elif entry is not None:
        uid = int(entry[2])
    else:
        raise ImageError(f"image config /config/User: user {user!r} not found in the image's "
                         "/etc/passwd")
    gid = int(entry[3]) if entry is not None else 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = next((g for g in groups if len(g) >= 3 and g[0] == group), None)
            if found is None:
                raise ImageError(f"image config /config/User: group {group!r} not found in "
                                 "the image's /etc/group")
            gid = int(found[2])
    result: dict[str, Any] = {"uid": uid, "gid": gid}
    name = entry[0] if entry is not None else None
    if name and not group:
        extra = sorted({int(g[2]) for g in groups
                        if len(g) >= 4 and name in g[3].split(",") and int(g[2]) != gid})
        if extra:
            result["additionalGids"] = extra
    return result


def runtime_config(image_config: dict[str, Any], rootfs: str, *, args: list[str] | None,
                   entrypoint: list[str] | None, tty: bool) -> dict[str, Any]:
    """config.json for the image: pyrunc spec defaults plus what the image config says."""
    from pyrunc.spec.defaults import default_config

    config = default_config()
    conf = image_config.get("config") or {}
    entry = list(conf.get("Entrypoint") or [])
    cmd = list(conf.get("Cmd") or [])
    if entrypoint is not None:  # as with docker: a new entrypoint drops the image's Cmd
        entry = [word for word in entrypoint if word]
        cmd = []
    if args:
        cmd = list(args)
    if not entry + cmd:
        raise ImageError("image config /config: no Entrypoint or Cmd; give the command after --")
    env = list(conf.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    if tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    process = config["process"]
    process.update(terminal=tty, args=entry + cmd, env=env, cwd=conf.get("WorkingDir") or "/",
                   user=resolve_user(str(conf.get("User") or ""), rootfs))
    config["root"] = {"path": "rootfs", "readonly": False}
    config["annotations"] = _annotations(image_config, conf)
    return config


def _annotations(image_config: dict[str, Any], conf: dict[str, Any]) -> dict[str, str]:
    prefix = "org.opencontainers.image."
    notes: dict[str, str] = {}
    for key, field in (("os", "os"), ("architecture", "architecture"), ("variant", "variant"),
                       ("os.version", "os.version"), ("author", "author"),
                       ("created", "created")):
        value = image_config.get(field)
        if isinstance(value, str) and value:
            notes[prefix + key] = value
    if conf.get("StopSignal"):
        notes[prefix + "stopSignal"] = str(conf["StopSignal"])
    if conf.get("ExposedPorts"):
        notes[prefix + "exposedPorts"] = ",".join(sorted(conf["ExposedPorts"]))
    for key, value in (conf.get("Labels") or {}).items():
        notes.setdefault(str(key), str(value))
    return notes
