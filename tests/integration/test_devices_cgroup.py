"""The device cgroup on this hybrid host: the real kernel enforces what pyrunc writes.

Two layers. First the drivers alone: `apply_v1` on a v1 devices cgroup and `apply_v2` (the eBPF
filter) on a directory of the cgroup2 mount at /sys/fs/cgroup/unified, each checked by a child
process that joins the cgroup and opens / mknods devices, against the independent v1 model in
tests/device_model.py. Then whole containers: runc's default list, a denied /dev/null write,
mknod of a device that may be created but not opened, a rule pyrunc must refuse, and the same
config under runc 1.1.5 giving the same devices.list.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from device_model import reference
from pyrunc_testing import CGROUP_PREFIX, Runtime

from pyrunc.cgroups.device_rules import DeviceRuleError, rule_text
from pyrunc.cgroups.devices import (
    DeviceCgroupUnavailable,
    apply_v1,
    apply_v2,
    attached_programs,
    effective_rules,
)
from pyrunc.linux import bpf
from pyrunc.linux.syscalls import KernelError
from pyrunc.spec.resources import DeviceRule

V1_DEVICES = Path("/sys/fs/cgroup/devices")
UNIFIED = Path("/sys/fs/cgroup/unified")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]
needs_v1 = pytest.mark.skipif(not (V1_DEVICES / "devices.allow").exists(),
                              reason="no v1 devices hierarchy")
needs_unified = pytest.mark.skipif(not (UNIFIED / "cgroup.procs").exists(),
                                   reason="no cgroup2 mount at /sys/fs/cgroup/unified")

#: (path, type, major, minor) the probes use; block 7:0 is only ever mknod'ed, never opened.
NODES = [("/dev/null", "c", 1, 3), ("/dev/zero", "c", 1, 5), ("/dev/full", "c", 1, 7),
         ("/dev/urandom", "c", 1, 9), (None, "b", 7, 0)]
OPENS = {2: os.O_RDONLY, 4: os.O_WRONLY, 6: os.O_RDWR}


def probe_in(procs_file: Path, scratch: str) -> dict[tuple[str, int, int, int], bool]:
    """Fork a child that joins the cgroup, then tries each open and mknod; what it was allowed."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_fd)
            procs_file.write_text(str(os.getpid()))
            out = []
            for path, kind, major, minor in NODES:
                for access, flags in OPENS.items():
                    if path is None:
                        continue
                    try:
                        os.close(os.open(path, flags | os.O_CLOEXEC))
                        out.append(f"{kind} {major} {minor} {access} 1")
                    except PermissionError:
                        out.append(f"{kind} {major} {minor} {access} 0")
                node = os.path.join(scratch, f"n{major}-{minor}{kind}")
                mode = (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | 0o600
                try:
                    os.mknod(node, mode, os.makedev(major, minor))
                    os.unlink(node)
                    out.append(f"{kind} {major} {minor} 1 1")
                except PermissionError:
                    out.append(f"{kind} {major} {minor} 1 0")
            os.write(write_fd, "\n".join(out).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, "probe child failed"
    result = {}
    for line in text.splitlines():
        kind, major, minor, access, ok = line.split()
        result[(kind, int(major), int(minor), int(access))] = ok == "1"
    return result


def expected(rules: list[DeviceRule], seen: dict[tuple[str, int, int, int], bool]) -> dict:
    model = reference(rules)
    return {key: model.permits(*key) for key in seen}


#: Rule lists for the kernel checks: runc's defaults, hand-picked shapes and some random ones.
def rule_lists() -> list[list[DeviceRule]]:
    lists = [
        effective_rules([DeviceRule(False)], []),
        [DeviceRule(False)],
        [DeviceRule(True)],
        [DeviceRule(False), DeviceRule(True, "c", 1, 3, "r"), DeviceRule(True, "c", 1, 5, "w"),
         DeviceRule(True, "c", 1, 7, "rw"), DeviceRule(True, "c", -1, -1, "m")],
        [DeviceRule(True), DeviceRule(False, "c", 1, 3, "w"), DeviceRule(False, "c", 1, -1, "m"),
         DeviceRule(False, "b", -1, -1, "m")],
        [DeviceRule(False), DeviceRule(True, "c", -1, 5, "rwm"), DeviceRule(True, "c", 1, -1, "r")],
    ]
    rng = random.Random(7)
    while len(lists) < 14:
        rules = [DeviceRule(rng.random() < 0.5, rng.choice("accb"), rng.choice((-1, 1)),
                            rng.choice((-1, 3, 5, 7, 0)), rng.choice(("r", "w", "m", "rw", "rwm")))
                 for _ in range(rng.randint(1, 5))]
        try:
            from pyrunc.cgroups.device_rules import emulate
            emulate(rules)
        except DeviceRuleError:
            continue
        lists.append(rules)
    return lists


@pytest.fixture
def scratch() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="pyrunc-devtest-")
    yield path
    shutil.rmtree(path)


@pytest.fixture
def v1_dir() -> Iterator[Path]:
    path = V1_DEVICES / CGROUP_PREFIX.strip("/") / f"dev-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    yield path
    _rmdir(path)


@pytest.fixture
def v2_dir() -> Iterator[Path]:
    path = UNIFIED / CGROUP_PREFIX.strip("/") / f"dev-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    yield path
    _rmdir(path)


def _rmdir(path: Path) -> None:
    for _ in range(50):
        try:
            path.rmdir()
            break
        except FileNotFoundError:
            break
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.02)
    else:
        path.rmdir()
    try:
        path.parent.rmdir()  # /pyrunc-test, only if empty (another test may use it)
    except OSError:
        pass


