"""Linux namespaces as the container itself sees them: new, shared with the host, or joined by path.

Every check runs inside a real busybox container and compares its /proc/self/ns/* links (and what
the namespaces hold: hostname, uid maps, clocks, loopback, cgroup paths, processes) with the host's
or with those of a helper process this test starts, kills and reaps itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrunc_testing import host_mounts_mentioning, make_bundle, needs_root

pytestmark = [needs_root, pytest.mark.integration]

ALL_TYPES = ("mount", "uts", "ipc", "pid", "network", "user", "cgroup", "time")
#: The OCI type -> the name of its file under /proc/<pid>/ns/.
PROC_NAME = {"mount": "mnt", "uts": "uts", "ipc": "ipc", "pid": "pid", "network": "net",
             "user": "user", "cgroup": "cgroup", "time": "time"}
#: What `pyrunc spec` (and so every test bundle) starts with.
DEFAULT_TYPES = ("pid", "network", "ipc", "uts", "mount", "cgroup")

#: Prints "<proc name> <link>" for each namespace, as read by a child of the container's program
#: (its namespaces are the program's: pid and time included, which the init already lives in).
SHOW_NAMESPACES = ("for n in mnt uts ipc pid net user cgroup time; do "
                   "echo \"$n $(readlink /proc/self/ns/$n)\"; done")

USER_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
IDENTITY_MAP = [{"containerID": 0, "hostID": 0, "size": 65536}]

CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000


# --- helpers ------------------------------------------------------------------------------------

def host_ns(proc_name: str) -> str:
    return os.readlink(f"/proc/self/ns/{proc_name}")


def parse_namespaces(stdout: str) -> dict[str, str]:
    seen = {}
    for line in stdout.splitlines():
        name, _, link = line.partition(" ")
        if name in PROC_NAME.values():
            seen[name] = link
    assert set(seen) == set(PROC_NAME.values()), stdout
    assert all(link.startswith(f"{name}:[") for name, link in seen.items()), stdout
    return seen


def set_namespaces(*entries: str | dict[str, str]) -> Callable[[dict[str, Any]], None]:
    """A config edit: exactly these namespaces (a type, or a {"type", "path"} entry).

    The hostname of the default config is dropped unless a new uts namespace is among them.
    """
    def edit(config: dict[str, Any]) -> None:
        namespaces = [{"type": e} if isinstance(e, str) else dict(e) for e in entries]
        config["linux"]["namespaces"] = namespaces
        if not any(ns["type"] == "uts" and "path" not in ns for ns in namespaces):
            config.pop("hostname", None)
        if any(ns["type"] == "user" and "path" not in ns for ns in namespaces):
            config["linux"].setdefault("uidMappings", USER_MAP)
            config["linux"].setdefault("gidMappings", USER_MAP)
    return edit


def add_user_namespace(mapping: list[dict[str, int]]) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = mapping
        config["linux"]["gidMappings"] = mapping
    return edit


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and "warning:" not in line]



@pytest.fixture
def shared_bundle(cgroup_path: str) -> Iterator[Callable[..., Path]]:
    """Like `bundle`, but in a directory every user can traverse (pytest's tmp_path is 0700).

    A container whose root is mapped to host uid 100000 must be able to reach its rootfs.
    """
    top = Path(tempfile.mkdtemp(prefix="pyrunc-userns-"))
    os.chmod(top, 0o755)
    counter = iter(range(1000))

    def factory(*args: str, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        path = make_bundle(top / f"bundle{next(counter)}", list(args), cgroups_path=cgroup_path)
        if edit is not None:
            config = json.loads((path / "config.json").read_text())
            edit(config)
            (path / "config.json").write_text(json.dumps(config))
        return path

    yield factory
    leaked = host_mounts_mentioning(str(top))
    shutil.rmtree(top, ignore_errors=True)
    assert not leaked, f"mounts leaked into the host namespace: {leaked}"


class Helper:
    """A process of the test's own in new namespaces, for containers to join by path."""

    SCRIPT = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
flags, hostname, msg_key = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
def check(rc, what):
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, what + ": " + os.strerror(err))
check(libc.unshare(flags), "unshare")
if flags & 0x04000000:
    check(libc.sethostname(hostname, len(hostname)), "sethostname")
