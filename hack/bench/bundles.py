"""Bundles for the benchmark: one busybox rootfs, one small config.json per container.

Every container needs its own absolute ``linux.cgroupsPath`` (a relative one would land under
this process's cgroup, which on the development host belongs to the machine's supervisor),
and 1000 alive containers must not mean 1000 copies of busybox. So the rootfs is built once
and each container's bundle holds only a config.json whose ``root.path`` points at it; the
rootfs is mounted read-only (the default spec says so), so sharing it is safe.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from make_bundle import BundleError, make_bundle

# Kubernetes' defaults as containerd's CRI plugin applies them (pkg/oci/spec.go).
K8S_MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
)
K8S_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def spec_version(command: list[str]) -> str | None:
    """The ociVersion that ``<command> spec`` writes (run in a scratch directory)."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-spec-"))
    try:
        proc = subprocess.run(
            [*command, "spec"], check=False, cwd=scratch, capture_output=True, timeout=30
        )
        if proc.returncode != 0:
            return None
        return str(json.loads((scratch / "config.json").read_text()).get("ociVersion"))
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def working_spec_command(candidates: list[list[str]]) -> list[str]:
    """The first runtime whose ``spec`` works: every bundle derives from that one default spec."""
    for command in candidates:
        if spec_version(command) is not None:
            return command
    raise BundleError("no runtime's `spec` command works (tried pyrunc and runc)")


class BundleFactory:
    """Writes per-container bundles over one shared rootfs, all from one default spec."""

    def __init__(self, workdir: Path, spec_command: list[str], cgroup_root: str) -> None:
        self.workdir = workdir
        self.cgroup_root = cgroup_root.strip("/")
        base = make_bundle(
            workdir / "base",
            ["/bin/true"],
            cgroups_path=f"/{self.cgroup_root}/base",
            spec_command=spec_command,
        )
        self.rootfs = base / "rootfs"
        self.base: dict[str, Any] = json.loads((base / "config.json").read_text())
        self.oci_versions: dict[str, str] = {}  # runtime name -> ociVersion to write for it

    def align_version(self, runtime: str, command: list[str]) -> str | None:
        """Give ``runtime`` the ociVersion its own ``spec`` writes (older crun refuses newer ones).

        Only the version string changes, so every runtime still runs the same configuration.
        Returns a note for the report when it differs.
        """
        version = spec_version(command)
        if not version or version == self.base.get("ociVersion"):
            return None
        self.oci_versions[runtime] = version
        old = self.base.get("ociVersion")
        return f"{runtime} bundles: ociVersion {old} -> {version} (what `{runtime} spec` writes)"

    def cgroups_path(self, cid: str) -> str:
        return f"/{self.cgroup_root}/{cid}"

    def config(
        self,
        runtime: str,
        cid: str,
        args: list[str],
        *,
        masks: str = "default",
        memory_limit: int | None = None,
    ) -> dict[str, Any]:
        """The config for one container (pure apart from reading the base).

        ``masks``: ``default`` (the spec's own lists), ``k8s`` (Kubernetes' lists) or ``none``.
        """
        config = copy.deepcopy(self.base)
        if runtime in self.oci_versions:
            config["ociVersion"] = self.oci_versions[runtime]
        config["root"] = {"path": str(self.rootfs), "readonly": True}
        config["process"]["args"] = list(args)
        config["process"]["terminal"] = False
        linux = config.setdefault("linux", {})
        linux["cgroupsPath"] = self.cgroups_path(cid)
        if masks == "k8s":
            linux["maskedPaths"] = list(K8S_MASKED_PATHS)
            linux["readonlyPaths"] = list(K8S_READONLY_PATHS)
        elif masks == "none":
            linux["maskedPaths"] = []
            linux["readonlyPaths"] = []
        if memory_limit is not None:
            linux.setdefault("resources", {})["memory"] = {"limit": memory_limit}
        return config

    def bundle(self, runtime: str, cid: str, args: list[str], **options: Any) -> Path:
        """Write ``<workdir>/bundles/<cid>/config.json`` and return the bundle directory."""
        path = self.workdir / "bundles" / cid
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(self.config(runtime, cid, args, **options)))
        return path
