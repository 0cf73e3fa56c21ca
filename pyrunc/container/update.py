"""`update`: change a running container's cgroup limits, and remember them in its state.

The caller gives a LinuxResources JSON object (from `-r FILE|-`, or built from flags). It is
merged into the resources the container state holds the way runc's update merges them, only the
given fields change:
  * memory: limit, reservation, swap, checkBeforeUpdate (false unless given, as in runc); a limit
    of -1 without a swap value sets swap to 0 (runc: no swap limit without a memory limit);
    kernel and kernelTCP are obsolete: a warning, never stored;
  * cpu: shares, burst, realtimePeriod/Runtime, cpus, mems, idle; quota and period each only
    when non-zero (runc keeps the old one of the pair when only the other is given); idle without
    shares sets shares to 0, so that no cpu.weight is written next to cpu.idle;
  * blockIO: weight, leafWeight; weightDevice and throttle*Device entries replace the entry of
    the same major:minor or are appended;
  * pids.limit; unified keys (each given key replaces that key);
  * devices, hugepageLimits, network and rdma are not changed by update (runc ignores them too).
The merged resources are applied through `_apply`; if that fails the old ones are applied again
(runc's rollback) and the state keeps the old ones.

Where runc's stored config differs (it records a field update did not mention as unset, while the
cgroup keeps its value), pyrunc keeps the old value: the cgroup files end up the same either way.
"""

from __future__ import annotations

import copy

from pyrunc import log
from pyrunc.container.state import ContainerError, StateDir, derive_status, validate_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Integer fields of the update input whose type is checked, by section.
_NUMBERS = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "cpu": ("shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "idle"),
    "blockIO": ("weight", "leafWeight"),
    "pids": ("limit",),
}
_IGNORED = ("devices", "hugepageLimits", "network", "rdma")


class UpdateError(ContainerError, ValueError):
    """The update input is not a LinuxResources object pyrunc can merge; names the JSON pointer."""


def check_input(update: Any) -> dict[str, Any]:
    """Light shape check of a LinuxResources object (types of the fields update merges)."""
    if not isinstance(update, dict):
        raise UpdateError("update: the resources must be a JSON object")
    for section, value in update.items():
        if value is not None and section in (*_NUMBERS, "unified") and \
                not isinstance(value, dict):
            raise UpdateError(f"update: /{section}: must be an object")
    for section, names in _NUMBERS.items():
        for name in names:
            value = (update.get(section) or {}).get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise UpdateError(f"update: /{section}/{name}: must be an integer, got {value!r}")
    for name in ("cpus", "mems"):
        value = (update.get("cpu") or {}).get(name)
        if value is not None and not isinstance(value, str):
            raise UpdateError(f"update: /cpu/{name}: must be a string, got {value!r}")
    check = (update.get("memory") or {}).get("checkBeforeUpdate")
    if check is not None and not isinstance(check, bool):
        raise UpdateError(f"update: /memory/checkBeforeUpdate: must be a boolean, got {check!r}")
    return update


def _upsert(devices: list[dict[str, Any]], entry: dict[str, Any], fields: tuple[str, ...]
            ) -> list[dict[str, Any]]:
    """Update the last entry for entry's major:minor with the given `fields`, or append it."""
    for existing in reversed(devices):
        if existing.get("major") == entry.get("major") and \
                existing.get("minor") == entry.get("minor"):
            for name in fields:
                if entry.get(name) is not None:
                    existing[name] = entry[name]
            return devices
    devices.append(dict(entry))
    return devices


def merge_resources(old: dict[str, Any] | None, update: dict[str, Any]) -> dict[str, Any]:
    """`old` with `update` applied as runc's update applies it (see the module docstring)."""
    merged = copy.deepcopy(old or {})
    mem_in = dict(update.get("memory") or {})
    cpu_in = dict(update.get("cpu") or {})
    blk_in = update.get("blockIO") or {}

    # runc's fix-ups of the input.
    if mem_in.get("limit") == -1 and mem_in.get("swap") is None:
        mem_in["swap"] = 0
    if cpu_in.get("idle") is not None and cpu_in.get("shares") is None:
        cpu_in["shares"] = 0
    if mem_in.get("kernel") is not None or mem_in.get("kernelTCP") is not None:
        log.warning("Kernel memory settings are ignored and will be removed")

    memory = merged.setdefault("memory", {})
    for name in ("limit", "reservation", "swap"):
        if mem_in.get(name) is not None:
            memory[name] = mem_in[name]
    memory["checkBeforeUpdate"] = bool(mem_in.get("checkBeforeUpdate", False))

    cpu = merged.get("cpu") or {}
    for name in ("shares", "burst", "realtimePeriod", "realtimeRuntime", "idle"):
        if cpu_in.get(name) is not None:
            cpu[name] = cpu_in[name]
    for name in ("quota", "period", "cpus", "mems"):
        if cpu_in.get(name):          # 0 or "" means "not given", as in runc
            cpu[name] = cpu_in[name]
    if cpu:
        merged["cpu"] = cpu

    blkio = merged.get("blockIO") or {}
    for name in ("weight", "leafWeight"):
        if blk_in.get(name) is not None:
            blkio[name] = blk_in[name]
    for entry in blk_in.get("weightDevice") or []:
        blkio["weightDevice"] = _upsert(blkio.get("weightDevice") or [], entry,
                                        ("weight", "leafWeight"))
    for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                "throttleWriteIOPSDevice"):
        for entry in blk_in.get(key) or []:
            blkio[key] = _upsert(blkio.get(key) or [], entry, ("rate",))
    if blkio:
        merged["blockIO"] = blkio

    limit = (update.get("pids") or {}).get("limit")
    if limit is not None:
        merged["pids"] = {**(merged.get("pids") or {}), "limit": limit}
    if update.get("unified"):
        merged["unified"] = {**(merged.get("unified") or {}), **update["unified"]}
    for key in _IGNORED:
        if update.get(key):
            log.warning(f"update: {key} cannot be changed on a running container; ignored")
    return merged


def _apply(manager: Any, resources: dict[str, Any]) -> None:
    """Hand the merged resources, typed and validated, to the cgroup drivers.

    Device rules are left out: update never changes them (runc sets SkipDevices).
    """
    from pyrunc.spec.resources import Resources

    resources = {k: v for k, v in resources.items() if k != "devices"}
    manager.apply_resources(Resources.from_json(resources))


def update(root: str, container_id: str, new: dict[str, Any]) -> None:
    """Merge `new` into the container's resources, apply them live and save them in its state."""
    from pyrunc.cgroups import load_manager

    validate_id(container_id)
    check_input(new)
    state_dir = StateDir(root, container_id)
    state_dir.lock()
    try:
        state = state_dir.load()
        if derive_status(state_dir, state) == "stopped":
            raise ContainerError("container not running")
        linux = state.config.setdefault("linux", {})
        old = linux.get("resources") or {}
        merged = merge_resources(old, new)
        manager = load_manager(state.cgroup_paths)
        try:
            _apply(manager, merged)
        except (OSError, RuntimeError):
            try:
                _apply(manager, old)
            except (OSError, RuntimeError, ValueError) as again:
                log.warning(f"setting the old limits back failed too ({again}): the state and "
                            "the cgroup files may now disagree")
            raise
        linux["resources"] = merged
        state_dir.save(state)
    finally:
        state_dir.unlock()
