"""`pyrunc trace summarize FILE`: where the time of a recorded `--trace=FILE` went, by phase."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pyrunc.cli.flags import UsageError

if TYPE_CHECKING:
    from pyrunc.cli.main import Context

USAGE = "summarize <trace-file> | show <trace-file>"
DESCRIPTION = """\
   Read a trace written by `pyrunc --trace=FILE <command>`. `summarize` adds up the time
   of the recorded steps by phase (cgroups, namespaces, mounts, hooks, process attributes,
   seccomp, execve) and by process; `show` prints the timeline as `--trace` does on a
   terminal.
"""
FLAGS: list[Any] = []


def run(ctx: Context, opts: dict[str, Any], args: list[str]) -> int:
    from pyrunc import trace

    if len(args) != 2 or args[0] not in ("summarize", "show"):
        raise UsageError("trace: expected `summarize FILE` or `show FILE`")
    try:
        events = trace.read_events(args[1])
    except OSError as exc:
        raise UsageError(f"trace: cannot read {args[1]}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"trace: {args[1]} is not a trace (JSON lines): {exc}") from None
    if args[0] == "show":
        sys.stdout.write("".join(line + "\n" for line in trace.render_tree(events)))
        return 0
    if not events:
        sys.stdout.write("no events\n")
        return 0
    span = max(e["ts_us"] + e.get("dur_us", 0) for e in events) - events[0]["ts_us"]
    lines = [f"{len(events)} events over {span / 1000:.2f} ms",
             f"{'phase':<20} {'events':>7} {'time in steps':>15}"]
    for phase, count, total in trace.summarize(events):
        lines.append(f"{phase:<20} {count:>7} {total / 1000:>12.2f} ms")
    roles: dict[str, int] = {}
    for e in events:
        roles[e["role"]] = roles.get(e["role"], 0) + e.get("dur_us", 0)
    lines.append("")
    lines.append(f"{'process':<20} {'time in steps':>23}")
    for role, total in sorted(roles.items(), key=lambda item: -item[1]):
        lines.append(f"{role:<20} {total / 1000:>20.2f} ms")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
