"""The bridge to the device controller (v1 devices.allow/deny, v2 eBPF), which lives in
`pyrunc.cgroups.devices`; this keeps the resource drivers working on a tree without it."""

from __future__ import annotations

from collections.abc import Sequence

from pyrunc.spec.resources import DeviceRule


def apply_devices(version: int, directory: str, rules: Sequence[DeviceRule]) -> None:
    """Hand the config's device rules to the device controller of cgroup `version` (1 or 2)."""
    if not rules:
        return
    import importlib.util

    if importlib.util.find_spec("pyrunc.cgroups.devices") is None:
        from pyrunc import log

        log.debug(f"device cgroup rules not applied: pyrunc.cgroups.devices is not there "
                  f"({len(rules)} rule(s))")
        return
    from pyrunc.cgroups import devices  # type: ignore[attr-defined]

    if version == 1:
        devices.apply_v1(directory, rules)
    else:
        devices.apply_v2(directory, rules)
