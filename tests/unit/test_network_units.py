"""The network modes' parts that need no root: leases under concurrency, nft rules, parsing."""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from pyrunc.network import leases, nft
from pyrunc.network.bridge import host_if_name, parse_subnet
from pyrunc.network.modes import Mode
from pyrunc.network.netlink import NetworkError

PYRUNC = [sys.executable, "-m", "pyrunc"]


def _lease_one(directory: str, owner: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with leases.locked(directory):
        queue.put(str(leases.allocate(directory, ipaddress.IPv4Network("10.1.0.0/26"), owner)))


def test_concurrent_allocations_never_collide(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    directory = str(tmp_path / "br")
    procs = [ctx.Process(target=_lease_one, args=(directory, f"c{i}", queue)) for i in range(20)]
    for p in procs:
        p.start()
    got = sorted(queue.get(timeout=30) for _ in procs)
    for p in procs:
        p.join()
    assert len(set(got)) == 20
    assert "10.1.0.1" not in got and "10.1.0.0" not in got   # gateway and network address
    assert sorted(leases.read(directory).values()) == sorted(f"c{i}" for i in range(20))


def test_release_of_the_last_lease_empties_the_directory(tmp_path):
    directory = str(tmp_path / "ns" / "br")
    subnet = ipaddress.IPv4Network("10.2.0.0/29")
    with leases.locked(directory):
        first = leases.allocate(directory, subnet, "a")
        assert leases.allocate(directory, subnet, "a") == first   # idempotent per owner
        second = leases.allocate(directory, subnet, "b")
        assert (str(first), str(second)) == ("10.2.0.2", "10.2.0.3")
        assert leases.release(directory, "a") == 1
        assert leases.allocate(directory, subnet, "c") == first   # freed address reused
        assert leases.release(directory, "b") == 1 and leases.release(directory, "c") == 0
        leases.remove_directory(directory)
    assert not (tmp_path / "ns").exists()


def test_a_full_subnet_is_one_clear_error(tmp_path):
    directory = str(tmp_path / "br")
    subnet = ipaddress.IPv4Network("10.3.0.0/30")   # hosts .1 (gateway) and .2
    with leases.locked(directory):
        leases.allocate(directory, subnet, "a")
        with pytest.raises(NetworkError, match="no free address left"):
            leases.allocate(directory, subnet, "b")


def test_publish_parsing():
    assert nft.Publish.parse("8080:80") == nft.Publish(8080, 80, "tcp")
    assert nft.Publish.parse("53:5353/udp") == nft.Publish(53, 5353, "udp")
    for bad in ("80", "a:b", "1:2/sctp", "0:80", "80:70000"):
        with pytest.raises(NetworkError, match="--publish"):
            nft.Publish.parse(bad)


def test_nft_ruleset_publishes_and_masquerades_in_a_table_of_its_own():
    text = nft.ruleset("pnvabc", "br0", ipaddress.IPv4Network("10.4.0.0/24"),
                       ipaddress.IPv4Address("10.4.0.2"), [nft.Publish(8080, 80)], True)
    assert text.startswith("table ip pyrunc_pnvabc {")
    assert "type nat hook prerouting priority dstnat;" in text
    assert "tcp dport 8080 dnat to 10.4.0.2:80" in text
    assert "fib daddr type local tcp dport 8080 dnat to 10.4.0.2:80" in text
    assert 'ip saddr 10.4.0.0/24 oifname != "br0" masquerade' in text
    assert "masquerade" not in nft.ruleset("p", "b", ipaddress.IPv4Network("10.4.0.0/24"),
                                           ipaddress.IPv4Address("10.4.0.2"), [], False)


def test_mode_parsing_and_names():
    assert Mode.parse("bridge") == Mode("bridge")
    assert Mode.parse("bridge:b1") == Mode("bridge", "b1")
    assert Mode.parse("container:web") == Mode("container", "web")
    for bad, why in (("bogus", "expected one of"), ("container", "needs the other"),
                     ("host:x", "takes no argument")):
        with pytest.raises(NetworkError, match=why):
            Mode.parse(bad)
    with pytest.raises(NetworkError, match="at most /30"):
        parse_subnet("10.0.0.0/31")
    assert len(host_if_name("x" * 200)) <= 15 and host_if_name("a") != host_if_name("b")


def _spec(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], dict]:  # type: ignore[type-arg]
    out = tmp_path / "b"
    out.mkdir(parents=True)
    result = subprocess.run([*PYRUNC, "--root", str(tmp_path / "root"), "spec", "-b", str(out),
                             *flags], capture_output=True, text=True)
    config = json.loads((out / "config.json").read_text()) if result.returncode == 0 else {}
    return result, config


def test_spec_network_writes_each_modes_namespaces_and_hooks(tmp_path):
    _, host = _spec(tmp_path / "host", "--network", "host")
    assert "network" not in [n["type"] for n in host["linux"]["namespaces"]]
    assert host["hooks"]["createRuntime"][0]["args"][-2:] == ["up", "host"]
    _, bridge = _spec(tmp_path / "bridge", "--network", "bridge:br9", "--subnet", "10.9.0.0/24",
                      "--publish", "80:80", "--nat")
    assert {"type": "network"} in bridge["linux"]["namespaces"]
    up = bridge["hooks"]["createRuntime"][0]
    down = bridge["hooks"]["poststop"][0]
    assert Path(up["path"]).is_absolute() and up["path"] == up["args"][0]
    assert up["args"][-6:] == ["10.9.0.0/24", "--publish", "80:80", "--nat", "up", "bridge:br9"]
    assert down["args"][-2:] == ["down", "bridge:br9"]


def test_spec_network_errors(tmp_path):
    cases = [(["--network", "container:nobody"], "no such container"),
             (["--subnet", "10.0.0.0/24"], "need --network bridge"),
             (["--network", "bridge", "--subnet", "300.0.0.0/8"], "--subnet"),
             (["--network", "none", "--nat"], "need --network bridge")]
    for n, (flags, why) in enumerate(cases):
        result, _ = _spec(tmp_path / str(n), *flags)
        assert result.returncode == 1 and why in result.stderr, (flags, result.stderr)


def test_features_report_net_devices():
    result = subprocess.run([*PYRUNC, "features"], capture_output=True, text=True)
    assert json.loads(result.stdout)["linux"]["netDevices"] == {"enabled": True}


def test_none_and_host_checks_do_not_import_pyroute2():
    code = ("import sys, os\nfrom pyrunc.network.modes import Mode, check, interfaces_of\n"
            "assert 'lo' in interfaces_of(os.getpid())\n"
            "check(Mode('host'), os.getpid(), '/nonexistent')\n"
            "try:\n    check(Mode('none'), os.getpid(), '/nonexistent')\n"
            "except Exception as exc:\n    print(exc)\n"
            "print('pyroute2' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = result.stdout.splitlines()
    assert lines[-1] == "False", result.stdout + result.stderr
    assert "shares the host's network namespace" in lines[0]