# --- the drivers against the kernel ----------------------------------------------------------------

@needs_unified
def test_the_ebpf_filter_is_enforced_as_the_v1_model_says(v2_dir, scratch):
    for rules in rule_lists():
        apply_v2(str(v2_dir), rules)
        assert len(attached_programs(str(v2_dir))) == 1
        seen = probe_in(v2_dir / "cgroup.procs", scratch)
        assert seen == expected(rules, seen), [rule_text(r) for r in rules]


def test_the_kernel_verifier_accepts_every_program_shape():
    from pyrunc.cgroups.device_rules import emulate
    from pyrunc.cgroups.ebpf import LICENSE, device_program

    rng = random.Random(11)
    loaded = 0
    while loaded < 200:
        rules = [DeviceRule(rng.random() < 0.5, rng.choice("accbb"), rng.choice((-1, 1, 4000000000)),
                            rng.choice((-1, 0, 3, 2**31)), rng.choice(("r", "w", "m", "rw", "wm", "rwm")))
                 for _ in range(rng.randint(0, 12))]
        try:
            emulate(rules)
        except DeviceRuleError:
            continue
        fd = bpf.prog_load_cgroup_device(device_program(rules)[1], LICENSE, step="load")
        os.close(fd)
        loaded += 1


def test_a_program_the_verifier_refuses_reports_the_verifier_log():
    from pyrunc.cgroups import ebpf

    no_return_value = ebpf.encode([ebpf.exit_insn()])
    with pytest.raises(KernelError) as info:
        bpf.prog_load_cgroup_device(no_return_value, ebpf.LICENSE, step="load device program")
    assert str(info.value).startswith("load device program (verifier: ")
    assert "R0" in str(info.value) and "EACCES" in str(info.value)


@needs_v1
def test_devices_allow_and_deny_are_enforced_as_the_v1_model_says(v1_dir, scratch):
    for rules in rule_lists():
        apply_v1(str(v1_dir), rules)
        seen = probe_in(v1_dir / "cgroup.procs", scratch)
        assert seen == expected(rules, seen), [rule_text(r) for r in rules]


@needs_v1
def test_v1_devices_list_shows_runc_default_list(v1_dir):
    apply_v1(str(v1_dir), effective_rules([DeviceRule(False)], []))
    assert (v1_dir / "devices.list").read_text().splitlines() == [
        "b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
        "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm"]
    # An update changes the list in place (no disruptive deny-all is needed from a deny-all list).
    apply_v1(str(v1_dir), [DeviceRule(False), DeviceRule(True, "c", 1, 3, "rw")])
    assert (v1_dir / "devices.list").read_text().splitlines() == ["c 1:3 rw"]
    apply_v1(str(v1_dir), [DeviceRule(True)])
    assert (v1_dir / "devices.list").read_text().splitlines() == ["a *:* rwm"]


