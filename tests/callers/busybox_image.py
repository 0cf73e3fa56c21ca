"""Build an OCI image archive (oci-layout, index.json, blobs) of the busybox rootfs.

containerd's `ctr image import` takes such an archive; building it here with tarfile and
hashlib means the caller tests need neither a registry nor podman/skopeo to get an image.
The image's default command is long-running (`sleep`), because containerd's CRI plugin runs
the sandbox ("pause") image's own command as the pod's sandbox container.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from pyrunc_testing import REPO  # noqa: F401 - puts hack/ on sys.path
from make_bundle import build_rootfs

SANDBOX_COMMAND = ["/bin/sleep", "2147483647"]
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer_tar(rootfs: Path) -> bytes:
    """The rootfs as one uncompressed tar with stable metadata (root-owned, mtime 0)."""
    buf = io.BytesIO()

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(rootfs.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False,
                    filter=normalise)
    return buf.getvalue()


def build_oci_archive(work: Path, archive: Path, ref: str = "latest",
                      command: list[str] | None = None) -> Path:
    """Write an OCI image archive of a fresh busybox rootfs to ``archive``.

    ``work`` is scratch space (the rootfs is laid out there). The manifest carries the
    ``org.opencontainers.image.ref.name`` annotation ``ref``, which `ctr image import
    --base-name NAME` turns into ``NAME:ref``.
    """
    rootfs = work / "image-rootfs"
    build_rootfs(rootfs, rootfs_copy=True)
    layer = _layer_tar(rootfs)
    layer_gz = gzip.compress(layer, mtime=0)
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": command or SANDBOX_COMMAND,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        "history": [{"created_by": "tests/callers/busybox_image.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config_bytes),
                   "size": len(config_bytes)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": _digest(layer_gz),
                    "size": len(layer_gz)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": _digest(manifest_bytes),
            "size": len(manifest_bytes),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": ref},
        }],
    }
    files: dict[str, bytes] = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
    }
    for blob in (layer_gz, config_bytes, manifest_bytes):
        files["blobs/sha256/" + _digest(blob).split(":", 1)[1]] = blob
    with tarfile.open(archive, "w") as tar:
        for name in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return archive
