"""Port publishing and outbound NAT for bridge containers, through the `nft` program.

Each container gets a table of its own (`ip pyrunc_<host veth>`), so teardown is one
`nft delete table` and never touches anybody else's rules. Where the host has no `nft`,
asking for either feature fails with a message saying so; nothing falls back to iptables.

Where `nft` exists every bridge container's table also isolates its bridge: a new connection
forwarded into the bridge from another interface (another bridge, say) is dropped unless it
is a published port (DNAT). This matters once forwarding is on (`--nat` turns it on in the
host's namespace); without nft, bridges are kept apart only by forwarding being off.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from typing import NamedTuple

from pyrunc.network.netlink import NetworkError


class Publish(NamedTuple):
    """`--publish HOST_PORT:CONTAINER_PORT[/tcp|udp]`."""
    host_port: int
    container_port: int
    protocol: str = "tcp"

    @classmethod
    def parse(cls, text: str) -> Publish:
        ports, _, protocol = text.partition("/")
        host, sep, container = ports.partition(":")
        protocol = protocol or "tcp"
        try:
            if not sep or protocol not in ("tcp", "udp"):
                raise ValueError
            value = cls(int(host), int(container), protocol)
        except ValueError:
            raise NetworkError(f"--publish {text!r}: expected HOST_PORT:CONTAINER_PORT[/tcp|udp]"
                               ) from None
        if not (0 < value.host_port < 65536 and 0 < value.container_port < 65536):
            raise NetworkError(f"--publish {text!r}: ports are 1-65535")
        return value


def table_name(host_if: str) -> str:
    return f"pyrunc_{host_if}"


def require_nft(what: str) -> str:
    path = shutil.which("nft")
    if path is None:
        raise NetworkError(f"{what} needs nftables, and this host has no `nft` program on "
                           "PATH: install nftables, or do without --publish/--nat")
    return path


def ruleset(host_if: str, bridge: str, subnet: ipaddress.IPv4Network,
            address: ipaddress.IPv4Address, publish: list[Publish], nat: bool) -> str:
    """The container's table, in nft's own syntax (for `nft -f -`)."""
    lines = [f"table ip {table_name(host_if)} {{",
             "  chain forward {", "    type filter hook forward priority filter;",
             f'    oifname "{bridge}" iifname != "{bridge}" ct state new ct status != dnat drop',
             "  }"]
    if publish:
        rules = [f"{p.protocol} dport {p.host_port} dnat to {address}:{p.container_port}"
                 for p in publish]
        lines += ["  chain prerouting {", "    type nat hook prerouting priority dstnat;",
                  *(f"    {r}" for r in rules), "  }",
                  "  chain output {", "    type nat hook output priority -100;",
                  *(f"    fib daddr type local {r}" for r in rules), "  }"]
    if nat:
        lines += ["  chain postrouting {", "    type nat hook postrouting priority srcnat;",
                  f'    ip saddr {subnet} oifname != "{bridge}" masquerade', "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def apply(host_if: str, bridge: str, subnet: ipaddress.IPv4Network,
          address: ipaddress.IPv4Address, publish: list[Publish], nat: bool) -> None:
    if not publish and not nat:
        nft = shutil.which("nft")
        if nft is None:
            return   # isolation only: forwarding is off unless someone turned it on
    else:
        nft = require_nft("port publishing" if publish else "outbound NAT")
    result = subprocess.run([nft, "-f", "-"], input=ruleset(host_if, bridge, subnet, address,
                                                            publish, nat),
                            capture_output=True, text=True)
    if result.returncode != 0 and not publish and not nat:
        import sys

        sys.stderr.write(f"pyrunc network: warning: bridge isolation rules not loaded: "
                         f"{result.stderr.strip()}\n")
        return
    if result.returncode != 0:
        raise NetworkError(f"nft: load table {table_name(host_if)}: "
                           f"{result.stderr.strip().splitlines()[-1:] or result.returncode}")
    if nat:
        # Forwarding is per network namespace: this changes only the namespace we run in.
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1")


def remove(host_if: str) -> None:
    """Delete the container's table if there is one (no nft: there cannot be)."""
    nft = shutil.which("nft")
    if nft is None:
        return
    name = table_name(host_if)
    if subprocess.run([nft, "list", "table", "ip", name], capture_output=True).returncode == 0:
        subprocess.run([nft, "delete", "table", "ip", name], capture_output=True, check=False)
