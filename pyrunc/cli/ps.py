"""`pyrunc ps`: the container's processes, through ps(1) or as a JSON list of pids."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from pyrunc.cli.flags import Flag, UsageError
from pyrunc.container.state import ContainerError

if TYPE_CHECKING:
    from pyrunc.cli.main import Context

USAGE = "[command options] <container-id> [ps options]"
DESCRIPTION = """\
   With --format json, print the host pids of every process in the container's cgroup as
   a JSON list. Otherwise run ps(1) with the given options (default -ef) and keep its header
   and the rows whose PID column is one of the container's processes.
"""
FLAGS = [Flag("format, f", "str", "table", help="table or json")]
INTERSPERSED = False   # everything after the id belongs to ps(1)


def pid_column(header: str) -> int:
    """Index of the PID column in ps(1)'s header line."""
    try:
        return header.split().index("PID")
    except ValueError:
        raise ContainerError("couldn't find PID field in ps output") from None


def filter_rows(output: str, pids: set[int]) -> str:
    """ps(1) output reduced to its header and the rows of `pids`."""
    lines = output.split("\n")
    column = pid_column(lines[0])
    kept = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        try:
            pid = int(fields[column])
        except (IndexError, ValueError):
            raise ContainerError(f"unable to parse pid: {line!r}") from None
        if pid in pids:
            kept.append(line)
    return "".join(row + "\n" for row in kept)


def _ps_binary() -> str:
    """ps from PATH, or where Debian puts it (callers may run us with no PATH at all)."""
    found = shutil.which("ps")
    if found:
        return found
    for candidate in ("/usr/bin/ps", "/bin/ps"):
        if os.access(candidate, os.X_OK):
            return candidate
    raise ContainerError('exec: "ps": executable file not found in $PATH')


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import control

    if not args:
        raise UsageError('"ps" requires a minimum of 1 argument')
    pids = control.processes(ctx.root, args[0])
    if opts["format"] == "json":
        import json

        sys.stdout.write(json.dumps(pids or None, separators=(",", ":")) + "\n")
        return 0
    if opts["format"] != "table":
        raise ContainerError("invalid format option")
    proc = subprocess.run([_ps_binary(), *(args[1:] or ["-ef"])], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        raise ContainerError(f"exit status {proc.returncode}: {proc.stdout.strip()}")
    sys.stdout.write(filter_rows(proc.stdout, set(pids)))
    return 0
