"""pyrunc as an unprivileged user: the every-user install, `spec --rootless` and `run`.

Each test creates a fresh account (`rootless_user.RootlessUser`), runs the README's every-user
pyrunc as that account with no capabilities, and asserts on what the container saw: its id maps,
its /proc/self/status, the owners of its files, its cgroups and mounts. On this cgroup v1 host
the user may create no cgroup, so the container runs in the user's own cgroups, as under runc.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyrunc_testing import needs_root, status_fields
from rootless_user import SUBID_COUNT, RootlessUser, installed_package_dir, system_pyrunc

pytestmark = [needs_root, pytest.mark.integration]


@pytest.fixture
def user() -> Iterator[RootlessUser]:
    account = RootlessUser()
    yield account
    left = account.remove()
    assert not left, f"the rootless test left behind: {left}"


def caps_mask(names: list[str]) -> int:
    """The CapEff bits of a config's capability names (numbers from linux/capability.h)."""
    numbers = {"CAP_KILL": 5, "CAP_NET_BIND_SERVICE": 10, "CAP_AUDIT_WRITE": 29}
    return sum(1 << numbers[name] for name in names)


def test_every_user_pyrunc_runs_for_a_fresh_user(user: RootlessUser) -> None:
    pyrunc = system_pyrunc()
    result = user.run([pyrunc, "--version"], check=True)
    assert result.stdout.startswith("runc version "), result.stdout
    # Nothing of the install may hide under a private home: the account can read all of it.
    assert not str(installed_package_dir()).startswith("/root/")
    interpreter = Path(os.path.realpath(pyrunc)).read_text().splitlines()[0][2:]
    assert not os.path.realpath(interpreter).startswith("/root/")


def test_rootless_run_maps_the_user_to_root_in_the_container(user: RootlessUser) -> None:
    script = ("cat /proc/self/uid_map /proc/self/gid_map; echo --; "
              "grep -E '^(Uid|Gid|CapEff):' /proc/self/status; echo --; "
              "stat -c '%u:%g %n' /bin/busybox /etc/host-root-file; echo --; cat /proc/self/cgroup")
    bundle = user.bundle("bb", ["sh", "-c", script])
    host_root_file = bundle / "rootfs" / "etc" / "host-root-file"
    host_root_file.write_text("owned by the host's root\n")   # root-owned: not mapped in there
    config = json.loads((bundle / "config.json").read_text())

    result = user.run([system_pyrunc(), "run", "--bundle", str(bundle), "rl-run"], check=True)
    maps, status, owners, cgroups = result.stdout.split("--\n")
    assert [line.split() for line in maps.splitlines()] == [
        ["0", str(user.uid), "1"], ["0", str(user.gid), "1"]]
    fields = status_fields(status)
    assert fields["Uid"].split() == ["0"] * 4 and fields["Gid"].split() == ["0"] * 4
    assert int(fields["CapEff"], 16) == caps_mask(config["process"]["capabilities"]["effective"])
    assert owners.splitlines() == ["0:0 /bin/busybox", "65534:65534 /etc/host-root-file"]
    # No cgroup of its own (the user may create none here): the container stays in the user's.
    assert cgroups == user.run(["cat", "/proc/self/cgroup"], check=True).stdout
    assert result.stderr == ""
    # The state lived under $XDG_RUNTIME_DIR/pyrunc and is gone with the container.
    state_root = user.runtime_dir / "pyrunc"
    assert state_root.is_dir() and list(state_root.iterdir()) == []
    assert state_root.stat().st_uid == user.uid
    assert state_root.stat().st_mode & 0o7777 == 0o1700   # sticky, as runc's: never pruned


