"""The merged view of an image's layers: an overlay mount, or a plain copy where overlay fails.

Overlay: `lowerdir` is the image's layers (top layer first), `upperdir` the container's writes
(one per bundle), `workdir` overlay's scratch space next to it. The layer directories already
hold overlay whiteouts (unpack.py), so the kernel applies deletions and opaque directories.

Copy: the same change sets applied by hand, bottom layer first, into a plain directory: a
whiteout device removes the path below it, an opaque directory drops what lower layers put in
it, hard links inside one layer stay hard links. The copy is the container's own (there is no
separate upper dir: writes land in the copy).
"""

from __future__ import annotations

import os
import shutil
import stat

from pyrunc.image.layout import ImageError
from pyrunc.image.unpack import OPAQUE_XATTR

_MAX_OPTIONS = 4095  # mount(2) copies at most one page of options


class OverlayUnusable(ImageError):
    """The overlay cannot be described for these paths: the caller may copy instead."""


def overlay_options(lowers_top_first: list[str], upper: str, work: str) -> str:
    for path in (*lowers_top_first, upper, work):
        if any(c in path for c in ",:\\"):
            raise OverlayUnusable(f"overlay: path {path!r} contains ',', ':' or '\\', which "
                                  "overlay options cannot carry: use another store or bundle path")
    options = f"lowerdir={':'.join(lowers_top_first)},upperdir={upper},workdir={work}"
    if len(options) > _MAX_OPTIONS:
        raise OverlayUnusable(f"overlay: {len(lowers_top_first)} layers make {len(options)} "
                              "bytes of mount options (at most 4095): use a shorter --store path")
    return options


def mount_overlay(lowers_top_first: list[str], upper: str, work: str, target: str) -> None:
    """Mount the overlay on `target`; raises KernelError naming the step and errno."""
    from pyrunc.linux.syscalls import mount

    mount("overlay", target, "overlay", 0, overlay_options(lowers_top_first, upper, work),
          step=f"mount overlay on {target}")


def unmount(target: str) -> None:
    from pyrunc.linux.syscalls import umount2

    umount2(target, 0)


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _copy_attrs(src: str, dst: str, st: os.stat_result) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        for name in os.listxattr(src, follow_symlinks=False):
            if not name.startswith("trusted.overlay."):
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                            follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _apply_dir(src_dir: str, dst_dir: str, links: dict[tuple[int, int], str]) -> None:
    for entry in sorted(os.scandir(src_dir), key=lambda e: e.name):
        src = entry.path
        dst = os.path.join(dst_dir, entry.name)
        st = os.lstat(src)
        if _is_whiteout(st):
            _remove(dst)
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                existing: os.stat_result | None = os.lstat(dst)
            except FileNotFoundError:
                existing = None
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                os.unlink(dst)  # a symlink or file below: never descend through it
                existing = None
            if existing is not None and _opaque(src):
                shutil.rmtree(dst)
                existing = None
            if existing is None:
                os.mkdir(dst, 0o700)
            _apply_dir(src, dst, links)
            _copy_attrs(src, dst, st)
            continue
        _remove(dst)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            os.link(links[key], dst, follow_symlinks=False)
            continue
        if stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, dst, follow_symlinks=False)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        else:
            os.mknod(dst, st.st_mode, st.st_rdev)
        _copy_attrs(src, dst, st)
        links[key] = dst


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def copy_layers(layers_bottom_first: list[str], target: str) -> None:
    """Apply each layer directory onto the directory `target`, bottom layer first."""
    for layer in layers_bottom_first:
        _apply_dir(layer, target, {})
    root_st = os.lstat(layers_bottom_first[-1]) if layers_bottom_first else None
    if root_st is not None:
        _copy_attrs(layers_bottom_first[-1], target, root_st)
