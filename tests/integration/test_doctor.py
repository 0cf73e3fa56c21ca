"""`pyrunc doctor`: its findings match what these tests probe directly on this host.

Each test asks the kernel the same question another way (unshare(1), prlimit(1), mountinfo,
/proc/self/status) and compares; doctor's JSON output validates against
schemas/doctor-schema.json, and a run leaves no mount and no process behind.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from pyrunc_testing import REPO, needs_root, pyrunc_command, status_fields

pytestmark = [pytest.mark.integration, needs_root]

NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]

#: OCI namespace type -> unshare(1) options that create it (and nothing else but a fork for pid).
UNSHARE_OPTIONS = {
    "user": ["--user"], "mount": ["--mount"], "pid": ["--pid", "--fork"], "network": ["--net"],
    "ipc": ["--ipc"], "uts": ["--uts"], "cgroup": ["--cgroup"], "time": ["--time"],
}


def doctor(*args: str, root: Path, prefix: list[str] | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*(prefix or []), *pyrunc_command(), "--root", str(root), "doctor", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def doctor_json(root: Path, *args: str, **kwargs: Any) -> dict[str, Any]:
    result = doctor("--format", "json", *args, root=root, **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in report["checks"]}


@pytest.fixture(scope="module")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("doctor") / "state"


@pytest.fixture(scope="module")
def report(state_root: Path) -> dict[str, Any]:
    return doctor_json(state_root)


@pytest.fixture(scope="module")
def nobody_report() -> dict[str, Any]:
    """doctor run as uid 65534 (its state root is deliberately one it cannot write)."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv(1) is not installed")
    return doctor_json(Path("/proc/doctor-state"), prefix=NOBODY)