def test_rootless_detached_container_lifecycle(user: RootlessUser) -> None:
    pyrunc = system_pyrunc()
    bundle = user.bundle("bb", ["sleep", "60"])
    user.run([pyrunc, "run", "--detach", "--bundle", str(bundle), "rl-detached"], check=True)
    assert (user.runtime_dir / "pyrunc" / "rl-detached").is_dir()
    state = json.loads(user.run([pyrunc, "state", "rl-detached"], check=True).stdout)
    assert state["status"] == "running"
    # On the host the container's root is the user, nobody more.
    host_status = status_fields(Path(f"/proc/{state['pid']}/status").read_text())
    assert host_status["Uid"].split() == [str(user.uid)] * 4
    listed = user.run([pyrunc, "list", "--format", "json"], check=True).stdout
    assert [c["id"] for c in json.loads(listed)] == ["rl-detached"]

    exec_result = user.run([pyrunc, "exec", "rl-detached", "sh", "-c",
                            "id -u; cat /proc/self/uid_map"], check=True)
    assert exec_result.stdout.split() == ["0", "0", str(user.uid), "1"]

    # No cgroup to walk: --all signals the init, whose death ends its PID namespace.
    user.run([pyrunc, "kill", "--all", "rl-detached", "KILL"], check=True)
    for _ in range(100):
        state = json.loads(user.run([pyrunc, "state", "rl-detached"], check=True).stdout)
        if state["status"] == "stopped":
            break
        time.sleep(0.05)
    assert state["status"] == "stopped"
    user.run([pyrunc, "delete", "rl-detached"], check=True)
    assert not (user.runtime_dir / "pyrunc" / "rl-detached").exists()


def test_rootless_dev_sys_masked_and_readonly_paths(user: RootlessUser) -> None:
    """mknod is not allowed in a user namespace: /dev's nodes are bind mounts of the host's;
    sysfs cannot be mounted without a network namespace of the container's own: /sys is a bind
    of the host's; masked and read-only paths hold as for root."""
    script = ("echo x > /dev/null && echo null-ok; head -c 5 /dev/zero | wc -c; "
              "ls /sys/kernel >/dev/null && echo sys-ok; wc -c < /proc/timer_list; "
              "echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo sys-ro; "
              "cat /proc/self/mountinfo")
    bundle = user.bundle("bb", ["sh", "-c", script])
    config = json.loads((bundle / "config.json").read_text())
    assert "/proc/timer_list" in config["linux"]["maskedPaths"]
    assert "/proc/sys" in config["linux"]["readonlyPaths"]
    # A sysfs mount, as a rootful config has it: pyrunc falls back to a bind of /sys.
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys"] + [
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]}]
    user.write_config(bundle, config)

    result = user.run([system_pyrunc(), "run", "--bundle", str(bundle), "rl-dev"], check=True)
    lines = result.stdout.splitlines()
    assert lines[:5] == ["null-ok", "5", "sys-ok", "0", "sys-ro"], result.stdout
    mounts = {line.split()[4]: line.split() for line in lines[5:]}
    for device in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                   "/dev/tty"):
        assert device in mounts, f"{device} is not a bind mount"
        assert mounts[device][3] == device.removeprefix("/dev"), mounts[device]
    assert mounts["/sys"][3] == "/" and "sysfs" in mounts["/sys"]
    assert "ro" in mounts["/sys"][5].split(","), mounts["/sys"]
    assert "ro" in mounts["/proc/sys"][5].split(",")


def test_rootless_without_xdg_runtime_dir_says_what_to_set(user: RootlessUser) -> None:
    bundle = user.bundle("bb", ["true"])
    result = user.run([system_pyrunc(), "run", "--bundle", str(bundle), "rl-noxdg"],
                      env=user.env(XDG_RUNTIME_DIR=""))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "create state directory /run/pyrunc" in lines[0]
    assert "EACCES" in lines[0] and "XDG_RUNTIME_DIR" in lines[0] and "--root" in lines[0]
    # --root is the other way out.
    root = user.home / "state"
    ok = user.run([system_pyrunc(), "--root", str(root), "run", "--bundle", str(bundle),
                   "rl-noxdg"], env=user.env(XDG_RUNTIME_DIR=""))
    assert ok.returncode == 0, ok.stderr
    assert root.is_dir() and list(root.iterdir()) == []


