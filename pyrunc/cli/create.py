"""`pyrunc create`: build a container and park its init until `pyrunc start`."""

from __future__ import annotations

import os
from typing import Any

from pyrunc.cli.flags import Flag, UsageError, container_id_arg
from pyrunc.container.state import ContainerError

USAGE = "[command options] <container-id>"
DESCRIPTION = """   The create command creates an instance of a container for a bundle. The bundle is a
   directory with a specification file named "config.json" and a root filesystem.
   The container's init waits for `pyrunc start`; the pid file is written when it is parked.
"""
FLAGS = [
    Flag("bundle, b", "str", help="path to the root of the bundle directory, defaults to the "
         "current directory"),
    Flag("console-socket", "str", help="path to an AF_UNIX socket which will receive a file "
         "descriptor referencing the master end of the console's pseudoterminal"),
    Flag("pidfd-socket", "str", hidden=True),
    Flag("pid-file", "str", help="specify the file to write the process id to"),
    Flag("no-pivot", help="do not use pivot root to jail process inside rootfs. This should be "
         "used whenever the rootfs is on top of a ramdisk"),
    Flag("no-new-keyring", help="do not create a new session keyring for the container. This "
         "will cause the container to inherit the calling processes session key"),
    Flag("preserve-fds", "int", help="Pass N additional file descriptors to the container "
         "(stdio + $LISTEN_FDS + N in total)"),
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


def run(ctx: Any, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import lifecycle

    if ctx.systemd_cgroup:
        raise ContainerError("--systemd-cgroup: the systemd cgroup driver is not supported yet; "
                             "use a plain cgroupsPath without --systemd-cgroup")
    container_id = container_id_arg(args, "create")
    options = create_options(opts)
    enter_bundle(options.bundle)
    lifecycle.create(ctx.root, container_id, options, rootless=ctx.is_rootless)
    return 0
