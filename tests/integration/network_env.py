"""Test "hosts" for networking: network namespaces the tests create, and pyrunc run inside one.

pyrunc runs under `nsenter --net=<test netns>`: only the network namespace changes (unlike
`ip netns exec`, which also makes a private mount namespace), so the netns pin a create
mounts in the state directory is still there for the delete that follows. Nothing here sends
traffic anywhere but to addresses inside these namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from pyrunc_testing import CGROUP_PREFIX, Runtime, make_bundle, pyrunc_command


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class NetHost:
    """A network namespace standing in for the host, with its own pyrunc state root."""

    def __init__(self, tmp: Path, tag: str) -> None:
        self.name = f"pyrunc-t-{tag}-{uuid.uuid4().hex[:6]}"
        ip("netns", "add", self.name)
        ip("-n", self.name, "link", "set", "lo", "up")
        self.path = f"/run/netns/{self.name}"
        self.tmp = tmp / self.name
        self.tmp.mkdir()
        self.leases = self.tmp / "leases"
        self.runtime = Runtime(self.tmp / "state")
        self.runtime.command = ["nsenter", f"--net={self.path}", *pyrunc_command()]
        self.cgroups: list[str] = []
        self.own_links: list[str] = []   # made by the test itself: removed, not reported
        self._count = 0

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return ip("-n", self.name, *args, check=check)

    def add_veth(self, name: str, peer: str) -> None:
        self.ip("link", "add", name, "type", "veth", "peer", "name", peer)
        self.own_links += [name, peer]

    def nft(self, *args: str) -> str:
        return subprocess.run(["nsenter", f"--net={self.path}", "nft", *args],
                              capture_output=True, text=True).stdout

    def links(self) -> list[str]:
        out = self.ip("-o", "link", "show").stdout
        return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())

    def bundle(self, *args: str, network: list[str] | None = None,
               edit: Any = None) -> Path:
        """A busybox bundle with a cgroup of its own; `network`: `pyrunc spec` flags."""
        self._count += 1
        path = self.tmp / f"bundle{self._count}"
        cgroup = f"{CGROUP_PREFIX}/{uuid.uuid4().hex[:12]}"
        self.cgroups.append(cgroup)
        make_bundle(path, list(args), cgroups_path=cgroup)
        config_path = path / "config.json"
        config = json.loads(config_path.read_text())
        if network is not None:
            spec_dir = self.tmp / f"spec{self._count}"
            spec_dir.mkdir()
            subprocess.run([*pyrunc_command(), "--root", str(self.runtime.root), "spec", "-b",
                            str(spec_dir), *network], check=True, capture_output=True)
            spec = json.loads((spec_dir / "config.json").read_text())
            config["hooks"] = spec.get("hooks", {})
            config["linux"]["namespaces"] = spec["linux"]["namespaces"]
        if edit is not None:
            edit(config)
        config_path.write_text(json.dumps(config))
        return path

    def close(self) -> list[str]:
        """Delete leftovers and the namespace; returns what a test left behind."""
        left: list[str] = []
        root = self.runtime.root
        for cid in sorted(p.name for p in root.iterdir()) if root.exists() else []:
            left.append(f"container {cid}")
            self.runtime("delete", "--force", cid, check=False)
        for name in self.own_links:
            self.ip("link", "del", name, check=False)
        extra = [name for name in self.links() if name != "lo"]
        left += [f"link {name}" for name in extra]
        routes = self.ip("route", "show").stdout.strip()
        if routes:
            left.append(f"routes {routes!r}")
        if self.leases.exists() and any(self.leases.rglob("*")):
            left.append(f"lease files {sorted(str(p) for p in self.leases.rglob('*'))}")
        ip("netns", "del", self.name, check=False)
        for cgroup in self.cgroups:
            for hierarchy in os.listdir("/sys/fs/cgroup"):
                d = Path("/sys/fs/cgroup") / hierarchy / cgroup.lstrip("/")
                if d.exists():
                    left.append(f"cgroup {d}")
                    try:
                        d.rmdir()
                    except OSError:
                        pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        return left


def netns_inode(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def in_netns_of(pid: int, *args: str) -> str:
    """Run a host command (ip) inside the network namespace of `pid`."""
    return subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", *args], capture_output=True,
                          text=True, check=True).stdout
