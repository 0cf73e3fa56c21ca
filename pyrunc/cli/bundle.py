"""`pyrunc bundle create|mount|rm|gc`: bundles made from OCI images (not a runc command)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from pyrunc.cli.flags import Flag, UsageError, format_flags, parse

if TYPE_CHECKING:
    from pyrunc.cli.main import Context

STORE_FLAG = Flag("store", "str", help="layer store directory (default: $PYRUNC_LAYER_STORE or "
                  "/var/lib/pyrunc/layers)")
SUBCOMMANDS: dict[str, tuple[str, list[Flag], str]] = {
    "create": ("--image OCI_LAYOUT[:TAG|@DIGEST] DIR [-- ARGS...]", [
        Flag("image", "str", help="OCI image layout directory, optionally :TAG or @DIGEST"),
        STORE_FLAG,
        Flag("copy", help="make the rootfs a plain copy of the layers instead of an overlay"),
        Flag("tty, t", help="give the process a terminal (process.terminal)"),
        Flag("entrypoint", "list", help="replace the image's Entrypoint (repeat for each word; "
             "drops the image's Cmd)"),
    ], "write a bundle whose rootfs is the image's layers merged (overlay) under a\n"
       "      writable upper dir; ARGS replace the image's Cmd"),
    "mount": ("DIR", [], "mount an image bundle's overlay rootfs again (after a reboot)"),
    "rm": ("DIR", [], "unmount an image bundle's rootfs and remove the bundle (not the layers)"),
    "gc": ("", [STORE_FLAG], "remove the layers no image bundle uses any more"),
}

USAGE = "create|mount|rm|gc [options] ..."
DESCRIPTION = "\n".join(
    f"   {name} {usage}\n      {text}\n"
    + "".join(f"   {line}\n" for line in format_flags(flags).splitlines())
    for name, (usage, flags, text) in SUBCOMMANDS.items())
FLAGS: list[Flag] = []
INTERSPERSED = False


def _store(path: str) -> Any:
    from pyrunc.image.store import LayerStore, default_root

    return LayerStore(path or default_root())


def _containers_using(root: str, bundle: str) -> list[str]:
    """Ids of containers under --root whose bundle is `bundle` and that are not stopped."""
    from pyrunc.container.state import ContainerError, StateDir, derive_status, list_ids

    using = []
    for container_id in list_ids(root):
        state_dir = StateDir(root, container_id)
        try:
            state = state_dir.load()
        except (ContainerError, OSError, ValueError):
            continue
        if os.path.realpath(state.bundle) == bundle and \
                derive_status(state_dir, state) != "stopped":
            using.append(container_id)
    return using


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc import log

    if not args or args[0] not in SUBCOMMANDS:
        raise UsageError(f"bundle needs one of: {', '.join(SUBCOMMANDS)}")
    sub, rest = args[0], args[1:]
    extra: list[str] | None = None
    if "--" in rest:
        cut = rest.index("--")
        rest, extra = rest[:cut], rest[cut + 1:]
    sub_opts, positionals = parse(rest, SUBCOMMANDS[sub][1])
    if extra is not None and sub != "create":
        raise UsageError(f"bundle {sub} takes no -- ARGS")
    if sub == "gc":
        if positionals:
            raise UsageError("bundle gc takes no arguments")
        for digest in _store(sub_opts["store"]).gc():
            sys.stdout.write(f"removed {digest}\n")
        return 0
    if len(positionals) != 1:
        raise UsageError(f"bundle {sub} requires exactly one DIR")
    bundle = os.path.abspath(positionals[0])

    from pyrunc.image import bundle as image_bundle

    if sub == "create":
        if not sub_opts["image"]:
            raise UsageError("bundle create requires --image OCI_LAYOUT[:TAG|@DIGEST]")
        made = image_bundle.create(sub_opts["image"], bundle, _store(sub_opts["store"]),
                                   args=extra, entrypoint=sub_opts["entrypoint"] or None,
                                   tty=sub_opts["tty"], copy=sub_opts["copy"])
        if made.mode == image_bundle.COPY:
            log.warning(f"rootfs of {bundle} is a plain copy, not an overlay "
                        f"({made.fallback_reason}): it takes the layers' space again")
        return 0
    if sub == "mount":
        image_bundle.mount(bundle)
        return 0
    using = _containers_using(ctx.root, bundle)
    if using:
        raise UsageError(f"bundle rm: {bundle} is in use by container(s) {', '.join(using)}: "
                         "delete them first")
    image_bundle.remove(bundle)
    return 0
