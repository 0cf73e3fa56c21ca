"""Build OCI image layouts for tests, with Python's tarfile: layers, config, manifest, index."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ls", "cat", "stat", "find", "echo", "sort", "readlink", "id", "touch", "rm",
           "test", "[")


def _info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = 1_700_000_000
    return info


class Layer:
    """The members of one layer tar, in order."""

    def __init__(self) -> None:
        self.members: list[tuple[tarfile.TarInfo, bytes | None]] = []

    def dir(self, name: str, mode: int = 0o755, **kw: int) -> Layer:
        self.members.append((_info(name, tarfile.DIRTYPE, mode, **kw), None))
        return self

    def file(self, name: str, data: bytes | str, mode: int = 0o644, **kw: int) -> Layer:
        info = _info(name, tarfile.REGTYPE, mode, **kw)
        payload = data.encode() if isinstance(data, str) else data
        info.size = len(payload)
        self.members.append((info, payload))
        return self

    def symlink(self, name: str, target: str) -> Layer:
        info = _info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.members.append((info, None))
        return self

    def hardlink(self, name: str, target: str) -> Layer:
        info = _info(name, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        self.members.append((info, None))
        return self

    def device(self, name: str, major: int, minor: int, block: bool = False,
               mode: int = 0o666) -> Layer:
        info = _info(name, tarfile.BLKTYPE if block else tarfile.CHRTYPE, mode)
        info.devmajor, info.devminor = major, minor
        self.members.append((info, None))
        return self

    def busybox(self) -> Layer:
        self.dir("bin").file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in APPLETS:
            self.symlink(f"bin/{applet}", "busybox")
        return self

    def tar(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in self.members:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _put_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = _digest(data)
    path = layout / "blobs" / "sha256" / digest.split(":")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def write_layout(layout: Path, layers: list[Layer], config: dict[str, Any] | None = None, *,
                 compress: tuple[bool, ...] = (), tag: str = "latest") -> dict[str, Any]:
    """Write (or add to) an OCI layout; returns {'manifest': digest, 'layers': [digests]}."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    descriptors, diff_ids = [], []
    for i, layer in enumerate(layers):
        raw = layer.tar()
        diff_ids.append(_digest(raw))
        gz = compress[i] if i < len(compress) else True
        blob = gzip.compress(raw, mtime=0) if gz else raw
        desc = _put_blob(layout, blob)
        desc["mediaType"] = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
        descriptors.append(desc)
    image_config = {"architecture": "amd64", "os": "linux",
                    "config": config if config is not None else {"Cmd": ["/bin/sh"]},
                    "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_desc = _put_blob(layout, json.dumps(image_config).encode())
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": descriptors}
    manifest_desc = _put_blob(layout, json.dumps(manifest).encode())
    manifest_desc["mediaType"] = manifest["mediaType"]
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else \
        {"schemaVersion": 2, "manifests": []}
    index["manifests"].append(manifest_desc)
    index_path.write_text(json.dumps(index))
    return {"manifest": manifest_desc["digest"], "layers": [d["digest"] for d in descriptors]}


def sample_layers() -> list[Layer]:
    """Three layers exercising every change-set feature the image spec defines."""
    base = (Layer().busybox()
            .dir("etc").file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                             "app:x:1000:1000::/home/app:/bin/sh\n")
            .file("etc/group", "root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
            .dir("data").file("data/keep", "keep-v1").file("data/gone", "gone")
            .dir("opq").file("opq/old1", "old").dir("opq/sub").file("opq/sub/old2", "old")
            .dir("hl").file("hl/a", "hard").hardlink("hl/b", "hl/a")
            .file("bin/suid", "x", 0o4755).file("bin/sgid", "x", 0o2755, gid=50)
            .dir("devs").device("devs/null", 1, 3).device("devs/loop", 7, 0, block=True,
                                                              mode=0o660))
    middle = (Layer().dir("data").file("data/.wh.gone", "").file("data/keep", "keep-v2")
              .dir("opq").file("opq/.wh..wh..opq", "").file("opq/new", "new")
              .dir("links").symlink("links/abs", "/data/keep")
              .symlink("links/rel", "../data/keep"))
    top = (Layer().dir("data").file("data/added", "added", uid=1000, gid=1000)
           .dir("hl").hardlink("hl/c", "data/added"))
    return [base, middle, top]
