"""An OCI image layout on disk: `oci-layout`, `index.json` and `blobs/<alg>/<hex>`.

Every blob read through this module is checked against its digest first, so a manifest, a
config or a layer that was corrupted (or swapped) is refused before anything acts on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from typing import Any, BinaryIO

MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
REF_NAME = "org.opencontainers.image.ref.name"
_ALGORITHMS = {"sha256": 64, "sha512": 128}
_CHUNK = 1 << 20


class ImageError(Exception):
    """An image that cannot be used; the message names the file or field and why."""


@dataclass(frozen=True)
class Layer:
    """One layer of a manifest: its blob digest, its uncompressed digest (diff_id), its size."""

    digest: str
    diff_id: str
    size: int
    media_type: str


@dataclass(frozen=True)
class Image:
    """A resolved image: where its blobs are, its manifest digest, layers (bottom first), config."""

    layout: str
    manifest_digest: str
    layers: tuple[Layer, ...]
    config: dict[str, Any]


def split_reference(ref: str) -> tuple[str, str | None, str | None]:
    """`DIR`, `DIR:TAG` or `DIR@DIGEST` -> (dir, tag, digest).

    A directory whose own name contains ':' is taken as a whole when it exists.
    """
    if "@" in ref:
        path, _, digest = ref.rpartition("@")
        return path, None, digest
    if os.path.isdir(ref):
        return ref, None, None
    path, sep, tag = ref.rpartition(":")
    if sep and path and "/" not in tag:
        return path, tag, None
    return ref, None, None


def parse_digest(digest: str, where: str) -> tuple[str, str]:
    """'sha256:<hex>' -> ('sha256', '<hex>'), refusing anything that could be a path trick."""
    alg, sep, hexpart = digest.partition(":")
    if not sep or alg not in _ALGORITHMS or len(hexpart) != _ALGORITHMS[alg] or \
            any(c not in "0123456789abcdef" for c in hexpart):
        raise ImageError(f"{where}: unsupported or malformed digest {digest!r}")
    return alg, hexpart


def blob_path(layout: str, digest: str, where: str) -> str:
    alg, hexpart = parse_digest(digest, where)
    return os.path.join(layout, "blobs", alg, hexpart)


def hash_stream(stream: BinaryIO, algorithm: str) -> str:
    """The digest ('alg:hex') of everything left in `stream`."""
    h = hashlib.new(algorithm)
    while chunk := stream.read(_CHUNK):
        h.update(chunk)
    return f"{algorithm}:{h.hexdigest()}"


def verify_blob(layout: str, digest: str, where: str, size: int | None = None) -> str:
    """Check blobs/<alg>/<hex> against `digest` (and `size`); returns its path."""
    path = blob_path(layout, digest, where)
    try:
        with open(path, "rb") as f:
            actual_size = os.fstat(f.fileno()).st_size
            got = hash_stream(f, digest.partition(":")[0])
    except FileNotFoundError:
        raise ImageError(f"{where}: blob {digest} not found in {layout}") from None
    if got != digest:
        raise ImageError(f"{where}: blob {digest} has digest {got}: refusing a corrupted blob")
    if size is not None and size != actual_size:
        raise ImageError(f"{where}: blob {digest} is {actual_size} bytes, descriptor says {size}")
    return path


def _read_json_blob(layout: str, descriptor: dict[str, Any], where: str) -> dict[str, Any]:
    digest = descriptor.get("digest")
    if not isinstance(digest, str):
        raise ImageError(f"{where}/digest: missing")
    path = verify_blob(layout, digest, where, descriptor.get("size"))
    with open(path, "rb") as f:
        data = json.loads(f.read())
    if not isinstance(data, dict):
        raise ImageError(f"{where}: blob {digest} is not a JSON object")
    return data


def _platform_matches(descriptor: dict[str, Any]) -> bool:
    wanted = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    plat = descriptor.get("platform") or {}
    return bool(plat.get("os", "linux") == "linux" and plat.get("architecture", wanted) == wanted)


def _pick(index: dict[str, Any], tag: str | None, digest: str | None, where: str
          ) -> dict[str, Any]:
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise ImageError(f"{where}/manifests: no manifests")
    if digest is not None:
        found = [m for m in manifests if m.get("digest") == digest]
        if not found:
            raise ImageError(f"{where}: no manifest with digest {digest}")
        return dict(found[0])
    if tag is not None:
        found = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) == tag]
        if not found:
            raise ImageError(f"{where}: no manifest tagged {tag!r}")
        return dict(found[0])
    if len(manifests) == 1:
        return dict(manifests[0])
    by_platform = [m for m in manifests if "platform" in m and _platform_matches(m)]
    if by_platform and all("platform" in m for m in manifests):
        return dict(by_platform[0])
    tags = sorted({(m.get("annotations") or {}).get(REF_NAME, "") for m in manifests} - {""})
    raise ImageError(f"{where}: {len(manifests)} manifests; name one with :TAG or @DIGEST"
                     + (f" (tags: {', '.join(tags)})" if tags else ""))


def resolve(ref: str) -> Image:
    """Find, verify and parse the image `ref` names (a layout dir with optional :TAG/@DIGEST)."""
    layout, tag, digest = split_reference(ref)
    index_path = os.path.join(layout, "index.json")
    try:
        with open(index_path, "rb") as f:
            index = json.loads(f.read())
    except FileNotFoundError:
        raise ImageError(f"{index_path}: not found (not an OCI image layout)") from None
    except ValueError as exc:
        raise ImageError(f"{index_path}: invalid JSON: {exc}") from None
    where = index_path
    descriptor = _pick(index, tag, digest, where)
    for _ in range(4):  # an index may point to an index (multi-platform images)
        media = descriptor.get("mediaType", "")
        doc = _read_json_blob(layout, descriptor, f"{where}/manifests")
        media = media or doc.get("mediaType", "")
        if media in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
            where = f"blob {descriptor['digest']}"
            descriptor = _pick(doc, None, None, where)
            continue
        if media and media not in MANIFEST_TYPES:
            raise ImageError(f"{where}: unsupported manifest media type {media!r}")
        return _image_from_manifest(layout, descriptor["digest"], doc)
    raise ImageError(f"{index_path}: image indexes nested too deeply")


def _image_from_manifest(layout: str, manifest_digest: str, manifest: dict[str, Any]) -> Image:
    where = f"manifest {manifest_digest}"
    config_desc = manifest.get("config")
    if not isinstance(config_desc, dict):
        raise ImageError(f"{where}/config: missing")
    config = _read_json_blob(layout, config_desc, f"{where}/config")
    layers_desc = manifest.get("layers")
    if not isinstance(layers_desc, list):
        raise ImageError(f"{where}/layers: missing")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(layers_desc):
        raise ImageError(f"config {config_desc['digest']}/rootfs/diff_ids: {len(diff_ids)} "
                         f"entries for {len(layers_desc)} layers")
    layers = []
    for i, (desc, diff_id) in enumerate(zip(layers_desc, diff_ids, strict=True)):
        digest = desc.get("digest")
        if not isinstance(digest, str):
            raise ImageError(f"{where}/layers/{i}/digest: missing")
        parse_digest(digest, f"{where}/layers/{i}/digest")
        parse_digest(diff_id, f"config/rootfs/diff_ids/{i}")
        layers.append(Layer(digest, diff_id, int(desc.get("size", -1)),
                            str(desc.get("mediaType", ""))))
    return Image(layout, manifest_digest, tuple(layers), config)