def test_rootless_cgroups_path_asked_for_is_an_error(user: RootlessUser) -> None:
    """runc's rule: only a container without linux.cgroupsPath runs without a cgroup."""
    bundle = user.bundle("bb", ["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["cgroupsPath"] = f"/pyrunc-test/{user.name}"
    user.write_config(bundle, config)
    result = user.run([system_pyrunc(), "run", "--bundle", str(bundle), "rl-cg"])
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "rootless" in lines[0] and "EACCES" in lines[0] and "/linux/cgroupsPath" in lines[0]
    assert list((user.runtime_dir / "pyrunc").iterdir()) == []


def multi_range_config(user: RootlessUser, bundle: Path, script: str) -> dict[str, object]:
    """The user's own id as root, and its 65536 subordinate ids as container ids 1..65536."""
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["sh", "-c", script]
    config["root"]["readonly"] = False
    for caps in ("bounding", "effective", "permitted"):   # chown(2) to another mapped id
        config["process"]["capabilities"][caps].append("CAP_CHOWN")
    for key, own in (("uidMappings", user.uid), ("gidMappings", user.gid)):
        config["linux"][key] = [{"containerID": 0, "hostID": own, "size": 1},
                                {"containerID": 1, "hostID": user.subid_start,
                                 "size": SUBID_COUNT}]
    return config


def test_rootless_multi_range_map_through_newuidmap(user: RootlessUser) -> None:
    bundle = user.bundle("bb", ["true"])
    script = ("cat /proc/self/uid_map /proc/self/gid_map; echo --; "
              "touch /tmp/owned && chown 1000:1000 /tmp/owned && stat -c '%u:%g' /tmp/owned")
    user.write_config(bundle, multi_range_config(user, bundle, script))
    result = user.run([system_pyrunc(), "run", "--bundle", str(bundle), "rl-multi"], check=True)
    maps, owned = result.stdout.split("--\n")
    expected = [["0", str(user.uid), "1"], ["1", str(user.subid_start), str(SUBID_COUNT)]]
    assert [line.split() for line in maps.splitlines()] == expected + [
        ["0", str(user.gid), "1"], ["1", str(user.subid_start), str(SUBID_COUNT)]]
    assert owned.splitlines()[0] == "1000:1000"
    # On the host the file belongs to the subordinate id that container id 1000 maps to.
    host = (bundle / "rootfs" / "tmp" / "owned").stat()
    assert (host.st_uid, host.st_gid) == (user.subid_start + 999, user.subid_start + 999)


def test_rootless_process_user_from_a_subordinate_range(user: RootlessUser) -> None:
    bundle = user.bundle("bb", ["true"])
    config = multi_range_config(user, bundle, "sleep 60")
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    user.write_config(bundle, config)
    pyrunc = system_pyrunc()
    user.run([pyrunc, "run", "--detach", "--bundle", str(bundle), "rl-user"], check=True)
    try:
        pid = json.loads(user.run([pyrunc, "state", "rl-user"], check=True).stdout)["pid"]
        host_status = status_fields(Path(f"/proc/{pid}/status").read_text())
        assert host_status["Uid"].split() == [str(user.subid_start + 999)] * 4
        assert host_status["Gid"].split() == [str(user.subid_start + 999)] * 4
        inside = user.run([pyrunc, "exec", "rl-user", "sh", "-c", "id -u; id -g"], check=True)
        assert inside.stdout.split() == ["1000", "1000"]
    finally:
        user.run([pyrunc, "delete", "--force", "rl-user"])


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_rootless_multi_range_without_a_subuid_entry_says_so(user: RootlessUser) -> None:
    bundle = user.bundle("bb", ["true"])
    user.write_config(bundle, multi_range_config(user, bundle, "true"))
    user.remove_subids()
    line = one_line_failure(user.run([system_pyrunc(), "run", "--bundle", str(bundle),
                                      "rl-nosub"]))
    assert line.startswith("pyrunc: ") and "newuidmap" in line
    assert f"/etc/subuid has no entry for {user.name}" in line
    assert "usermod --add-subuids" in line
    assert list((user.runtime_dir / "pyrunc").iterdir()) == []


def test_rootless_map_outside_the_subuid_range_names_the_range(user: RootlessUser) -> None:
    bundle = user.bundle("bb", ["true"])
    config = multi_range_config(user, bundle, "true")
    outside = user.subid_start + SUBID_COUNT   # just past the user's range
    config["linux"]["uidMappings"][1] = {"containerID": 1, "hostID": outside, "size": 10}
    user.write_config(bundle, config)
    line = one_line_failure(user.run([system_pyrunc(), "run", "--bundle", str(bundle),
                                      "rl-outside"]))
    assert f"host uids {outside}-{outside + 9} (container 1) are outside" in line
    assert f"({user.subid_start}-{user.subid_start + SUBID_COUNT - 1})" in line
    assert list((user.runtime_dir / "pyrunc").iterdir()) == []


def test_rootless_multi_range_without_newuidmap_says_what_to_install(
        user: RootlessUser) -> None:
    bundle = user.bundle("bb", ["true"])
    user.write_config(bundle, multi_range_config(user, bundle, "true"))
    # A PATH on which no newuidmap can be found (pyrunc looks it up there, as runc does).
    bin_dir = user.home / "bin"
    bin_dir.mkdir()
    os.chown(bin_dir, user.uid, user.gid)
    line = one_line_failure(user.run(
        [system_pyrunc(), "run", "--bundle", str(bundle), "rl-notool"],
        env=user.env(PATH=str(bin_dir))))
    assert "EPERM" in line and "newuidmap" in line and "uidmap package" in line
    assert list((user.runtime_dir / "pyrunc").iterdir()) == []


def test_rootless_user_namespaces_disabled_by_sysctl_say_so(user: RootlessUser) -> None:
    """user.max_user_namespaces is per user namespace: set to 0 inside one of the user's own
    (never on the host), the pyrunc started in it may create no user namespace."""
    bundle = user.bundle("bb", ["true"])
    config = json.loads((bundle / "config.json").read_text())
    for key in ("uidMappings", "gidMappings"):   # the user is 0 in the namespace pyrunc runs in
        config["linux"][key] = [{"containerID": 0, "hostID": 0, "size": 1}]
    user.write_config(bundle, config)
    script = (f"echo 0 > /proc/sys/user/max_user_namespaces && "
              f"exec {system_pyrunc()} run --bundle {bundle} rl-nouserns")
    line = one_line_failure(user.run(["unshare", "--user", "--map-root-user", "sh", "-c",
                                      script]))
    assert line.startswith("pyrunc: create user namespace: ENOSPC"), line
    assert "user.max_user_namespaces is 0" in line and "sysctl" in line
    assert list((user.runtime_dir / "pyrunc").iterdir()) == []
    # The host's limit is untouched.
    assert Path("/proc/sys/user/max_user_namespaces").read_text().strip() != "0"


def test_every_user_install_explains_a_bad_config_with_its_own_schemas(
        user: RootlessUser) -> None:
    """A normal install has no checkout beside it: the schemas ship in <prefix>/share/pyrunc."""
    bundle = user.bundle("bb", ["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["cwd"] = 5
    user.write_config(bundle, config)
    line = one_line_failure(user.run([system_pyrunc(), "run", "--bundle", str(bundle), "rl-bad"]))
    assert line == ("pyrunc: config.json: /process/cwd: expected string, got integer 5 "
                    "(see runtime-spec config.md#process)")
