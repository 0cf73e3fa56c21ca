"""Networking with real containers: linux.netDevices and the none/host/container/bridge modes.

Every test runs pyrunc inside a network namespace of its own ("the host", see network_env.py)
and checks that it leaves no container, link, route, lease, cgroup or netns behind. Traffic
only ever goes to addresses inside those namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from network_env import NetHost, in_netns_of, netns_inode
from pyrunc_testing import needs_root, pyrunc_command, reap_children

from pyrunc.network.bridge import host_if_name

pytestmark = [needs_root, pytest.mark.integration]


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Callable[..., NetHost]]:
    made: list[NetHost] = []

    def new(tag: str = "h") -> NetHost:
        made.append(NetHost(tmp_path, tag))
        return made[-1]

    yield new
    left = []
    for host in made:
        left += host.close()
    reap_children()
    assert not left, f"left behind: {left}"


@pytest.fixture
def host(hosts: Callable[..., NetHost]) -> NetHost:
    return hosts()


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


# --- linux.netDevices ----------------------------------------------------------------------

def _veth_with_address(host: NetHost) -> None:
    host.add_veth("pvta", "pvtb")
    host.ip("addr", "add", "10.55.0.2/24", "dev", "pvtb")
    host.ip("link", "set", "pvtb", "mtu", "1400", "up")


def _device_on_host(host: NetHost, name: str = "pvtb") -> str:
    return host.ip("-o", "addr", "show", "dev", name).stdout + \
        host.ip("-o", "link", "show", "dev", name).stdout


def _net_devices(devices: dict[str, dict[str, str]]):  # type: ignore[no-untyped-def]
    return lambda c: c["linux"].__setitem__("netDevices", devices)


def test_net_device_moves_in_renamed_with_its_address_and_returns_at_delete(host):
    _veth_with_address(host)
    b = host.bundle("sh", "-c", "ip -o addr show dev eth1; ip -o link show dev eth1",
                    edit=_net_devices({"pvtb": {"name": "eth1"}}))
    out = host.runtime("run", "--bundle", str(b), "nd1").stdout
    assert "inet 10.55.0.2/24" in out and "mtu 1400" in out and ",UP" in out, out
    assert "pvtb" not in out
    back = _device_on_host(host)
    assert "inet 10.55.0.2/24" in back and "mtu 1400" in back and ",UP" in back, back
    assert "eth1" not in host.links()


def test_net_device_returns_after_the_container_was_killed(host):
    _veth_with_address(host)
    b = host.bundle("sleep", "100", edit=_net_devices({"pvtb": {"name": "eth1"}}))
    host.runtime("run", "--detach", "--bundle", str(b), "nd2")
    assert "pvtb" not in host.links()
    pid = host.runtime.state("nd2")["pid"]
    assert "10.55.0.2/24" in in_netns_of(pid, "ip", "-o", "addr", "show", "dev", "eth1")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: host.runtime.state("nd2")["status"] == "stopped")
    host.runtime("delete", "nd2")
    assert "inet 10.55.0.2/24" in _device_on_host(host)


def test_delete_force_of_a_half_created_container_returns_its_net_device(host):
    _veth_with_address(host)
    sleep = {"path": "/bin/sleep", "args": ["sleep", "60"]}
    b = host.bundle("true", edit=lambda c: (_net_devices({"pvtb": {}})(c),
                                            c.setdefault("hooks", {}).__setitem__(
                                                "createRuntime", [sleep])))
    create = subprocess.Popen(host.runtime.argv("create", "--bundle", str(b), "nd3"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "pvtb" not in host.links())   # moved; the hook now sleeps
    finally:
        create.kill()
        create.wait()
    host.runtime("delete", "--force", "nd3")
    assert "inet 10.55.0.2/24" in _device_on_host(host)


def test_net_device_errors_are_one_line_and_leave_nothing_moved(host):
    _veth_with_address(host)
    rt = host.runtime
    missing = host.bundle("true", edit=_net_devices({"nosuchdev0": {}}))
    result = rt("create", "--bundle", str(missing), "e1", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "/linux/netDevices/nosuchdev0: no such network device" in result.stderr

    taken = host.bundle("true", edit=_net_devices({"pvtb": {"name": "lo"}}))
    result = rt("create", "--bundle", str(taken), "e2", check=False)
    assert result.returncode == 1 and "'lo' already exists in the container" in result.stderr
    assert "inet 10.55.0.2/24" in _device_on_host(host)

    holder = host.bundle("sleep", "100", edit=_net_devices({"pvtb": {}}))
    rt("create", "--bundle", str(holder), "holder")
    again = host.bundle("true", edit=_net_devices({"pvtb": {}}))
    result = rt("create", "--bundle", str(again), "e3", check=False)
    assert result.returncode == 1 and "already in container holder" in result.stderr
    rt("delete", "--force", "holder")
    assert "inet 10.55.0.2/24" in _device_on_host(host)

    shared = host.bundle("true", edit=lambda c: (_net_devices({"pvtb": {}})(c), c["linux"].
                         __setitem__("namespaces", [n for n in c["linux"]["namespaces"]
                                                    if n["type"] != "network"])))
    result = rt("create", "--bundle", str(shared), "e4", check=False)
    assert result.returncode == 1 and "needs a new network namespace" in result.stderr
    assert not list(rt.root.iterdir())


def test_a_failed_move_returns_the_devices_already_moved(host):
    _veth_with_address(host)
    host.ip("link", "add", "pvtbrx", "type", "bridge")   # a bridge cannot change namespace
    host.own_links.append("pvtbrx")
    b = host.bundle("true", edit=_net_devices({"pvtb": {"name": "eth1"}, "pvtbrx": {}}))
    result = host.runtime("create", "--bundle", str(b), "nd5", check=False)
    assert result.returncode == 1
    assert "move network device pvtbrx into the container as pvtbrx: EINVAL" in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "inet 10.55.0.2/24" in _device_on_host(host) and "pvtbrx" in host.links()
    assert not list(host.runtime.root.iterdir())


# --- none, host, container:<id> ------------------------------------------------------------

def test_none_mode_gives_only_loopback(host):
    b = host.bundle("ip", "-o", "link", network=["--network", "none"])
    out = host.runtime("run", "--bundle", str(b), "none1").stdout
    names = [line.split(":")[1].strip() for line in out.splitlines()]
    assert names == ["lo"] and "UP" in out


def test_host_mode_shares_the_hosts_links(host):
    host.add_veth("pvthost0", "pvthost1")
    b = host.bundle("ip", "-o", "link", network=["--network", "host"])
    out = host.runtime("run", "--bundle", str(b), "host1").stdout
    assert "pvthost0" in out and "pvthost1" in out


def test_host_mode_hook_refuses_a_bundle_with_its_own_netns(host):
    b = host.bundle("true", network=["--network", "host"],
                    edit=lambda c: c["linux"]["namespaces"].append({"type": "network"}))
    result = host.runtime("run", "--bundle", str(b), "host2", check=False)
    assert result.returncode != 0 and "network mode host" in result.stderr


def test_container_mode_shares_the_other_containers_netns(host):
    rt = host.runtime
    first = host.bundle("sleep", "100", network=["--network", "none"])
    rt("create", "--bundle", str(first), "c1")
    second = host.bundle("sleep", "100", network=["--network", "container:c1"])
    rt("create", "--bundle", str(second), "c2")
    pid1, pid2 = rt.state("c1")["pid"], rt.state("c2")["pid"]
    assert netns_inode(pid1) == netns_inode(pid2)
    assert netns_inode(pid1) != os.stat(host.path).st_ino
    # The hook checks what it promises: a container with a netns of its own fails it.
    state = json.dumps({"id": "x", "pid": rt.state("c1")["pid"]})
    own = subprocess.run([*pyrunc_command(), "--root", str(rt.root), "network", "up",
                          "container:c2"], input=state, capture_output=True, text=True)
    assert own.returncode == 0, own.stderr
    lonely = host.bundle("sleep", "100", network=["--network", "none"])
    rt("create", "--bundle", str(lonely), "c3")
    state = json.dumps({"id": "c3", "pid": rt.state("c3")["pid"]})
    bad = subprocess.run([*pyrunc_command(), "--root", str(rt.root), "network", "up",
                          "container:c1"], input=state, capture_output=True, text=True)
    assert bad.returncode == 1 and "not in that container's network namespace" in bad.stderr
    for cid in ("c3", "c2", "c1"):
        rt("delete", "--force", cid)


# --- bridge --------------------------------------------------------------------------------

def _bridge(host: NetHost, name: str, subnet: str, *extra: str) -> list[str]:
    return ["--network", f"bridge:{name}", "--subnet", subnet, "--state-dir",
            str(host.leases), *extra]


ECHO_SERVER = ["nc", "-ll", "-p", "7000", "-e", "sh", "-c", 'read l; echo "echo:$l"']


def test_bridge_connects_containers_on_one_bridge_and_not_across_bridges(host):
    rt = host.runtime
    server = host.bundle(*ECHO_SERVER, network=_bridge(host, "pvtbr0", "10.66.0.0/24"))
    rt("run", "--detach", "--bundle", str(server), "srv")
    pid = rt.state("srv")["pid"]
    assert "inet 10.66.0.2/24" in in_netns_of(pid, "ip", "-o", "addr", "show", "dev", "eth0")
    assert "default via 10.66.0.1" in in_netns_of(pid, "ip", "route")
    client = ["sh", "-c", "echo hello | nc -w 3 10.66.0.2 7000"]
    near = host.bundle(*client, network=_bridge(host, "pvtbr0", "10.66.0.0/24"))
    assert rt("run", "--bundle", str(near), "near").stdout.strip() == "echo:hello"
    far = host.bundle(*client, network=_bridge(host, "pvtbr1", "10.67.0.0/24"))
    result = rt("run", "--bundle", str(far), "far", check=False)
    assert "echo:" not in result.stdout and result.returncode != 0
    assert set(host.links()) >= {"pvtbr0", "lo"} and "pvtbr1" not in host.links()
    rt("delete", "--force", "srv")
    assert host.links() == ["lo"]


def test_twenty_concurrent_creates_get_twenty_distinct_addresses(host):
    rt = host.runtime
    net = _bridge(host, "pvtbr2", "10.68.0.0/24")
    bundles = [host.bundle("sleep", "100", network=net) for _ in range(20)]
    # stderr to files: each container's init inherits it, so a pipe would never see EOF.
    logs = [host.tmp / f"create{i}.err" for i in range(20)]
    procs = []
    for i, (b, log) in enumerate(zip(bundles, logs, strict=True)):
        with open(log, "w") as err:
            procs.append(subprocess.Popen(rt.argv("create", "--bundle", str(b), f"p{i}"),
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=err))
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0] * 20, [log.read_text() for log in logs]
    seen = set()
    for i in range(20):
        out = in_netns_of(rt.state(f"p{i}")["pid"], "ip", "-o", "-4", "addr", "show", "eth0")
        seen.add(out.split()[3])
    assert len(seen) == 20, seen
    leases = next(host.leases.rglob("leases")).read_text().split()
    assert len(leases) == 40
    for i in range(20):
        rt("delete", "--force", f"p{i}")
    assert host.links() == ["lo"]


def test_bridge_teardown_after_sigkill_leaves_nothing(host):
    rt = host.runtime
    b = host.bundle("sleep", "100", network=_bridge(host, "pvtbr3", "10.69.0.0/24"))
    rt("run", "--detach", "--bundle", str(b), "k1")
    assert "pvtbr3" in host.links() and any(host.leases.rglob("leases"))
    os.kill(rt.state("k1")["pid"], signal.SIGKILL)
    wait_for(lambda: rt.state("k1")["status"] == "stopped")
    rt("delete", "k1")
    assert host.links() == ["lo"]
    assert not host.ip("route").stdout.strip()
    assert not any(host.leases.rglob("*"))


def test_bridge_publish_without_nft_fails_clearly_and_rolls_back(host):
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not os.path.exists(os.path.join(d, "nft")))
    b = host.bundle("true", network=_bridge(host, "pvtbr4", "10.70.0.0/24",
                                            "--publish", "8080:80"))
    result = host.runtime("run", "--bundle", str(b), "pub",
                          env={**os.environ, "PATH": path}, check=False)
    assert result.returncode == 1
    assert "port publishing needs nftables" in result.stderr
    assert host.links() == ["lo"]
    assert not any(host.leases.rglob("*"))


needs_nft = pytest.mark.skipif(shutil.which("nft") is None, reason="needs the nft program")


@needs_nft
def test_bridge_publishes_a_port_and_removes_its_table(host):
    rt = host.runtime
    net = _bridge(host, "pvtbr5", "10.71.0.0/24", "--publish", "8080:7000")
    b = host.bundle(*ECHO_SERVER, network=net)
    rt("run", "--detach", "--bundle", str(b), "pub1")
    table = f"pyrunc_{host_if_name('pub1')}"
    assert "dnat to 10.71.0.2:7000" in host.nft("list", "table", "ip", table)
    # The host's own address on the bridge, port 8080, reaches the container's port 7000.
    reply = subprocess.run(["nsenter", f"--net={host.path}", "busybox", "sh", "-c",
                            "echo hi | busybox nc -w 3 10.71.0.1 8080"],
                           capture_output=True, text=True, timeout=30)
    assert reply.stdout.strip() == "echo:hi", reply
    rt("delete", "--force", "pub1")
    assert table not in host.nft("list", "tables")


@needs_nft
def test_bridge_nat_reaches_a_network_with_no_route_back_and_keeps_bridges_apart(hosts):
    host, outside = hosts("h"), hosts("o")
    # An "upstream" link from the host to a namespace that knows no route to the bridge.
    host.add_veth("pvtup0", "pvtup1")
    host.ip("link", "set", "pvtup1", "netns", outside.name)
    host.ip("addr", "add", "10.200.0.1/24", "dev", "pvtup0")
    host.ip("link", "set", "pvtup0", "up")
    outside.ip("addr", "add", "10.200.0.2/24", "dev", "pvtup1")
    outside.ip("link", "set", "pvtup1", "up")
    outside.own_links.append("pvtup1")
    server = subprocess.Popen(["nsenter", f"--net={outside.path}", *(["busybox"] + ECHO_SERVER)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        client = ["sh", "-c", "echo out | nc -w 3 10.200.0.2 7000"]
        plain = host.bundle(*client, network=_bridge(host, "pvtbr6", "10.72.0.0/24"))
        assert "echo:" not in host.runtime("run", "--bundle", str(plain), "nat0",
                                           check=False).stdout
        natted = host.bundle(*client, network=_bridge(host, "pvtbr6", "10.72.0.0/24", "--nat"))
        assert host.runtime("run", "--bundle", str(natted), "nat1").stdout.strip() == "echo:out"
        # Forwarding is on now; a container on another bridge still cannot reach this one.
        forwarding = subprocess.run(["nsenter", f"--net={host.path}", "cat",
                                     "/proc/sys/net/ipv4/ip_forward"],
                                    capture_output=True, text=True).stdout
        assert forwarding.strip() == "1"
        srv = host.bundle(*ECHO_SERVER, network=_bridge(host, "pvtbr6", "10.72.0.0/24", "--nat"))
        host.runtime("run", "--detach", "--bundle", str(srv), "nat2")
        across = host.bundle("sh", "-c", "echo x | nc -w 3 10.72.0.2 7000",
                             network=_bridge(host, "pvtbr7", "10.73.0.0/24", "--nat"))
        result = host.runtime("run", "--bundle", str(across), "nat3", check=False)
        assert "echo:" not in result.stdout and result.returncode != 0
        host.runtime("delete", "--force", "nat2")
    finally:
        server.kill()
        server.wait()
    host.ip("link", "del", "pvtup0", check=False)