@needs_unified
def test_an_update_replaces_the_program_and_removing_the_cgroup_frees_it(v2_dir):
    apply_v2(str(v2_dir), [DeviceRule(False)])
    (first,) = attached_programs(str(v2_dir))
    apply_v2(str(v2_dir), [DeviceRule(True)])
    (second,) = attached_programs(str(v2_dir))
    assert second != first
    _gone_eventually(first)
    v2_dir.rmdir()
    _gone_eventually(second)


def _gone_eventually(prog_id: int, timeout: float = 10.0) -> None:
    """The kernel frees a detached program after an RCU grace period, not at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = bpf.prog_get_fd_by_id(prog_id, step="open program")
        except KernelError as exc:
            assert exc.errno == errno.ENOENT
            return
        os.close(fd)
        assert time.monotonic() < deadline, f"program {prog_id} is still loaded"
        time.sleep(0.05)


def test_without_a_device_controller_restricting_rules_are_refused(tmp_path):
    with pytest.raises(DeviceCgroupUnavailable, match=r"^linux\.resources\.devices: the device "
                       r"cgroup is not available on this host: no v1 devices hierarchy"):
        apply_v1(None, effective_rules([DeviceRule(False)], []))
    with pytest.raises(DeviceCgroupUnavailable, match="has no devices.allow"):
        apply_v1(str(tmp_path), [DeviceRule(True), DeviceRule(False, "c", 1, 3, "w")])
    apply_v1(None, [DeviceRule(True)])  # allow-all restricts nothing: nothing to enforce


def test_without_bpf_device_programs_restricting_rules_are_refused(tmp_path, monkeypatch):
    # The kernels pyrunc runs on here all have cgroup BPF: stand in for one that has not.
    def no_bpf(*args: Any, **kwargs: Any) -> int:
        raise KernelError(errno.EINVAL, "load device cgroup program")
    monkeypatch.setattr(bpf, "prog_load_cgroup_device", no_bpf)
    monkeypatch.setattr(bpf, "prog_query", lambda fd, step: [])
    with pytest.raises(DeviceCgroupUnavailable, match="bpf.2. has no cgroup device programs"):
        apply_v2(str(tmp_path), [DeviceRule(False)])
    apply_v2(str(tmp_path), [DeviceRule(True)])


# --- whole containers -----------------------------------------------------------------------------

def v1_list(cgroup_path: str) -> list[str]:
    return (V1_DEVICES / cgroup_path.lstrip("/") / "devices.list").read_text().splitlines()


def with_devices(rules: list[dict[str, Any]], nodes: list[dict[str, Any]] | None = None,
                 caps: tuple[str, ...] = ()) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["linux"].setdefault("resources", {})["devices"] = rules
        if nodes is not None:
            config["linux"]["devices"] = nodes
        for cap in caps:
            for kind in ("bounding", "effective", "permitted"):
                config["process"]["capabilities"][kind].append(cap)
    return edit


NULL_NODE = {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}


def run(runtime: Runtime, path: Path, name: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryFile() as stdin:  # not /dev/null: the container may not open it
        return runtime("run", "--bundle", str(path), name, stdin=stdin, check=False)


@needs_v1
def test_default_spec_rules_give_runc_list_and_working_null_and_zero(runtime, bundle, cgroup_path):
    path = bundle("sh", "-c", "cat /sys/fs/cgroup/devices/devices.list; echo hi > /dev/null && "
                  "head -c 4 /dev/zero | wc -c && cat /dev/null && echo done")
    result = run(runtime, path, "d1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:11] == ["b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                          "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm"]
    assert lines[11:] == ["4", "done"]


@needs_v1
def test_a_denied_write_to_dev_null_fails_with_eperm_while_reading_works(runtime, bundle):
    edit = with_devices([{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                         {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}],
                        nodes=[NULL_NODE])
    path = bundle("sh", "-c", "cat /dev/null && echo read-ok; echo x > /dev/null || echo write-failed",
                  edit=edit)
    result = run(runtime, path, "d2")
    assert result.stdout.splitlines() == ["read-ok", "write-failed"], result.stderr
    assert "Operation not permitted" in result.stderr + result.stdout


@needs_v1
def test_mknod_is_allowed_for_any_device_but_opening_it_is_not(runtime, bundle):
    # runc's defaults grant mknod of every device (c *:* m, b *:* m) but not access to it; /dev/zero
    # redefined in linux.devices loses its default rule, so 1:5 may be created but not opened.
    zero = {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666}
    path = bundle("sh", "-c", "mknod /dev/zero2 c 1 5 && echo mknod-ok; head -c 1 /dev/zero2 "
                  "|| echo open-failed; mknod /dev/null2 c 1 3 && echo x > /dev/null2 && echo same-ok",
                  edit=with_devices([{"allow": False, "access": "rwm"}], nodes=[zero],
                                    caps=("CAP_MKNOD",)))
    result = run(runtime, path, "d3")
    assert result.stdout.splitlines() == ["mknod-ok", "open-failed", "same-ok"], result.stderr
    assert "Operation not permitted" in result.stderr


@needs_v1
def test_a_rule_that_punches_a_hole_in_a_wildcard_is_refused_and_nothing_is_left(
        runtime, bundle, cgroup_path):
    path = bundle("true", edit=with_devices([
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "access": "rw"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]))
    result = runtime("create", "--bundle", str(path), "d4", check=False)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert "linux.resources.devices: rule deny 'c 1:3 w' cannot be enforced" in message
    assert not (V1_DEVICES / cgroup_path.lstrip("/")).exists()
    assert runtime("list", "-q").stdout.split() == []


RUNC_CONFIGS = {
    "default-spec": ([{"allow": False, "access": "rwm"}], None),
    "allow-list": ([{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                    {"allow": True, "type": "c", "major": 4, "access": "rw"},
                    {"allow": True, "type": "b", "minor": 0, "access": "m"}], [NULL_NODE]),
    "no-rules": ([], None),
    "allow-all-then-deny": ([{"allow": True, "access": "rwm"},
                             {"allow": False, "type": "c", "major": 1, "minor": 9, "access": "w"}],
                            None),
    "merged-access": ([{"allow": False, "access": "rwm"},
                       {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
                       {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"},
                       {"allow": False, "type": "c", "major": 136, "access": "m"}], [NULL_NODE]),
}


@needs_v1
@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
@pytest.mark.parametrize("name", sorted(RUNC_CONFIGS))
def test_devices_list_is_the_same_as_under_runc(tmp_path, bundle, cgroup_path, runtime, name):
    rules, nodes = RUNC_CONFIGS[name]
    path = bundle("sleep", "60", edit=with_devices(rules, nodes))
    listings = {}
    runc = Runtime(tmp_path / "runc-state")
    runc.command = ["runc"]
    for which, rt in (("runc", runc), ("pyrunc", runtime)):
        with tempfile.TemporaryFile() as stdin:  # (runc opens /dev/null O_RDWR in its init)
            rt("create", "--bundle", str(path), f"cmp-{which}", stdin=stdin)
        try:
            listings[which] = v1_list(cgroup_path)
        finally:
            rt("delete", "--force", f"cmp-{which}")
    assert listings["pyrunc"] == listings["runc"]
    assert listings["pyrunc"]  # (a cgroup always lists something: `a *:* rwm` or the allows)


@needs_v1
@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare(1) is not installed")
def test_create_refuses_device_rules_where_no_devices_hierarchy_is_mounted(runtime, bundle,
                                                                           cgroup_path):
    # A private mount namespace without the devices hierarchy stands in for such a host (the
    # host's own mount is untouched).
    runtime.command = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                       'umount /sys/fs/cgroup/devices && exec "$@"', "sh", *runtime.command]
    result = runtime("create", "--bundle", str(bundle("true")), "d5", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith(
        "linux.resources.devices: the device cgroup is not available on this host: "
        "no v1 devices hierarchy is mounted")
    assert runtime("list", "-q").stdout.split() == []
    assert not (Path("/sys/fs/cgroup/memory") / cgroup_path.lstrip("/")).exists()
    # Rules that allow everything need no controller.
    allow_all = with_devices([{"allow": True, "access": "rwm"}])
    with tempfile.TemporaryFile() as stdin:
        out = runtime("run", "--bundle", str(bundle("echo", "ran", edit=allow_all)), "d6",
                      stdin=stdin).stdout
    assert out == "ran\n"
