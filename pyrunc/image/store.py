"""The layer store: each layer unpacked once, by digest, and shared by every bundle.

    <root>/sha256/<hex>/     one unpacked layer (overlay-ready: whiteouts already converted)
    <root>/tmp/              layers being unpacked; renamed into place only when complete
    <root>/refs/<key>.json   one per bundle: which bundle uses the store
    <root>/lock              flock: unpacking, referencing and collecting never overlap

A layer directory is keyed by its blob digest (what the manifest names and what was verified).
It only ever appears complete (rename of a fully unpacked directory), so a crash mid-unpack
leaves only a `tmp/` entry that the next `gc` removes. Garbage collection keeps the layers
that a live bundle's `image.json` lists and removes every other layer.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil

from pyrunc.image.layout import Layer, parse_digest, verify_blob
from pyrunc.image.unpack import unpack_layer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_ROOT = "/var/lib/pyrunc/layers"
ROOT_ENV = "PYRUNC_LAYER_STORE"
BUNDLE_RECORD = "image.json"


def default_root() -> str:
    """$PYRUNC_LAYER_STORE, else /var/lib/pyrunc/layers."""
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


class LayerStore:
    """A directory of unpacked layers with references from bundles."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    # --- locking -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock (exclusive) for the duration of the block."""
        for sub in ("", "tmp", "refs"):
            os.makedirs(os.path.join(self.root, sub), mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # --- layers --------------------------------------------------------------------------------

    def layer_dir(self, digest: str) -> str:
        alg, hexpart = parse_digest(digest, "layer")
        return os.path.join(self.root, alg, hexpart)

    def layer_digests(self) -> list[str]:
        """Every layer present, as digests."""
        found: list[str] = []
        for alg in ("sha256", "sha512"):
            try:
                names = os.listdir(os.path.join(self.root, alg))
            except FileNotFoundError:
                continue
            found.extend(f"{alg}:{name}" for name in names)
        return sorted(found)

    def ensure(self, layout: str, layer: Layer, index: int) -> str:
        """The unpacked directory of `layer`, unpacking it first if the store lacks it.

        The blob is verified against its digest before a single byte is unpacked. Call with the
        lock held.
        """
        dest = self.layer_dir(layer.digest)
        if os.path.isdir(dest):
            return dest
        where = f"layer {index} ({layer.digest})"
        blob = verify_blob(layout, layer.digest, where, layer.size if layer.size >= 0 else None)
        os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
        tmp = os.path.join(self.root, "tmp", f"{os.path.basename(dest)}.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, 0o755)
        os.chmod(tmp, 0o755)  # the image's "/" unless the layer says otherwise; not the umask
        try:
            unpack_layer(blob, tmp, layer.diff_id, where)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    # --- references ----------------------------------------------------------------------------

    def _ref_path(self, bundle: str) -> str:
        key = hashlib.sha256(os.path.realpath(bundle).encode()).hexdigest()[:32]
        return os.path.join(self.root, "refs", f"{key}.json")

    def add_ref(self, bundle: str) -> None:
        """Record that `bundle` uses this store (its image.json says which layers)."""
        path = self._ref_path(bundle)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"bundle": os.path.realpath(bundle)}, f)
        os.rename(tmp, path)

    def remove_ref(self, bundle: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._ref_path(bundle))

    def _live_layers(self) -> set[str]:
        """Layers listed by bundles that still exist and still use this store; drops stale refs."""
        live: set[str] = set()
        refs = os.path.join(self.root, "refs")
        for name in os.listdir(refs):
            path = os.path.join(refs, name)
            try:
                with open(path) as f:
                    bundle = json.load(f)["bundle"]
                with open(os.path.join(bundle, BUNDLE_RECORD)) as f:
                    record = json.load(f)
            except (OSError, ValueError, KeyError, TypeError):
                os.unlink(path)  # the bundle is gone (or the ref is junk): not a user any more
                continue
            if record.get("store") != self.root:
                os.unlink(path)
                continue
            live.update(record.get("layers", []))
        return live

    def gc(self) -> list[str]:
        """Remove every layer no live bundle uses, and leftovers of interrupted unpacks."""
        removed = []
        with self.locked():
            live = self._live_layers()
            for digest in self.layer_digests():
                if digest not in live:
                    shutil.rmtree(self.layer_dir(digest))
                    removed.append(digest)
            tmp = os.path.join(self.root, "tmp")
            for name in os.listdir(tmp):
                shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
        return removed
