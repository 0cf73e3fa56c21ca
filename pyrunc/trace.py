"""`--trace`: a timeline of every kernel-facing step, from every process pyrunc forks.

Each step is one JSON object on one line (schemas/trace-event-schema.json):

    {"ts_us": 1234, "dur_us": 56, "pid": 4242, "role": "init", "step": "mount",
     "source": "proc", "target": "/proc", "fstype": "proc", "flags": ["MS_NOSUID"], ...}

`ts_us` is CLOCK_MONOTONIC in microseconds, the same clock for every process of one host, so the
lines of the runtime, the intermediate and the init sort into one ordered whole (a process in a
time namespace subtracts its monotonic offset). Children inherit the trace file descriptor,
opened with O_APPEND: each event is a single write(2) of one line, so lines never interleave.

Off (the default), every hook is a test of one module-level boolean: nothing is formatted,
nothing imported.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

#: True while a trace is being recorded; checked by every instrumented call site.
on = False

_fd: int | None = None
_role = "runtime"
_offset_us = 0


def start(path: str) -> int:
    """Record into `path` (appended); returns the fd, which forked children keep."""
    global on, _fd
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    import fcntl

    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 300)
        os.close(fd)
        fd = high
    except OSError:
        pass
    _fd, on = fd, True
    return fd


def trace_fd() -> int | None:
    return _fd if on else None


def set_role(role: str, monotonic_offset_s: int = 0) -> None:
    """Name this process in the timeline (after a fork), and its time-namespace offset."""
    global _role, _offset_us
    _role = role
    _offset_us = monotonic_offset_s * 1_000_000


def _now_us() -> int:
    return time.monotonic_ns() // 1000 - _offset_us


def emit(step: str, start_us: int | None = None, **fields: Any) -> None:
    """Write one event; `start_us` (from `now()`) gives it a duration."""
    if not on or _fd is None:
        return
    from pyrunc import fastjson

    end = _now_us()
    record: dict[str, Any] = {"ts_us": end if start_us is None else start_us,
                              "dur_us": 0 if start_us is None else end - start_us,
                              "pid": os.getpid(), "role": _role, "step": step}
    record.update({k: v for k, v in fields.items() if v is not None})
    try:
        os.write(_fd, (fastjson.dumps(record) + "\n").encode())
    except OSError:
        pass


def now() -> int:
    return _now_us()


class _Span:
    """`with span("mount", target=...)`: one event with the step's duration, and its errno."""

    __slots__ = ("step", "fields", "start")

    def __init__(self, step: str, fields: dict[str, Any]) -> None:
        self.step, self.fields, self.start = step, fields, 0

    def __enter__(self) -> _Span:
        self.start = _now_us()
        return self

    def __exit__(self, kind: Any, exc: Any, _tb: Any) -> None:
        if exc is not None and isinstance(exc, OSError):
            import errno

            self.fields["error"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        elif exc is not None:
            self.fields["error"] = type(exc).__name__
        emit(self.step, self.start, **self.fields)


class _NoSpan:
    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *_: Any) -> None:
        return None


_NO_SPAN = _NoSpan()


def span(step: str, **fields: Any) -> _Span | _NoSpan:
    # Typed precisely: both __exit__ return None, so a type checker knows exceptions (and
    # NoReturn calls such as execve) pass through the `with`.
    return _Span(step, fields) if on else _NO_SPAN


# --- names of flags, for people -------------------------------------------------------------------

def flag_names(value: int, table: dict[str, int]) -> list[str]:
    """The names in `table` whose bits are set in `value` (what strace would print)."""
    return [name for name, bit in table.items() if bit and value & bit == bit]


def clone_flag_names(value: int) -> list[str]:
    from pyrunc.linux import consts

    return flag_names(value, {n: getattr(consts, n) for n in dir(consts)
                              if n.startswith("CLONE_NEW")})


def mount_flag_names(value: int) -> list[str]:
    from pyrunc.linux import consts

    return flag_names(value, {n: getattr(consts, n) for n in dir(consts)
                              if n.startswith("MS_")})


# --- reading a trace back -------------------------------------------------------------------------

def read_events(path: str) -> list[dict[str, Any]]:
    """Every event of a trace file, in time order."""
    import json

    with open(path) as f:
        events = [json.loads(line) for line in f if line.strip()]
    return sorted(events, key=lambda e: (e["ts_us"], e.get("dur_us", 0)))


_ROLE_ORDER = ("runtime", "intermediate", "init", "joiner", "exec")


def render_tree(events: list[dict[str, Any]]) -> Iterator[str]:
    """The timeline for a terminal: grouped by process role, times from the first event."""
    if not events:
        return
    t0 = events[0]["ts_us"]
    end = max(e["ts_us"] + e.get("dur_us", 0) for e in events)
    roles = sorted({(e["role"], e["pid"]) for e in events},
                   key=lambda rp: (_ROLE_ORDER.index(rp[0]) if rp[0] in _ROLE_ORDER else 99,
                                   rp[1]))
    for role, pid in roles:
        mine = [e for e in events if e["role"] == role and e["pid"] == pid]
        busy = sum(e.get("dur_us", 0) for e in mine)
        yield f"{role} (pid {pid}): {len(mine)} steps, {busy / 1000:.2f} ms in them"
        for e in mine:
            detail = " ".join(f"{k}={_short(v)}" for k, v in e.items()
                              if k not in ("ts_us", "dur_us", "pid", "role", "step"))
            yield (f"  +{(e['ts_us'] - t0) / 1000:8.2f} ms  {e.get('dur_us', 0) / 1000:7.2f} ms"
                   f"  {e['step']}{'  ' + detail if detail else ''}")
    yield f"total: {(end - t0) / 1000:.2f} ms"


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "|".join(str(v) for v in value) or "0"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: Phases for `trace summarize`: the first matching prefix of an event's step names it.
PHASES = (("cgroup", "cgroups"), ("hook", "hooks"), ("unshare", "namespaces"),
          ("setns", "namespaces"), ("id map", "namespaces"), ("timens", "namespaces"),
          ("mount", "mounts"), ("umount", "mounts"), ("pivot_root", "mounts"),
          ("open_tree", "mounts"), ("move_mount", "mounts"),
          ("capset", "process attributes"), ("set user", "process attributes"),
          ("rlimit", "process attributes"), ("seccomp", "seccomp"), ("execve", "execve"))


def phase_of(step: str) -> str:
    for prefix, phase in PHASES:
        if step.startswith(prefix):
            return phase
    return "other"


def summarize(events: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(phase, events, total µs), largest first."""
    totals: dict[str, list[int]] = {}
    for e in events:
        entry = totals.setdefault(phase_of(e["step"]), [0, 0])
        entry[0] += 1
        entry[1] += e.get("dur_us", 0)
    return sorted(((p, n, us) for p, (n, us) in totals.items()), key=lambda t: -t[2])
