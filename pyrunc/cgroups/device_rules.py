"""Device rules as the v1 device cgroup understands them: a default plus a set of exceptions.

Both device controllers start from the same place. A rule list (the config's rules, then runc's
default ones) is played, in order, onto an emulated v1 device cgroup that starts as deny-all:
  * a type-"a" rule resets it: allow → allow everything, deny → deny everything;
  * any other rule either adds an exception (when its verdict differs from the default) or takes
    access bits away from the exception with exactly the same type, major and minor (when it
    agrees with the default), as the kernel does.
The result is what the v1 files are driven to and what the v2 eBPF program encodes, so one config
means the same on both.

As runc does, a rule that would take access away from only *part* of a wildcard exception (deny
`c 1:3 w` after allowing `c 1:* rw`) is refused: the v1 kernel would silently ignore it.
"""

from __future__ import annotations

from pyrunc.spec.resources import DeviceRule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import NamedTuple
else:
    from pyrunc.records import NamedTuple

# Access bits, with the values of the kernel's BPF_DEVCG_ACC_* (also used by the eBPF program).
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE
_ACCESS = (("r", ACC_READ), ("w", ACC_WRITE), ("m", ACC_MKNOD))

WILDCARD = -1


class DeviceRuleError(ValueError):
    """A device rule that cannot be enforced as written."""


class Match(NamedTuple):
    """Which devices an exception covers: type "c" or "b", major/minor (-1 = any)."""

    type: str
    major: int
    minor: int


def access_bits(access: str) -> int:
    """"rwm" (any order, any subset) → ACC_* bits; anything else is refused."""
    bits = 0
    for ch in access:
        bit = dict(_ACCESS).get(ch)
        if bit is None:
            raise DeviceRuleError(f"access {access!r}: {ch!r} is not one of r, w, m")
        bits |= bit
    if not bits:
        raise DeviceRuleError("access must not be empty (a subset of \"rwm\")")
    return bits


def access_string(bits: int) -> str:
    """ACC_* bits → "rwm" in the kernel's order."""
    return "".join(ch for ch, bit in _ACCESS if bits & bit)


def rule_text(rule: DeviceRule) -> str:
    """The rule as a line of devices.allow / devices.deny: `c 1:3 rwm`, `*` for wildcards."""
    major = "*" if rule.major == WILDCARD else str(rule.major)
    minor = "*" if rule.minor == WILDCARD else str(rule.minor)
    return f"{rule.type} {major}:{minor} {rule.access}"


class DeviceState:
    """An emulated v1 device cgroup: the default verdict and the exceptions to it."""

    __slots__ = ("default_allow", "exceptions")

    def __init__(self, default_allow: bool = False,
                 exceptions: dict[Match, int] | None = None) -> None:
        self.default_allow = default_allow
        self.exceptions: dict[Match, int] = dict(exceptions or {})

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DeviceState) and self.default_allow == other.default_allow
                and self.exceptions == other.exceptions)

    def __repr__(self) -> str:
        return f"DeviceState(default_allow={self.default_allow}, {self.ordered()})"

    def is_allow_all(self) -> bool:
        return self.default_allow and not self.exceptions

    def apply(self, rule: DeviceRule) -> None:
        """Play one rule onto the state (see the module docstring)."""
        bits = access_bits(rule.access)
        if rule.type == "a":
            self.default_allow = rule.allow
            self.exceptions = {}
            return
        if rule.type not in ("c", "b"):
            raise DeviceRuleError(f"type {rule.type!r} is not one of a, c, b")
        for number, what in ((rule.major, "major"), (rule.minor, "minor")):
            if number != WILDCARD and not 0 <= number <= 0xFFFFFFFF:
                raise DeviceRuleError(f"{what} {number} is out of range")
        match = Match(rule.type, rule.major, rule.minor)
        if rule.allow != self.default_allow:
            self.exceptions[match] = self.exceptions.get(match, 0) | bits
        else:
            self._remove(match, bits, rule)

    def _remove(self, match: Match, bits: int, rule: DeviceRule) -> None:
        for wider in (Match(match.type, WILDCARD, match.minor),
                      Match(match.type, match.major, WILDCARD),
                      Match(match.type, WILDCARD, WILDCARD)):
            if wider != match and self.exceptions.get(wider, 0) & bits:
                verdict = "allow" if rule.allow else "deny"
                held = access_string(self.exceptions[wider])
                raise DeviceRuleError(
                    f"rule {verdict} {rule_text(rule)!r} cannot be enforced: it would punch a hole "
                    f"in the wildcard rule {rule_text(_rule(wider, held, not rule.allow))!r}")
        left = self.exceptions.get(match, 0) & ~bits
        if left:
            self.exceptions[match] = left
        else:
            self.exceptions.pop(match, None)

    def ordered(self) -> list[DeviceRule]:
        """The exceptions as rules (verdict opposite to the default), sorted by major, minor, type
        (wildcards first) so that the same state always gives the same output."""
        keys = sorted(self.exceptions, key=lambda m: (m.major, m.minor, m.type))
        return [_rule(m, access_string(self.exceptions[m]), not self.default_allow) for m in keys]


def _rule(match: Match, access: str, allow: bool) -> DeviceRule:
    return DeviceRule(allow, match.type, match.major, match.minor, access)


def emulate(rules: Iterable[DeviceRule]) -> DeviceState:
    """The state a deny-all device cgroup reaches when `rules` are applied in order."""
    state = DeviceState(default_allow=False)
    for rule in rules:
        state.apply(rule)
    return state


def parse_list(text: str) -> DeviceState:
    """The state shown by a v1 devices.list.

    The file lists what is allowed: `a *:* rwm` alone means allow-all (whose deny exceptions the
    kernel does not show), anything else a deny-all default with these allow exceptions.
    """
    state = DeviceState(default_allow=False)
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if not fields:
            continue
        if len(fields) != 4:
            raise DeviceRuleError(f"devices.list: malformed line {line!r}")
        kind, major, minor, access = fields
        numbers = [WILDCARD if n == "*" else int(n) for n in (major, minor)]
        state.apply(DeviceRule(True, kind, numbers[0], numbers[1], access))
    return state


def transition(current: DeviceState, target: DeviceState) -> list[DeviceRule]:
    """The writes (allow/deny rules) that take a v1 cgroup from `current` to `target`.

    A change of default — or a current allow-all default, whose deny exceptions cannot be read
    back — needs the disruptive `a *:* rwm` first; otherwise only the differences are written, so
    an update does not briefly cut a running container off its devices.
    """
    out: list[DeviceRule] = []
    old = current.exceptions
    if current.default_allow or current.default_allow != target.default_allow:
        out.append(DeviceRule(target.default_allow, "a", WILDCARD, WILDCARD, "rwm"))
        old = {}
    for match in sorted(old, key=lambda m: (m.major, m.minor, m.type)):
        dropped = old[match] & ~target.exceptions.get(match, 0)
        if dropped:
            out.append(_rule(match, access_string(dropped), target.default_allow))
    for rule in target.ordered():
        gained = access_bits(rule.access) & ~old.get(Match(rule.type, rule.major, rule.minor), 0)
        if gained:
            out.append(rule._replace(access=access_string(gained)))
    return out