def test_json_output_validates_against_the_schema(report, nobody_report):
    import jsonschema

    schema = json.loads((REPO / "schemas" / "doctor-schema.json").read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    validator = jsonschema.Draft4Validator(schema)
    for doc in (report, nobody_report):
        validator.validate(doc)
    assert not validator.is_valid({**report, "checks": [{**report["checks"][0],
                                                         "status": "maybe"}]})
    summary = report["summary"]
    assert summary["works"] + summary["doesNot"] == len(report["checks"])


@pytest.mark.parametrize("kind", sorted(UNSHARE_OPTIONS))
def test_namespace_finding_matches_unshare_as_root(report, kind):
    direct = subprocess.run(["unshare", *UNSHARE_OPTIONS[kind], "true"], capture_output=True)
    found = checks(report)[f"namespace.{kind}"]
    assert (found["status"] == "works") == (direct.returncode == 0), (found, direct.stderr)


@pytest.mark.parametrize("kind", sorted(UNSHARE_OPTIONS))
def test_namespace_finding_matches_unshare_as_nobody(nobody_report, kind):
    # Not root, doctor probes as a rootless runtime works: inside a user namespace of its own,
    # which is what `unshare --map-root-user` does.
    options = UNSHARE_OPTIONS[kind] if kind == "user" else ["--map-root-user",
                                                           *UNSHARE_OPTIONS[kind]]
    direct = subprocess.run([*NOBODY, "unshare", *options, "true"], capture_output=True)
    found = checks(nobody_report)[f"namespace.{kind}"]
    assert (found["status"] == "works") == (direct.returncode == 0), (found, direct.stderr)
    assert found["data"]["inUserNamespace"] == (kind != "user")


def test_a_step_the_kernel_refuses_is_reported_with_its_errno_name(nobody_report):
    # Not root, the idmap probe must write a 65536-id mapping, which the kernel refuses
    # an unprivileged process: the finding names that step and EPERM.
    idmap = checks(nobody_report)["fs.idmapped_mounts"]
    assert idmap["status"] == "does-not"
    assert "EPERM" in idmap["why"] and "uid_map" in idmap["why"]


def test_unprivileged_user_namespaces_match_unshare_as_nobody(report):
    direct = subprocess.run([*NOBODY, "unshare", "--user", "true"], capture_output=True)
    assert (checks(report)["userns.unprivileged"]["status"] == "works") == \
        (direct.returncode == 0)


def test_user_namespace_limit_matches_the_sysctl(report):
    value = int(Path("/proc/sys/user/max_user_namespaces").read_text())
    found = checks(report)["userns.max"]
    assert found["data"]["value"] == value
    assert (found["status"] == "works") == (value > 0)
    assert checks(report)["namespace.network"]["data"]["max"] == \
        int(Path("/proc/sys/user/max_net_namespaces").read_text())


def mountinfo_cgroups() -> tuple[list[tuple[str, set[str]]], list[str]]:
    """(v1 mounts as (mount point, super options), cgroup2 mount points) from mountinfo."""
    v1, v2 = [], []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, options = right.split()[:3]
        if fstype == "cgroup":
            v1.append((left.split()[4], set(options.split(","))))
        elif fstype == "cgroup2":
            v2.append(left.split()[4])
    return v1, v2


def test_cgroup_mode_matches_mountinfo(report):
    v1, v2 = mountinfo_cgroups()
    expected = ("hybrid" if v2 else "v1") if v1 else ("v2" if v2 else "none")
    mode = checks(report)["cgroup.mode"]
    assert mode["data"]["mode"] == expected
    assert mode["why"].startswith(expected)
    if v2:
        assert mode["data"]["v2"]["mountpoint"] == v2[0]
        controllers = Path(v2[0], "cgroup.controllers").read_text().split()
        assert mode["data"]["v2"]["controllers"] == controllers


def test_each_v1_controller_is_reported_where_mountinfo_has_it(report):
    v1, _ = mountinfo_cgroups()
    kernel = {line.split()[0] for line in Path("/proc/cgroups").read_text().splitlines()
              if not line.startswith("#")}
    found = checks(report)
    compared = 0
    for mountpoint, options in v1:
        for controller in options & kernel:
            entry = found[f"cgroup.{controller}"]
            assert entry["status"] == "works" and entry["data"]["mountpoint"] == mountpoint
            compared += 1
    unmounted = kernel - {c for _, options in v1 for c in options}
    for controller in unmounted:
        entry = found[f"cgroup.{controller}"]
        assert entry.get("data", {}).get("version") == 2 or entry["status"] == "does-not", entry
    assert compared or not v1


def test_cap_sys_resource_matches_capbnd(report):
    bounding = int(status_fields(Path("/proc/self/status").read_text())["CapBnd"], 16)
    has_it = bool(bounding >> 24 & 1)
    found = checks(report)
    assert int(found["capabilities.bounding"]["data"]["bounding"], 16) == bounding
    assert ("CAP_SYS_RESOURCE" in found["capabilities.bounding"]["data"]["missing"]) != has_it
    assert ("capability.CAP_SYS_RESOURCE" in found) != has_it


def test_rlimit_nofile_matches_prlimit(report):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    found = checks(report)["rlimit.RLIMIT_NOFILE"]
    assert found["data"] == {"soft": soft, "hard": hard}
    direct = subprocess.run(["prlimit", f"--nofile={soft}:{hard + 1}", "true"],
                            capture_output=True, text=True)
    assert (found["status"] == "works") == (direct.returncode == 0), (found, direct.stderr)
    if direct.returncode != 0:
        assert "EPERM" in found["why"] and str(hard) in found["why"]


def test_overlay_finding_matches_a_mount_in_a_private_namespace(report, tmp_path):
    d = tmp_path
    script = (f"mount -t tmpfs t {d} && mkdir {d}/l {d}/u {d}/w {d}/m && "
              f"mount -t overlay o -o lowerdir={d}/l,upperdir={d}/u,workdir={d}/w {d}/m")
    direct = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script], capture_output=True, text=True)
    assert (checks(report)["fs.overlay"]["status"] == "works") == (direct.returncode == 0), \
        direct.stderr


def test_pidfd_finding_matches_os_pidfd_open(report):
    try:
        os.close(os.pidfd_open(os.getpid()))
        works = True
    except OSError:
        works = False
    assert (checks(report)["syscall.pidfd_open"]["status"] == "works") == works


def test_seccomp_finding_matches_proc_status(report):
    has_seccomp = "Seccomp" in status_fields(Path("/proc/self/status").read_text())
    assert (checks(report)["security.seccomp"]["status"] == "works") == has_seccomp


