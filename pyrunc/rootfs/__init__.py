"""The container's filesystem view: mounts, /dev, pivot_root, and the read-only/masked paths.

Called by the container's init in three steps, around the createRuntime hooks:

1. `prepare_rootfs` — still seeing the host's tree: stop mount events from reaching the host, bind
   the rootfs onto itself, mount every config.json mount inside it, populate /dev.
2. `enter_rootfs` — make the rootfs the root (pivot_root, or MS_MOVE + chroot with --no-pivot).
3. `finish_rootfs` — inside the new root: sysctls, readonlyPaths, maskedPaths, read-only remounts
   that had to wait until everything was created, root propagation.

Every destination is spelled out with `secure_join` (symlinks of the image resolved inside the
rootfs), then opened afresh for each step from a file descriptor of the rootfs with
`pyrunc.linux.inroot` (openat2 RESOLVE_IN_ROOT, or a checked walk), and mounted through that fd's
magic link: whatever the image's files become meanwhile, no mount lands outside the rootfs.

Nothing here runs unless the container has a mount namespace of its own: in the host's namespace
these steps would change the host.

The package is split by concern: `resolve` (secure_join), `mountinfo`, `helpers` (the small mount
steps), `prepare` (step 1), `cgroupfs` (the cgroup filesystems), `enter` (step 2) and `finish`
(step 3). Every submodule is imported here, at load time: the container's init may not import
anything once it is inside the container (see pyrunc.process.attrs.forbid_imports).
"""

from __future__ import annotations

from pyrunc.rootfs.cgroupfs import host_is_cgroup2_only, mount_cgroup
from pyrunc.rootfs.enter import enter_rootfs, move_root, pivot_into
from pyrunc.rootfs.finish import (
    finish_rootfs,
    make_path_readonly,
    make_root_readonly,
    mask_path,
    verified_dev_null,
    write_sysctls,
)
from pyrunc.rootfs.helpers import *  # noqa: F401,F403 - the shared steps, for the tests
from pyrunc.rootfs.mountinfo import MountInfo, parse_mountinfo, read_mountinfo
from pyrunc.rootfs.prepare import (
    has_mount_namespace,
    make_rootfs_parent_private,
    mount_bind,
    mount_entry,
    mount_filesystem,
    needs_dev_setup,
    prepare_rootfs,
    stop_propagation_to_host,
)
from pyrunc.rootfs.resolve import MAX_SYMLINKS, secure_join

__all__ = ["MAX_SYMLINKS", "MountInfo", "enter_rootfs", "finish_rootfs", "has_mount_namespace",
           "host_is_cgroup2_only", "make_path_readonly", "make_root_readonly",
           "make_rootfs_parent_private", "mask_path", "mount_bind", "mount_cgroup",
           "mount_entry", "mount_filesystem", "move_root", "needs_dev_setup", "parse_mountinfo",
           "pivot_into", "prepare_rootfs", "read_mountinfo", "secure_join",
           "stop_propagation_to_host", "verified_dev_null", "write_sysctls"]
