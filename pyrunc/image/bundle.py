"""`bundle create`, `bundle mount` and `bundle rm`: an OCI bundle whose rootfs is an image.

A bundle made from an image holds:

    DIR/config.json   from the image config (config.py)
    DIR/rootfs/       the merged view: an overlay mounted here, or a plain copy
    DIR/upper/        the container's writes (overlay upperdir); DIR/work/ overlay's workdir
    DIR/image.json    what was used: the image, its layers, the store, overlay or copy

Every step that acquires something (a directory, the mount, the store reference) is undone in
reverse order if a later step fails, so a failed `create` leaves the bundle directory as it
found it. `rm` removes only what `create` made; the shared layers stay in the store until
`gc` finds no bundle using them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from dataclasses import dataclass

from pyrunc.image.layout import ImageError, resolve
from pyrunc.image.merge import OverlayUnusable, copy_layers, mount_overlay, unmount
from pyrunc.image.store import BUNDLE_RECORD, LayerStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

OVERLAY = "overlay"
COPY = "copy"


@dataclass
class Created:
    """What `create` produced: the rootfs mode, and why overlay was not used (if it was not)."""

    mode: str
    fallback_reason: str = ""


def _unique_top_first(dirs_bottom_first: list[str]) -> list[str]:
    """Top layer first, each layer once (a layer repeated lower down changes nothing)."""
    seen: set[str] = set()
    result = []
    for path in reversed(dirs_bottom_first):
        if path not in seen:
            seen.add(path)
            result.append(path)
    return result


def create(image_ref: str, bundle: str, store: LayerStore, *, args: list[str] | None = None,
           entrypoint: list[str] | None = None, tty: bool = False, copy: bool = False) -> Created:
    """Write a runnable bundle for `image_ref` into `bundle` (created if missing)."""
    from pyrunc.image.config import runtime_config

    image = resolve(image_ref)
    if not image.layers:
        raise ImageError(f"{image_ref}: the image has no layers")
    bundle = os.path.abspath(bundle)
    undo: list[Callable[[], None]] = []
    try:
        if not os.path.isdir(bundle):
            os.makedirs(bundle, 0o755)
            undo.append(lambda: os.rmdir(bundle))
        for name in ("config.json", BUNDLE_RECORD, "rootfs", "upper", "work"):
            if os.path.lexists(os.path.join(bundle, name)):
                raise ImageError(f"{os.path.join(bundle, name)} exists: not an empty bundle "
                                 "directory")
        with store.locked():
            layer_dirs = [store.ensure(image.layout, layer, i)
                          for i, layer in enumerate(image.layers)]
            result = _make_rootfs(bundle, layer_dirs, copy, undo)
            config = runtime_config(image.config, os.path.join(bundle, "rootfs"), args=args,
                                    entrypoint=entrypoint, tty=tty)
            record = {"image": image_ref, "manifest": image.manifest_digest,
                      "store": store.root, "mode": result.mode,
                      "fallback": result.fallback_reason,
                      "layers": [layer.digest for layer in image.layers]
                      if result.mode == OVERLAY else []}
            for name, doc in (("config.json", config), (BUNDLE_RECORD, record)):
                path = os.path.join(bundle, name)
                with open(path, "x") as f:
                    json.dump(doc, f, indent="\t")
                undo.append(lambda path=path: os.unlink(path))  # type: ignore[misc]
            store.add_ref(bundle)
    except BaseException:
        for step in reversed(undo):
            with contextlib.suppress(OSError):
                step()
        raise
    return result


def _make_rootfs(bundle: str, layer_dirs: list[str], copy: bool,
                 undo: list[Callable[[], None]]) -> Created:
    rootfs = os.path.join(bundle, "rootfs")
    os.mkdir(rootfs, 0o755)
    undo.append(lambda: shutil.rmtree(rootfs))
    reason = "--copy was given"
    if not copy:
        upper, work = os.path.join(bundle, "upper"), os.path.join(bundle, "work")
        for path in (upper, work):
            os.mkdir(path, 0o755)
            undo.append(lambda path=path: shutil.rmtree(path))  # type: ignore[misc]
        # The merged "/" shows the upper dir's owner and mode: give it the image's.
        top = os.stat(layer_dirs[-1])
        os.chown(upper, top.st_uid, top.st_gid)
        os.chmod(upper, stat.S_IMODE(top.st_mode))
        try:
            mount_overlay(_unique_top_first(layer_dirs), upper, work, rootfs)
        except (OSError, OverlayUnusable) as exc:
            reason = str(exc)
            for _ in range(2):  # upper and work are not needed for a copy
                undo.pop()()
        else:
            undo.append(lambda: unmount(rootfs))
            return Created(OVERLAY)
    copy_layers(layer_dirs, rootfs)
    return Created(COPY, reason)


def read_record(bundle: str) -> dict[str, object]:
    path = os.path.join(bundle, BUNDLE_RECORD)
    try:
        with open(path) as f:
            record: dict[str, object] = json.load(f)
    except FileNotFoundError:
        raise ImageError(f"{path}: not found: {bundle} was not made by `pyrunc bundle create`"
                         ) from None
    return record


def mount(bundle: str) -> bool:
    """Mount an overlay bundle's rootfs again (after a reboot); False if already mounted."""
    bundle = os.path.abspath(bundle)
    record = read_record(bundle)
    rootfs = os.path.join(bundle, "rootfs")
    if record.get("mode") != OVERLAY:
        raise ImageError(f"{bundle}: its rootfs is a plain copy, there is nothing to mount")
    if os.path.ismount(rootfs):
        return False
    store = LayerStore(str(record["store"]))
    layers = [str(d) for d in record["layers"]]  # type: ignore[attr-defined]
    dirs = [store.layer_dir(d) for d in layers]
    missing = [d for d, path in zip(layers, dirs, strict=True) if not os.path.isdir(path)]
    if missing:
        raise ImageError(f"{bundle}: layers missing from {store.root}: {', '.join(missing)}; "
                         "create the bundle again")
    mount_overlay(_unique_top_first(dirs), os.path.join(bundle, "upper"),
                  os.path.join(bundle, "work"), rootfs)
    return True


def remove(bundle: str) -> None:
    """Unmount the rootfs and remove what `create` made (never the shared layers)."""
    bundle = os.path.abspath(bundle)
    record = read_record(bundle)
    rootfs = os.path.join(bundle, "rootfs")
    if os.path.ismount(rootfs):
        unmount(rootfs)
    for name in ("rootfs", "upper", "work"):
        shutil.rmtree(os.path.join(bundle, name), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(bundle, "config.json"))
    LayerStore(str(record["store"])).remove_ref(bundle)
    os.unlink(os.path.join(bundle, BUNDLE_RECORD))
    with contextlib.suppress(OSError):
        os.rmdir(bundle)  # only when nothing else of the user's is in it
