"""The device cgroup: which device nodes a container may open or create.

`effective_rules` turns the config into the rule list runc would enforce: the config's
`linux.resources.devices`, then runc's default allowed devices. `apply_v1` drives a v1 devices
cgroup there through devices.allow/deny; `apply_v2` loads the same rules as an eBPF program and
attaches it to a cgroup v2 directory. Where a host cannot enforce device rules, a rule list that
restricts anything is refused (`DeviceCgroupUnavailable`): it must not mean "allow everything".
"""

from __future__ import annotations

import errno
import os

from pyrunc.cgroups import CgroupError
from pyrunc.cgroups.device_rules import (
    WILDCARD,
    DeviceRuleError,
    DeviceState,
    emulate,
    parse_list,
    rule_text,
    transition,
)
from pyrunc.spec.model import Device
from pyrunc.spec.resources import DeviceRule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

#: runc's `specconv.AllowedDevices` (runc 1.5), appended after the config's rules: (node path or
#: None, rule). A default with a path is dropped when `linux.devices` has a device at that path.
DEFAULT_RULES: tuple[tuple[str | None, DeviceRule], ...] = (
    (None, DeviceRule(True, "c", WILDCARD, WILDCARD, "m")),   # mknod of any char device
    (None, DeviceRule(True, "b", WILDCARD, WILDCARD, "m")),   # ... and any block device
    ("/dev/null", DeviceRule(True, "c", 1, 3, "rwm")),
    ("/dev/random", DeviceRule(True, "c", 1, 8, "rwm")),
    ("/dev/full", DeviceRule(True, "c", 1, 7, "rwm")),
    ("/dev/tty", DeviceRule(True, "c", 5, 0, "rwm")),
    ("/dev/zero", DeviceRule(True, "c", 1, 5, "rwm")),
    ("/dev/urandom", DeviceRule(True, "c", 1, 9, "rwm")),
    (None, DeviceRule(True, "c", 136, WILDCARD, "rwm")),      # /dev/pts/*
    (None, DeviceRule(True, "c", 5, 2, "rwm")),               # /dev/ptmx
    (None, DeviceRule(True, "c", 10, 200, "rwm")),            # /dev/net/tun
)

_POINTER = "linux.resources.devices"


class DeviceCgroupUnavailable(CgroupError):
    """The host cannot enforce device rules, and the rules restrict something."""


def effective_rules(config_rules: Iterable[DeviceRule],
                    linux_devices: Iterable[Device]) -> list[DeviceRule]:
    """runc's rule list for a container: the config's rules in order, then the defaults.

    As in runc, `linux.devices` entries get no rule of their own (the config's rules must allow
    them), but a default rule whose node the config redefines at the same path is left out, so
    that the config can restrict e.g. /dev/null. Rules later in the list win (see device_rules).
    """
    claimed = {d.path for d in linux_devices}
    return list(config_rules) + [rule for path, rule in DEFAULT_RULES
                                 if path is None or path not in claimed]


def rules_from_json(entries: Sequence[dict[str, Any]] | None) -> list[DeviceRule]:
    """`linux.resources.devices` as DeviceRules, with runc's defaults for absent fields.

    (Until the typed resources model parses the section, the cgroup glue uses this.)
    """
    rules = []
    for i, entry in enumerate(entries or ()):
        access = entry.get("access") or ""
        if not access:
            raise DeviceRuleError(f"config.json: /linux/resources/devices/{i}/access: must not "
                                  "be empty (one or more of r, w, m)")
        major, minor = entry.get("major"), entry.get("minor")
        rules.append(DeviceRule(bool(entry.get("allow")), entry.get("type") or "a",
                                WILDCARD if major is None else int(major),
                                WILDCARD if minor is None else int(minor), access))
    return rules


