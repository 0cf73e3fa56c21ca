"""The `events` stream: a stats event every interval and an `oom` event whenever the kernel
reports one, until the container's cgroup has no process left (or is removed).

A single loop around poll(2): the OOM watcher's descriptor wakes it at once, the timeout brings
the next stats tick, and at most every `_ALIVE_CHECK` seconds it looks whether the container is
still there. runc's v2 stream also ends when the cgroup empties; its v1 stream only when the
cgroup is removed. pyrunc ends both when the container stops, which is what a caller waits for.
"""

from __future__ import annotations

import select
import time

from pyrunc import log
from pyrunc.container.control import manager_of, stats_event
from pyrunc.container.state import ContainerState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Emit = Callable[[dict[str, Any]], None]

#: Longest time between two looks at whether the container still has processes (seconds).
_ALIVE_CHECK = 0.5


def stream(state: ContainerState, interval: float, emit: Emit) -> None:
    """Emit events for `state`'s container until it stops. `interval` is in seconds (> 0)."""
    from pyrunc.cgroups.oom import OomWatcher

    manager = manager_of(state)
    watcher = OomWatcher(state.cgroup_paths)
    oom = {"type": "oom", "id": state.id}
    try:
        poller = select.poll()
        for fd, mask in watcher.fds():
            poller.register(fd, mask)
        next_tick = time.monotonic() + interval
        while True:
            now = time.monotonic()
            timeout = max(0.0, min(next_tick - now, _ALIVE_CHECK))
            gone = False
            for fd, _ in poller.poll(timeout * 1000):
                events, removed = watcher.ready(fd)
                for _ in range(events):
                    emit(oom)
                gone = gone or removed
            if gone:
                return
            now = time.monotonic()
            if now >= next_tick:
                try:
                    emit(stats_event(state))
                except (OSError, RuntimeError, ValueError) as exc:
                    log.error(f"events: {exc}")
                # A tick missed (slow read, suspended caller) is skipped, not caught up.
                next_tick = max(next_tick + interval, now + interval / 2)
            if not manager.pids():
                for _ in range(watcher.drain()):
                    emit(oom)
                return
    finally:
        watcher.close()