if flags & 0x08000000:
    check(libc.msgget(msg_key, 0o1600), "msgget")
print("ready", flush=True)
sys.stdin.read()
"""

    def __init__(self, flags: int, hostname: str = "joined-host", msg_key: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(flags), hostname, str(msg_key)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "ready\n", "helper failed to unshare"
        self.pid = self.proc.pid

    def ns_path(self, ns_type: str) -> str:
        return f"/proc/{self.pid}/ns/{PROC_NAME[ns_type]}"

    def ns(self, ns_type: str) -> str:
        return os.readlink(self.ns_path(ns_type))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def helpers() -> Iterator[Callable[..., Helper]]:
    started: list[Helper] = []

    def start(flags: int, **kwargs: Any) -> Helper:
        helper = Helper(flags, **kwargs)
        started.append(helper)
        return helper

    yield start
    for helper in started:
        helper.stop()


def run_namespaces(runtime, b: Path, cid: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return parse_namespaces(runtime("run", "-b", str(b), cid).stdout)


# --- 1. new or shared, one type at a time ---------------------------------------------------------

def _only(ns_type: str) -> tuple[str, ...]:
    # pyrunc requires a mount namespace; user alone could mount neither proc nor sysfs, so it comes
    # with the default set; every other type is tried beside the mount namespace only.
    if ns_type == "mount":
        return ("mount",)
    if ns_type == "user":
        return (*DEFAULT_TYPES, "user")
    return ("mount", ns_type)


@pytest.mark.parametrize("ns_type", [
    t for t in ALL_TYPES])
def test_namespace_in_config_is_new_and_those_not_in_config_are_the_hosts(
        runtime, shared_bundle, ns_type):
    types = _only(ns_type)
    seen = run_namespaces(runtime, shared_bundle("sh", "-c", SHOW_NAMESPACES,
                                                 edit=set_namespaces(*types)), "ns")
    for t in ALL_TYPES:
        name = PROC_NAME[t]
        if t in types:
            assert seen[name] != host_ns(name), f"{t} should be a new namespace"
        else:
            assert seen[name] == host_ns(name), f"{t} should be the host's"


@pytest.mark.parametrize("ns_type", [t for t in DEFAULT_TYPES if t != "mount"])
def test_namespace_removed_from_default_config_is_the_hosts(runtime, bundle, ns_type):
    types = [t for t in DEFAULT_TYPES if t != ns_type]
    seen = run_namespaces(runtime, bundle("sh", "-c", SHOW_NAMESPACES,
                                          edit=set_namespaces(*types)), "rm")
    assert seen[PROC_NAME[ns_type]] == host_ns(PROC_NAME[ns_type])
    for t in types:
        assert seen[PROC_NAME[t]] != host_ns(PROC_NAME[t]), t


def test_all_eight_namespaces_at_once_are_all_new(runtime, shared_bundle):
    def edit(config: dict[str, Any]) -> None:
        set_namespaces(*ALL_TYPES)(config)
        config["hostname"] = "all-eight"
    seen = run_namespaces(runtime, shared_bundle("sh", "-c", SHOW_NAMESPACES, edit=edit), "all")
    assert all(seen[PROC_NAME[t]] != host_ns(PROC_NAME[t]) for t in ALL_TYPES), seen


def test_without_mount_namespace_nothing_is_mounted_and_the_process_is_chrooted(
        runtime, bundle):
    """No mount namespace: the process shares the host's mount namespace and is chrooted into
    root.path, and nothing is mounted (runc would mount into the caller's namespace)."""
    with open("/proc/self/mountinfo") as f:
        mounts_before = f.read()
    b = bundle("sh", "-c", "echo $(ls /proc | wc -l) && test -x /bin/busybox && echo in-rootfs",
               edit=set_namespaces("pid", "ipc", "uts"))
    count, where = runtime("run", "-b", str(b), "nomnt").stdout.split()
    assert (count, where) == ("0", "in-rootfs")   # the rootfs's empty /proc: nothing mounted
    with open("/proc/self/mountinfo") as f:
        assert f.read() == mounts_before


# --- 2. joining by path ---------------------------------------------------------------------------

def test_joined_network_uts_and_ipc_namespaces_are_the_helpers(runtime, bundle, helpers):
    msg_key = 0x70797275
    helper = helpers(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC, hostname="joined-host",
                     msg_key=msg_key)
    assert helper.ns("network") != host_ns("net")
    joined = [{"type": t, "path": helper.ns_path(t)} for t in ("network", "uts", "ipc")]
    b = bundle("sh", "-c", SHOW_NAMESPACES + "; echo host=$(hostname); cat /proc/sysvipc/msg",
               edit=set_namespaces("pid", "mount", "cgroup", *joined))
    out = runtime("run", "-b", str(b), "join").stdout
    seen = parse_namespaces(out)
    for t in ("network", "uts", "ipc"):
        assert seen[PROC_NAME[t]] == helper.ns(t), t
    assert "host=joined-host" in out.splitlines()
    # The helper's SysV message queue is in the container's ipc namespace.
    keys = [line.split()[0] for line in out.splitlines()[len(ALL_TYPES) + 2:]]
    assert str(msg_key) in keys, out


def test_two_containers_joining_one_network_namespace_share_it(runtime, bundle, helpers,
                                                              cgroup_path):
    helper = helpers(CLONE_NEWNET)
    edit = set_namespaces("pid", "mount", {"type": "network", "path": helper.ns_path("network")})
    runtime("create", "-b", str(bundle("sleep", "100", edit=edit)), "n1")
    first = runtime.state("n1")["pid"]
    # A cgroup of its own: deleting a container kills what is left in its cgroup.
    other_cgroup = f"{cgroup_path}-second"

    def second_edit(config: dict[str, Any]) -> None:
        edit(config)
        config["linux"]["cgroupsPath"] = other_cgroup

    try:
        second = run_namespaces(runtime, bundle("sh", "-c", SHOW_NAMESPACES, edit=second_edit),
                                "n2")
        assert os.readlink(f"/proc/{first}/ns/net") == second["net"] == helper.ns("network")
        assert os.readlink(f"/proc/{first}/ns/pid") != second["pid"]  # both alive at once
    finally:
        runtime("delete", "--force", "n1")
        left = [h for h in os.listdir("/sys/fs/cgroup")
                if os.path.exists(f"/sys/fs/cgroup/{h}{other_cgroup}")]
        for h in left:
            os.rmdir(f"/sys/fs/cgroup/{h}{other_cgroup}")
        assert not left, f"cgroup {other_cgroup} left in {left}"


def test_joined_mount_namespace_is_the_helpers(runtime, bundle, helpers):
    helper = helpers(CLONE_NEWNS)
    b = bundle("sh", "-c", SHOW_NAMESPACES,
               edit=set_namespaces("pid", {"type": "mount", "path": helper.ns_path("mount")}))
    seen = run_namespaces(runtime, b, "jm")
    assert seen["mnt"] == helper.ns("mount")


def test_joined_user_namespace_is_the_helpers(runtime, bundle, helpers):
    helper = helpers(CLONE_NEWUSER)
    for name in ("uid_map", "gid_map"):
        Path(f"/proc/{helper.pid}/{name}").write_text("0 0 65536\n")
    b = bundle("sh", "-c", SHOW_NAMESPACES + "; cat /proc/self/uid_map",
               edit=set_namespaces(*DEFAULT_TYPES, {"type": "user",
                                                    "path": helper.ns_path("user")}))
    out = runtime("run", "-b", str(b), "ju").stdout
    assert parse_namespaces(out)["user"] == helper.ns("user") != host_ns("user")
    assert out.splitlines()[len(ALL_TYPES)].split() == ["0", "0", "65536"]


def test_joining_a_missing_namespace_path_is_refused_naming_the_field(runtime, bundle):
    b = bundle("true", edit=set_namespaces(*DEFAULT_TYPES[:-1], {"type": "cgroup",
                                                                 "path": "/proc/0/ns/cgroup"}))
    result = runtime("create", "-b", str(b), "missing", check=False)
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "/linux/namespaces/5/path" in lines[0], result.stderr


# --- 3. uid and gid maps --------------------------------------------------------------------------

def test_user_namespace_shows_exactly_the_configured_maps_and_runs_as_root(runtime, shared_bundle):
    uid_map = [{"containerID": 0, "hostID": 100000, "size": 1000},
               {"containerID": 1000, "hostID": 101000, "size": 64536}]
    gid_map = [{"containerID": 0, "hostID": 200000, "size": 65536}]

    def edit(config: dict[str, Any]) -> None:
        add_user_namespace(uid_map)(config)
        config["linux"]["gidMappings"] = gid_map

    b = shared_bundle("sh", "-c", "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; "
                                  "echo --; id -u; id -g", edit=edit)
    uids, gids, ids = runtime("run", "-b", str(b), "maps").stdout.split("--\n")
    assert [line.split() for line in uids.splitlines()] == [
        [str(m["containerID"]), str(m["hostID"]), str(m["size"])] for m in uid_map]
    assert [line.split() for line in gids.splitlines()] == [["0", "200000", "65536"]]
    assert ids.split() == ["0", "0"]


def test_files_of_the_mapped_host_uid_appear_as_root_and_unmapped_as_overflow(
        runtime, shared_bundle):
    b = shared_bundle("stat", "-c", "%n %u %g", "/etc/mapped", "/etc/hostname",
                      edit=add_user_namespace(USER_MAP))
    (b / "rootfs/etc/mapped").write_text("x\n")
    os.chown(b / "rootfs/etc/mapped", 100000, 100000)
    os.chown(b / "rootfs/etc/hostname", 0, 0)
    overflow = Path("/proc/sys/kernel/overflowuid").read_text().strip()
    out = runtime("run", "-b", str(b), "own").stdout
    assert out.splitlines() == ["/etc/mapped 0 0", f"/etc/hostname {overflow} {overflow}"]


def test_user_namespace_mapping_host_root_shows_its_map(runtime, bundle):
    b = bundle("sh", "-c", SHOW_NAMESPACES + "; cat /proc/self/uid_map /proc/self/gid_map; id -u",
               edit=add_user_namespace(IDENTITY_MAP))
    out = runtime("run", "-b", str(b), "idmap").stdout
    assert parse_namespaces(out)["user"] != host_ns("user")
    assert [line.split() for line in out.splitlines()[len(ALL_TYPES):]] == [
        ["0", "0", "65536"], ["0", "0", "65536"], ["0"]]


def test_mappings_without_a_new_user_namespace_are_refused(runtime, bundle):
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["uidMappings"] = USER_MAP
        config["linux"]["gidMappings"] = USER_MAP
    result = runtime("create", "-b", str(bundle("true", edit=edit)), "nouser", check=False)
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "/linux/uidMappings" in lines[0], result.stderr


# --- 4. time namespace ----------------------------------------------------------------------------

def _add_time_offsets(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"].append({"type": "time"})
    config["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 0},
                                      "boottime": {"secs": 86400}}


def host_uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def test_time_namespace_offsets_shift_uptime_and_show_in_timens_offsets(runtime, bundle):
    b = bundle("sh", "-c", "readlink /proc/self/ns/time; "
                           "cat /proc/uptime /proc/self/timens_offsets", edit=_add_time_offsets)
    before = host_uptime()
    out = runtime("run", "-b", str(b), "clock").stdout
    after = host_uptime()
    link, uptime, *offsets = out.splitlines()
    assert link != host_ns("time")
    inside = float(uptime.split()[0])
    assert before + 86400 - 1 <= inside <= after + 86400 + 1
    assert sorted(line.split() for line in offsets) == [["boottime", "86400", "0"],
                                                         ["monotonic", "86400", "0"]]


def test_time_offsets_without_a_time_namespace_are_refused(runtime, bundle):
    def edit(config: dict[str, Any]) -> None:
        config["linux"]["timeOffsets"] = {"boottime": {"secs": 1}}
    result = runtime("create", "-b", str(bundle("true", edit=edit)), "notime", check=False)
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "/linux/timeOffsets" in lines[0], result.stderr


# --- 5. hostname and domainname -------------------------------------------------------------------

def test_hostname_and_domainname_are_set_in_the_new_uts_namespace(runtime, bundle):
    def edit(config: dict[str, Any]) -> None:
        config["hostname"] = "box-one"
        config["domainname"] = "example.test"
    b = bundle("sh", "-c", "hostname; cat /proc/sys/kernel/domainname", edit=edit)
    host_before = os.uname().nodename
    assert runtime("run", "-b", str(b), "uts").stdout.splitlines() == ["box-one", "example.test"]
    assert os.uname().nodename == host_before


@pytest.mark.parametrize("field", ["hostname", "domainname"])
def test_hostname_or_domainname_without_uts_namespace_is_refused_at_create(
        runtime, bundle, field):
    def edit(config: dict[str, Any]) -> None:
        set_namespaces("pid", "network", "ipc", "mount", "cgroup")(config)
        config[field] = "not-allowed"
    result = runtime("create", "-b", str(bundle("true", edit=edit)), "nouts", check=False)
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and f"/{field}" in lines[0] and "uts namespace" in lines[0], \
        result.stderr
    assert not (runtime.root / "nouts").exists()


# --- 6. network namespace -------------------------------------------------------------------------

def test_new_network_namespace_has_only_loopback_and_it_is_up(runtime, bundle):
    b = bundle("sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags")
    interfaces_and_flags = runtime("run", "-b", str(b), "lo").stdout.split()
    assert interfaces_and_flags[0] == "lo" and len(interfaces_and_flags) == 2
    assert int(interfaces_and_flags[1], 16) & 0x1, "IFF_UP is not set on lo"


def test_loopback_carries_tcp_inside_the_new_network_namespace(runtime, bundle):
    script = ("httpd -f -p 127.0.0.1:8080 -h /etc & "
              "for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/hostname && exit 0; "
              "usleep 100000; done; exit 1")
    result = runtime("run", "-b", str(bundle("sh", "-c", script)), "tcp", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pyrunc\n"


# --- 7. cgroup namespace --------------------------------------------------------------------------

def _cgroup_paths(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    assert lines, "empty /proc/self/cgroup"
    return [line.split(":", 2)[2] for line in lines]


def test_cgroup_namespace_shows_root_for_every_hierarchy(runtime, bundle):
    # `spec` on a v1 host has no cgroup namespace (as runc's): ask for one.
    b = bundle("cat", "/proc/self/cgroup", edit=set_namespaces(*DEFAULT_TYPES))
    out = runtime("run", "-b", str(b), "cgns").stdout
    assert set(_cgroup_paths(out)) == {"/"}, out


def test_without_cgroup_namespace_the_absolute_cgroup_path_shows(runtime, bundle, cgroup_path):
    types = [t for t in DEFAULT_TYPES if t != "cgroup"]
    b = bundle("cat", "/proc/self/cgroup", edit=set_namespaces(*types))
    out = runtime("run", "-b", str(b), "nocgns").stdout
    assert set(_cgroup_paths(out)) == {cgroup_path}, out


# --- 8. pid namespace -----------------------------------------------------------------------------

def test_program_is_pid_1_and_sees_only_its_own_processes(runtime, bundle):
    b = bundle("sh", "-c", "echo $$; sleep 100 & echo $!; ls /proc")
    out = runtime("run", "-b", str(b), "pid1").stdout.split()
    shell, sleeper = out[0], out[1]
    pids = {entry for entry in out[2:] if entry.isdigit()}
    assert shell == "1"
    # The shell, its sleep and ls (which the shell may exec as pid 1): nothing of the host's.
    assert {"1", sleeper} <= pids and len(pids) <= 3, pids


def test_without_pid_namespace_the_program_sees_host_processes(runtime, bundle):
    types = [t for t in DEFAULT_TYPES if t != "pid"]
    b = bundle("sh", "-c", "echo $$; ls /proc", edit=set_namespaces(*types))
    out = runtime("run", "-b", str(b), "hostpid").stdout.split()
    assert out[0] != "1"
    assert "1" in out[1:] and str(os.getpid()) in out[1:]


def test_created_container_init_is_pid_1_in_its_namespace_seen_from_the_host(runtime, bundle):
    runtime("create", "-b", str(bundle("sleep", "100")), "nspid")
    pid = runtime.state("nspid")["pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    nspid = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
    assert nspid == [str(pid), "1"]
    assert os.readlink(f"/proc/{pid}/ns/pid") != host_ns("pid")
    runtime("delete", "--force", "nspid")



def test_time_offsets_with_a_mapped_user_namespace_shift_the_clock(runtime, shared_bundle):
    """runc writes timens_offsets from the parent; a process that became root of a new user
    namespace cannot write its own (its /proc/self files are no longer its own)."""
    def edit(config: dict[str, Any]) -> None:
        _add_time_offsets(config)
        add_user_namespace(USER_MAP)(config)
    b = shared_bundle("sh", "-c", "cat /proc/uptime /proc/self/uid_map", edit=edit)
    before = host_uptime()
    out = runtime("run", "-b", str(b), "clockuser").stdout
    uptime, uid_map = out.splitlines()
    assert float(uptime.split()[0]) >= before + 86400 - 1
    assert uid_map.split() == ["0", "100000", "65536"]


def test_joining_a_host_owned_network_namespace_while_creating_a_user_namespace(
        runtime, shared_bundle, helpers):
    """The namespaces given by path are joined before the new user namespace exists: after it,
    the process has no capabilities over namespaces the host's user namespace owns."""
    helper = helpers(CLONE_NEWNET)
    joined = {"type": "network", "path": helper.ns_path("network")}
    b = shared_bundle("sh", "-c", SHOW_NAMESPACES + "; cat /proc/self/uid_map",
                      edit=set_namespaces("pid", "mount", "ipc", "uts", "user", joined))
    out = runtime("run", "-b", str(b), "netuser").stdout
    seen = parse_namespaces(out)
    assert seen["net"] == helper.ns("network")
    assert seen["user"] != host_ns("user")
    assert out.splitlines()[-1].split() == ["0", "100000", "65536"]


def test_a_runtime_without_cap_setgid_denies_setgroups_before_writing_gid_map(tmp_path):
    """The kernel's rule for unprivileged id maps: setgroups must be "deny" first. A child of
    the test, as an unprivileged user, unshares a user namespace; its parent, without
    CAP_SETGID, writes its maps with pyrunc's code."""
    import subprocess
    import textwrap

    from pyrunc.spec.model import IDMapping, Linux

    code = textwrap.dedent(f"""
        import ctypes, os, sys
        sys.path[:0] = {[str(p) for p in __import__("sys").path]!r}
        from pyrunc import namespaces
        from pyrunc.spec.model import IDMapping, Linux
        os.setgid(65534); os.setuid(65534)   # a rootless runtime: no CAP_SETGID
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(w)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.unshare(0x10000000)
            libc.prctl(4, 1, 0, 0, 0)   # dumpable while the maps are written, as pyrunc's child
            os.read(r, 1)   # wait until the maps are written
            print(open("/proc/self/setgroups").read().strip(), open("/proc/self/gid_map").read().split())
            sys.stdout.flush()
            os._exit(0)
        os.close(r)
        import time; time.sleep(0.2)
        m = (IDMapping(0, 65534, 1),)
        namespaces.write_id_maps(child, Linux(uid_mappings=m, gid_mappings=m))
        os.write(w, b"x")
        os.waitpid(child, 0)
    """)
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["deny", "['0',", "'65534',", "'1']"], result.stdout