def running_in_user_namespace() -> bool:
    """True inside a user namespace: devices are then governed by the host (runc skips them)."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def _state(rules: Iterable[DeviceRule]) -> DeviceState:
    try:
        return emulate(rules)
    except DeviceRuleError as exc:
        raise DeviceRuleError(f"{_POINTER}: {exc}") from None


def _unavailable(state: DeviceState, why: str) -> None:
    """Refuse rules that restrict something when there is nothing to enforce them with."""
    if not state.is_allow_all():
        raise DeviceCgroupUnavailable(
            f"{_POINTER}: the device cgroup is not available on this host: {why}")


# --- cgroup v1 -----------------------------------------------------------------------------------

def apply_v1(directory: str | None, rules: Iterable[DeviceRule]) -> None:
    """Drive the v1 devices cgroup at `directory` to the state `rules` describe.

    Reads devices.list and writes only the transition (a fresh cgroup, which inherits its parent's
    allow-all, gets `a *:* rwm` denied and then each allow), then reads devices.list back to check
    the kernel holds exactly the wanted allow list.
    """
    from pyrunc.cgroups.fs import read, write

    state = _state(rules)
    if directory is None:
        _unavailable(state, "no v1 devices hierarchy is mounted")
        return
    if not os.path.exists(os.path.join(directory, "devices.allow")):
        _unavailable(state, f"{directory} has no devices.allow")
        return
    current = parse_list(read(directory, "devices.list"))
    for rule in transition(current, state):
        name = "devices.allow" if rule.allow else "devices.deny"
        write(directory, name, rule_text(rule), "set device cgroup rule")
    after = parse_list(read(directory, "devices.list"))
    if after != state and not (state.default_allow and after.default_allow):
        raise CgroupError(f"{_POINTER}: {directory}/devices.list does not show the rules written "
                          f"(wanted {state!r}, kernel has {after!r})")


# --- cgroup v2 -----------------------------------------------------------------------------------

def apply_v2(directory: str, rules: Iterable[DeviceRule]) -> None:
    """Attach the rules' eBPF filter to the cgroup v2 `directory`, replacing what was there.

    The new program is attached (BPF_F_ALLOW_MULTI) before the old ones are detached: during an
    update both filters apply for a moment (an access needs both to allow it), so nothing either
    rule set denies slips through. The program lives on through its attachment; the kernel frees
    it when the cgroup is removed.
    """
    from pyrunc.cgroups.ebpf import LICENSE, device_program
    from pyrunc.linux import bpf
    from pyrunc.linux.syscalls import KernelError, describe_oserror

    try:
        state, code = device_program(rules)
    except DeviceRuleError as exc:
        raise DeviceRuleError(f"{_POINTER}: {exc}") from None
    try:
        cgroup_fd = os.open(directory, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise describe_oserror(exc, f"open cgroup {directory}") from None
    try:
        try:
            old_ids = bpf.prog_query(cgroup_fd, step=f"list device programs of {directory}")
            prog_fd = bpf.prog_load_cgroup_device(code, LICENSE, step="load device cgroup program")
        except KernelError as exc:
            if state.is_allow_all():
                return  # nothing to enforce (runc also goes on without a filter then)
            if exc.errno in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                _unavailable(state, f"bpf(2) has no cgroup device programs ({exc})")
            raise
        try:
            bpf.prog_attach(cgroup_fd, prog_fd, bpf.BPF_F_ALLOW_MULTI,
                            step=f"attach device cgroup program to {directory}")
        finally:
            os.close(prog_fd)
        for prog_id in old_ids:
            _detach(cgroup_fd, prog_id, directory)
    finally:
        os.close(cgroup_fd)


def _detach(cgroup_fd: int, prog_id: int, directory: str) -> None:
    from pyrunc.linux import bpf
    from pyrunc.linux.syscalls import KernelError

    try:
        fd = bpf.prog_get_fd_by_id(prog_id, step=f"open device program {prog_id}")
    except KernelError as exc:
        if exc.errno == errno.ENOENT:
            return  # detached and freed meanwhile
        raise
    try:
        bpf.prog_detach(cgroup_fd, fd, step=f"detach device program {prog_id} from {directory}")
    finally:
        os.close(fd)


def attached_programs(directory: str) -> list[int]:
    """Ids of the device programs attached to the cgroup v2 `directory` itself."""
    from pyrunc.linux import bpf

    fd = os.open(directory, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        return bpf.prog_query(fd, step=f"list device programs of {directory}")
    finally:
        os.close(fd)
