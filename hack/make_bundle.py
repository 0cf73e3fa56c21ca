#!/usr/bin/env python3
"""Build a small OCI bundle around a statically linked busybox.

The bundle is what tests, demos and the benchmark start containers from:

    DIR/config.json   written by ``pyrunc spec``, then edited (args, terminal, cgroupsPath)
    DIR/rootfs/       bin/busybox, one symlink per applet, proc sys dev tmp etc root home,
                      etc/passwd and etc/group with root, nobody and an ordinary user (1000)

Tests call this many times per run, so the expensive parts happen once per process:
the applet list, the default spec, and one private copy of busybox per filesystem that
later bundles on the same filesystem hard-link to (``rootfs_copy=True`` copies instead).

The default ``linux.cgroupsPath`` is absolute (``/pyrunc/<bundle dir name>``): a relative
or missing path would land under the caller's own cgroup, which on some hosts belongs to
someone else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
ROOTFS_DIRS = ("bin", "dev", "etc", "home/user", "proc", "root", "sys", "tmp", "usr/bin", "usr/sbin", "sbin")
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "user:x:1000:1000:user:/home/user:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\nnobody:x:65534:\n"
CGROUP_PREFIX = "/pyrunc"

# st_dev of a filesystem -> a busybox copy made by this process on that filesystem.
_busybox_per_device: dict[int, Path] = {}


class BundleError(RuntimeError):
    """A bundle could not be built; the message says which step and why."""


def find_busybox() -> Path:
    """Locate a static busybox on the host; a dynamic one would not run in the rootfs."""
    for candidate in BUSYBOX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    raise BundleError("busybox not found: install Debian's busybox-static")


def find_pyrunc() -> list[str]:
    """Return the command that runs pyrunc, preferring the one installed beside this Python.

    Tests run as ``.venv/bin/python -m pytest``, so ``.venv/bin/pyrunc`` is the build under
    test even when another pyrunc is first on PATH. ``$PYRUNC`` overrides both.
    """
    override = os.environ.get("PYRUNC")
    if override:
        return [override]
    beside = Path(sys.executable).parent / "pyrunc"
    if os.access(beside, os.X_OK):
        return [str(beside)]
    on_path = shutil.which("pyrunc")
    if on_path:
        return [on_path]
    return [sys.executable, "-m", "pyrunc"]


@lru_cache(maxsize=1)
def applet_paths() -> tuple[str, ...]:
    """Every applet as a path relative to the rootfs (from ``busybox --list-full``).

    Each applet also gets a ``bin/<name>`` link so that ``/bin/true`` and friends exist
    whatever busybox's own idea of their directory is.
    """
    busybox = find_busybox()
    out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True).stdout
    paths: set[str] = set()
    for line in out.split():
        rel = line.strip().lstrip("/")
        if not rel or rel.endswith("/busybox"):
            continue
        paths.add(rel)
        paths.add("bin/" + rel.rsplit("/", 1)[-1])
    paths.discard("bin/busybox")
    return tuple(sorted(paths))


@cache
def default_spec(spec_command: tuple[str, ...]) -> str:
    """Run ``<runtime> spec`` once in a scratch dir and keep the JSON text it wrote.

    Starting the runtime per bundle would cost a Python start-up each time; the default
    spec does not depend on the bundle, so one run per process is enough.
    """
    with tempfile.TemporaryDirectory(prefix="pyrunc-spec-") as scratch:
        cmd = [*spec_command, "spec", "--bundle", scratch]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise BundleError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr.strip()}")
        return (Path(scratch) / "config.json").read_text()


def _install_busybox(dest: Path, rootfs_copy: bool) -> None:
    """Put busybox at ``dest``: hard-link to this process's copy on the same fs, else copy.

    The host's own /bin/busybox is never linked into a bundle, so a container that writes
    to its /bin/busybox cannot change the host's.
    """
    dev = os.stat(dest.parent).st_dev
    cached = _busybox_per_device.get(dev)
    if not rootfs_copy and cached is not None and cached.exists():
        try:
            os.link(cached, dest)
            return
        except OSError:
            pass
    shutil.copy2(find_busybox(), dest)
    os.chmod(dest, 0o755)
    _busybox_per_device[dev] = dest


def build_rootfs(rootfs: Path, *, rootfs_copy: bool = False) -> None:
    """Lay out the busybox root filesystem at ``rootfs`` (which must not exist yet)."""
    rootfs.mkdir(parents=True)
    for rel in ROOTFS_DIRS:
        (rootfs / rel).mkdir(parents=True, exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    if os.geteuid() == 0:
        os.chown(rootfs / "home/user", 1000, 1000)
    _install_busybox(rootfs / "bin/busybox", rootfs_copy)
    for rel in applet_paths():
        link = rootfs / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        target = "busybox" if rel.startswith("bin/") and rel.count("/") == 1 else "/bin/busybox"
        os.symlink(target, link)
    (rootfs / "etc/passwd").write_text(PASSWD)
    (rootfs / "etc/group").write_text(GROUP)
    (rootfs / "etc/hostname").write_text("pyrunc\n")


def edit_config(
    config: dict[str, Any], args: list[str], *, tty: bool, cgroups_path: str
) -> dict[str, Any]:
    """Apply the bundle's own settings to a default spec (pure: easy to test)."""
    process = config.setdefault("process", {})
    process["terminal"] = tty
    process["args"] = list(args)
    config.setdefault("linux", {})["cgroupsPath"] = cgroups_path
    return config