def test_lsm_list_matches_securityfs(report):
    lsm = "/sys/kernel/security/lsm"
    script = f"[ -e {lsm} ] || mount -t securityfs none /sys/kernel/security; cat {lsm}"
    direct = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script], capture_output=True, text=True)
    found = checks(report)["security.lsm"]
    assert (found["status"] == "works") == (direct.returncode == 0)
    if direct.returncode == 0:
        assert found["data"]["lsms"] == direct.stdout.strip().split(",")


def test_state_root_writable_missing_and_impossible(tmp_path):
    missing = tmp_path / "not" / "yet"
    found = checks(doctor_json(missing))["state.root"]
    assert found["status"] == "works" and found["data"]["exists"] is False
    assert not (tmp_path / "not").exists(), "doctor must not leave the state root it tried"
    (tmp_path / "file").write_text("")
    found = checks(doctor_json(tmp_path / "file" / "root"))["state.root"]
    assert found["status"] == "does-not" and "is not a directory" in found["why"]


def test_podman_configured_through_containers_conf(tmp_path):
    conf = tmp_path / "containers.conf"
    conf.write_text('[engine]\nruntime = "pyrunc"\n\n[engine.runtimes]\n'
                    'pyrunc = ["/usr/local/bin/pyrunc"]\n')
    found = checks(doctor_json(tmp_path / "s", env={"CONTAINERS_CONF": str(conf)}))
    assert found["engine.podman"]["status"] == "works"
    assert found["engine.podman"]["data"]["pyrunc"] == ["pyrunc"]
    assert "default" in found["engine.podman"]["why"]
    conf.write_text('[engine.runtimes]\nrunc = ["/usr/sbin/runc"]\n')
    found = checks(doctor_json(tmp_path / "s", env={"CONTAINERS_CONF": str(conf)}))
    assert found["engine.podman"]["status"] == "does-not"


def test_containerd_configured_through_its_config(tmp_path):
    config = tmp_path / "config.toml"
    binary = shutil.which("pyrunc", path=os.path.dirname(sys.executable)) or pyrunc_command()[0]
    config.write_text(
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
        'default_runtime_name = "pyrunc"\n'
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc]\n'
        'runtime_type = "io.containerd.runc.v2"\n'
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pyrunc.options]\n'
        f'BinaryName = "{binary}"\n')
    found = checks(doctor_json(tmp_path / "s", "--containerd-config", str(config)))
    assert found["engine.containerd"]["status"] == "works", found["engine.containerd"]
    assert found["engine.containerd"]["data"]["pyrunc"] == ["pyrunc"]
    config.write_text(config.read_text().replace(binary, "/usr/sbin/runc"))
    found = checks(doctor_json(tmp_path / "s", "--containerd-config", str(config)))
    assert found["engine.containerd"]["status"] == "does-not"
    found = checks(doctor_json(tmp_path / "s", "--containerd-config", str(tmp_path / "none")))
    assert found["engine.containerd"]["status"] == "does-not"
    assert "no " + str(tmp_path / "none") in found["engine.containerd"]["why"]


def test_text_report_says_works_or_does_not_on_every_line(report, state_root):
    result = doctor(root=state_root)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert len(lines) == len(report["checks"])
    for line, check in zip(lines, report["checks"]):
        status = "works" if check["status"] == "works" else "does not"
        assert line.startswith(status) and check["check"] in line, line


def test_bad_format_is_a_usage_error(state_root):
    result = doctor("--format", "yaml", root=state_root)
    assert result.returncode == 1 and "--format" in result.stderr


def own_children() -> list[int]:
    """Processes whose parent is this (subreaper) test process."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                pids.append(int(entry))
    return pids


def test_doctor_leaves_no_mount_and_no_process_behind(state_root):
    # The test process is a child subreaper (conftest): an orphaned probe would become its child.
    def probe_mounts() -> list[str]:
        watched = (tempfile.gettempdir(), "/sys/kernel/security")
        return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                if line.split()[4] in watched or " - overlay " in line]
    before, children = probe_mounts(), own_children()
    doctor("--format", "json", root=state_root)
    assert probe_mounts() == before
    assert own_children() == children


def test_doctor_is_fast(state_root):
    start = time.monotonic()
    report = doctor_json(state_root)
    wall = time.monotonic() - start
    # Under a second alone; generous bounds for a loaded CI machine.
    assert report["elapsedMs"] < 2000, report["elapsedMs"]
    assert wall < 4, wall
