"""The cgroup-backed commands on an existing container: pause, resume, processes, stats.

Each one loads the container's state, asks the kernel for its status (`derive_status`) and works
on the cgroup the state recorded, through the same `CgroupManager` that created it. The status
checks and their wording are runc's: pause needs `running` or `created` ("container not running"),
resume needs `paused` ("container not paused"); events refuses a stopped container.
"""

from __future__ import annotations

from pyrunc.container.state import (
    ContainerError,
    ContainerState,
    StateDir,
    derive_status,
    validate_id,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cgroups import CgroupManager


def _open(root: str, container_id: str) -> tuple[StateDir, ContainerState]:
    validate_id(container_id)
    state_dir = StateDir(root, container_id)
    return state_dir, state_dir.load()


def manager_of(state: ContainerState) -> CgroupManager:
    from pyrunc.cgroups import CgroupError, load_manager

    if not state.cgroup_paths:
        raise CgroupError(f"container {state.id} has no cgroup")
    return load_manager(state.cgroup_paths)


def pause(root: str, container_id: str) -> None:
    """Freeze every process of a running or created container (runc: Container.Pause)."""
    validate_id(container_id)
    state_dir = StateDir(root, container_id)
    state_dir.lock()
    try:
        state = state_dir.load()
        if derive_status(state_dir, state) not in ("running", "created"):
            raise ContainerError("container not running")
        manager_of(state).freeze()
    finally:
        state_dir.unlock()


def resume(root: str, container_id: str) -> None:
    """Thaw a paused container."""
    validate_id(container_id)
    state_dir = StateDir(root, container_id)
    state_dir.lock()
    try:
        state = state_dir.load()
        if derive_status(state_dir, state) != "paused":
            raise ContainerError("container not paused")
        manager_of(state).thaw()
    finally:
        state_dir.unlock()


def processes(root: str, container_id: str) -> list[int]:
    """Host pids of every process in the container's cgroup; [] once the cgroup is empty or gone
    (runc lists a stopped container's processes too, as none)."""
    _, state = _open(root, container_id)
    if not state.cgroup_paths:
        return []
    return manager_of(state).pids()


def running_state(root: str, container_id: str) -> ContainerState:
    """The state of a container that is not stopped (what `events` works on)."""
    state_dir, state = _open(root, container_id)
    if derive_status(state_dir, state) == "stopped":
        raise ContainerError(f"container with id {container_id} is not running")
    return state


def stats_event(state: ContainerState) -> dict[str, Any]:
    """One `{"type": "stats", "id": ..., "data": {...}}` event, as `runc events` prints it."""
    from pyrunc.cgroups.stats import read_stats

    return {"type": "stats", "id": state.id, "data": read_stats(state.cgroup_paths)}