def _clear_previous(path: Path) -> None:
    """Remove the rootfs and config of an earlier bundle at ``path`` so re-running works."""
    config = path / "config.json"
    if config.exists() or config.is_symlink():
        config.unlink()
    rootfs = path / "rootfs"
    if rootfs.is_symlink() or rootfs.is_file():
        rootfs.unlink()
    elif rootfs.exists():
        shutil.rmtree(rootfs)


def make_bundle(
    path: Path,
    args: list[str] | None = None,
    *,
    tty: bool = False,
    cgroups_path: str | None = None,
    rootfs_copy: bool = False,
    spec_command: list[str] | None = None,
) -> Path:
    """Create (or re-create) a busybox bundle at ``path`` and return its absolute path.

    ``args`` defaults to ``["sh"]``. ``cgroups_path`` defaults to ``/pyrunc/<dir name>``.
    ``spec_command`` is the runtime whose ``spec`` command writes the default config
    (default: pyrunc, see :func:`find_pyrunc`).
    """
    path = Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    _clear_previous(path)
    build_rootfs(path / "rootfs", rootfs_copy=rootfs_copy)
    command = tuple(spec_command) if spec_command else tuple(find_pyrunc())
    config = json.loads(default_spec(command))
    edit_config(
        config,
        args if args else ["sh"],
        tty=tty,
        cgroups_path=cgroups_path or f"{CGROUP_PREFIX}/{path.name}",
    )
    (path / "config.json").write_text(json.dumps(config, indent="\t") + "\n")
    return path


def parse_cli(argv: list[str]) -> argparse.Namespace:
    """Parse ``DIR [--tty] [--cgroups-path P] [--rootfs-copy] [-- ARGS...]``."""
    own, container_args = argv, []
    if "--" in argv:
        split = argv.index("--")
        own, container_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="make-bundle",
        description="Build an OCI bundle (busybox rootfs + config.json) for pyrunc.",
        epilog="Everything after -- becomes process.args (default: sh).",
    )
    parser.add_argument("dir", type=Path, help="bundle directory (created; an old bundle there is replaced)")
    parser.add_argument("--tty", action="store_true", help="set process.terminal to true")
    parser.add_argument("--cgroups-path", help=f"linux.cgroupsPath (default {CGROUP_PREFIX}/<dir name>)")
    parser.add_argument("--rootfs-copy", action="store_true", help="copy busybox instead of hard-linking")
    parser.add_argument(
        "--spec-runtime",
        help="runtime whose `spec` command writes the default config (default: pyrunc)",
    )
    ns = parser.parse_args(own)
    ns.args = container_args
    return ns


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; quiet on success so it chains in one-liners."""
    ns = parse_cli(sys.argv[1:] if argv is None else argv)
    try:
        make_bundle(
            ns.dir,
            ns.args,
            tty=ns.tty,
            cgroups_path=ns.cgroups_path,
            rootfs_copy=ns.rootfs_copy,
            spec_command=[ns.spec_runtime] if ns.spec_runtime else None,
        )
    except (BundleError, OSError, subprocess.CalledProcessError) as err:
        print(f"make-bundle: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
