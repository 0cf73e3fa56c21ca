"""`pyrunc events`: a container's cgroup statistics and OOM notifications, as JSON lines."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pyrunc.cli.flags import Flag, UsageError, container_id_arg
from pyrunc.container.state import ContainerError

if TYPE_CHECKING:
    from pyrunc.cli.main import Context

USAGE = "[command options] <container-id>"
DESCRIPTION = """\
   Print one JSON object per line: {"type":"stats","id":ID,"data":{...}} every --interval
   (cpu, memory, pids, blkio, hugetlb figures from the container's cgroup, in runc's shape),
   and {"type":"oom","id":ID} each time the kernel reports the container out of memory.
   The stream ends when the container stops. With --stats, print the statistics once and exit.
"""
FLAGS = [
    Flag("interval", "str", "5s",
         help="time between two stats events (Go duration: 5s, 100ms, 1m)"),
    Flag("stats", help="print the container's statistics once, then exit"),
]

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration ("5s", "1m30s", "1.5h", "-2ms", "0") in seconds; ValueError if malformed."""
    rest = text
    sign = 1.0
    if rest[:1] in ("+", "-"):
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(text)
    total = 0.0
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        number, rest = rest[:i], rest[i:]
        if number in ("", ".") or number.count(".") > 1:
            raise ValueError(text)
        j = 0
        while j < len(rest) and not (rest[j].isdigit() or rest[j] == "."):
            j += 1
        unit, rest = rest[:j], rest[j:]
        if unit not in _UNITS:
            raise ValueError(text)     # Go: missing or unknown unit
        total += float(number) * _UNITS[unit]
    return sign * total


def _emit(event: dict[str, Any]) -> None:
    import json

    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc.container import control

    container_id = container_id_arg(args, "events")
    try:
        interval = parse_duration(opts["interval"])
    except ValueError:
        raise UsageError(f'invalid value "{opts["interval"]}" for flag -interval: '
                         "parse error") from None
    if interval <= 0:
        raise ContainerError("duration interval must be greater than 0")
    state = control.running_state(ctx.root, container_id)
    if opts["stats"]:
        _emit(control.stats_event(state))
        return 0
    from pyrunc.cli.main import resume_gc
    from pyrunc.container.events import stream

    resume_gc()   # a stream runs until the container stops
    try:
        stream(state, interval, _emit)
    except BrokenPipeError:
        return 0    # the reader went away: nothing left to tell
    return 0
