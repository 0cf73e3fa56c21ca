"""An independent model of the v1 kernel's device cgroup, to check pyrunc's device rules against.

Written from the kernel's documented behaviour (Documentation/admin-guide/cgroup-v1/devices.rst
and security/device_cgroup.c): a default behaviour and an exception list; `a` resets both; a rule
whose verdict differs from the default adds (or widens) the exception with exactly its type, major
and minor, otherwise it takes access bits away from that exact exception. A request is allowed, in
a deny-all cgroup, when one exception covers the device and every requested bit; in an allow-all
one, unless an exception covers the device and any requested bit.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyrunc.spec.resources import DeviceRule

ACC = {"m": 1, "r": 2, "w": 4}


class KernelV1Model:
    """devices.allow/deny semantics: behaviour + exception list, exact-match add/remove."""

    def __init__(self) -> None:
        self.allow_by_default = False  # runc plays the rules onto a deny-all cgroup
        self.exceptions: list[list] = []  # [type, major, minor, access bits]

    def write(self, rule: DeviceRule) -> None:
        bits = sum(ACC[c] for c in set(rule.access))
        if rule.type == "a":
            self.allow_by_default = rule.allow
            self.exceptions = []
            return
        same = [e for e in self.exceptions if e[:3] == [rule.type, rule.major, rule.minor]]
        if rule.allow != self.allow_by_default:      # add an exception (merge access)
            if same:
                same[0][3] |= bits
            else:
                self.exceptions.append([rule.type, rule.major, rule.minor, bits])
        else:                                        # remove access from the identical one
            for e in same:
                e[3] &= ~bits
            self.exceptions = [e for e in self.exceptions if e[3]]

    def permits(self, dev_type: str, major: int, minor: int, access: int) -> bool:
        def covers(e: list) -> bool:
            return e[0] == dev_type and e[1] in (-1, major) and e[2] in (-1, minor)
        if self.allow_by_default:
            return not any(covers(e) and e[3] & access for e in self.exceptions)
        return any(covers(e) and access & ~e[3] == 0 for e in self.exceptions)


def reference(rules: Iterable[DeviceRule]) -> KernelV1Model:
    model = KernelV1Model()
    for rule in rules:
        model.write(rule)
    return model
