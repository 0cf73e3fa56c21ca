"""`pyrunc doctor`: what this host offers containers, each finding `works` or `does not`, and why.

pyrunc's own command (runc has none). The probes live in `pyrunc.doctor`; this module only
parses the flags and prints.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pyrunc.cli.flags import Flag, UsageError

if TYPE_CHECKING:
    from pyrunc.cli.main import Context

USAGE = "[--format text|json]"
DESCRIPTION = """\
   Probe this host for what containers need: the eight namespaces and user-namespace
   limits, the cgroup layout and controllers, overlayfs and idmapped mounts, openat2, pidfd,
   seccomp and libseccomp, security modules, the capability bounding set and hard rlimits,
   containerd's and podman's runtime configuration, and whether the state root (--root) is
   writable. Every probe really tries the thing, in a throw-away child; nothing is left behind.
"""
FLAGS = [
    Flag("format, f", "str", "text", help="text or json (schemas/doctor-schema.json)"),
    Flag("containerd-config", "str", "/etc/containerd/config.toml",
         help="containerd configuration file to inspect"),
]


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    if args:
        raise UsageError("doctor takes no arguments")
    if opts["format"] not in ("text", "json"):
        raise UsageError(f'invalid --format value "{opts["format"]}": must be text or json')
    from pyrunc.doctor import report

    sys.stdout.write(report.run(ctx.root, opts["format"], opts["containerd_config"]))
    return 0
