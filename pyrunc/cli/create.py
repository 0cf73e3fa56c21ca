"""`pyrunc create`: build a container and park its init until `pyrunc start`."""

from __future__ import annotations

import os

from pyrunc.cli.flags import Flag, UsageError, container_id_arg
from pyrunc.container.state import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cli.main import Context

USAGE = "[command options] <container-id>"
DESCRIPTION = """\
   Build a container from a bundle (a directory with config.json and a root filesystem).
   The container's first process is set up completely, then waits for `pyrunc start`;
   create returns once it waits, with the pid file written.
"""
FLAGS = [
    Flag("bundle, b", "str", help="bundle directory (default: the current directory)"),
    Flag("console-socket", "str", help="AF_UNIX socket to send the pty master to when "
         "process.terminal is set"),
    Flag("pidfd-socket", "str", help="AF_UNIX socket to send a pidfd of the container's "
         "process to"),
    Flag("pid-file", "str", help="write the container process's pid to this file"),
    Flag("no-pivot", help="move the rootfs onto / and chroot instead of pivot_root (for roots "
         "on a ramdisk)"),
    Flag("no-new-keyring", help="keep the caller's session keyring instead of a new one"),
    Flag("preserve-fds", "int", help="also pass the N file descriptors after stdio (and after "
         "any $LISTEN_FDS ones)"),
    # go-runc adds --detach when a client asks for it; create is always detached.
    Flag("detach, d", hidden=True),
]


def create_options(opts: dict[str, Any]) -> Any:
    """Shared by create and run: flags -> CreateOptions, paths made absolute first."""
    from pyrunc.container.lifecycle import CreateOptions

    if opts["preserve_fds"] < 0:
        raise UsageError("--preserve-fds must not be negative")
    return CreateOptions(
        bundle=os.path.abspath(opts["bundle"] or "."),
        pid_file=os.path.abspath(opts["pid_file"]) if opts["pid_file"] else None,
        console_socket=os.path.abspath(opts["console_socket"]) if opts["console_socket"] else None,
        pidfd_socket=os.path.abspath(opts["pidfd_socket"]) if opts["pidfd_socket"] else None,
        no_pivot=opts["no_pivot"], no_new_keyring=opts["no_new_keyring"],
        preserve_fds=opts["preserve_fds"])


def enter_bundle(bundle: str) -> None:
    """runc chdirs into the bundle: relative paths in config.json are relative to it."""
    try:
        os.chdir(bundle)
    except OSError as exc:
        from pyrunc.linux.syscalls import KernelError

        raise KernelError(exc.errno or 0, f"chdir to bundle {bundle} (no config.json there)",
                          bundle) from None


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import lifecycle

    if ctx.systemd_cgroup:
        raise ContainerError("--systemd-cgroup: the systemd cgroup driver is not supported yet; "
                             "use a plain cgroupsPath without --systemd-cgroup")
    container_id = container_id_arg(args, "create")
    options = create_options(opts)
    enter_bundle(options.bundle)
    lifecycle.create(ctx.root, container_id, options, rootless=ctx.is_rootless)
    return 0
