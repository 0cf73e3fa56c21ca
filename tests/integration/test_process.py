"""config.json `process`, as the container's own program sees it.

Every test starts a real busybox container and reads what the kernel reports to the program
itself (/proc/self/status, /proc/self/limits, `id`, `umask`, its fds): the configuration is only
honoured if the process that runs the user's command has it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pyrunc_testing import needs_root, status_fields

pytestmark = [needs_root, pytest.mark.integration]

CAP_CHOWN = 0
CAP_NET_RAW = 13
CAP_SYS_RESOURCE = 24


def error_lines(stderr: str) -> list[str]:
    """stderr without warnings: the error lines a failed command printed."""
    return [line for line in stderr.splitlines() if line.strip() and "warning" not in line]


def run_in_container(runtime, bundle, *args: str, edit=None, cid: str = "p",
                     **kwargs) -> str:
    """`pyrunc run` a container in the foreground and return what its program printed."""
    b = bundle(*args, edit=edit)
    result = runtime("run", "-b", str(b), cid, **kwargs)
    assert not (runtime.root / cid).exists()
    return result.stdout



def set_process(**values):
    def edit(config: dict) -> None:
        config["process"].update(values)
    return edit


def set_user(**values):
    def edit(config: dict) -> None:
        config["process"]["user"].update(values)
    return edit


def mask_of(*bits: int) -> int:
    mask = 0
    for bit in bits:
        mask |= 1 << bit
    return mask


# --- capabilities and no_new_privs ------------------------------------------------------------

def test_all_five_capability_sets_are_exactly_the_configured_ones(runtime, bundle):
    wanted = ["CAP_NET_RAW", "CAP_CHOWN"]
    edit = set_process(capabilities={s: wanted for s in
                                     ("bounding", "effective", "permitted", "inheritable",
                                      "ambient")})
    fields = status_fields(run_in_container(runtime, bundle, "cat", "/proc/self/status",
                                            edit=edit))
    expected = mask_of(CAP_CHOWN, CAP_NET_RAW)
    for name in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert int(fields[name], 16) == expected, (name, fields[name])


def test_parked_init_holds_each_configured_set_separately(runtime, bundle):
    # After execve the kernel recomputes effective/permitted from the bounding and ambient sets,
    # so sets that differ from each other are checked on the parked init, which has applied
    # them all and waits for `start` with nothing left to change but the exec.
    edit = set_process(capabilities={
        "bounding": ["CAP_NET_RAW", "CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_NET_RAW", "CAP_CHOWN"],
        "effective": ["CAP_CHOWN"],
        "inheritable": ["CAP_NET_RAW"],
        "ambient": ["CAP_NET_RAW"],
    })
    runtime("create", "-b", str(bundle("true", edit=edit)), "cs")
    pid = runtime.state("cs")["pid"]
    try:
        fields = status_fields(Path(f"/proc/{pid}/status").read_text())
    finally:
        runtime("delete", "--force", "cs")
    assert int(fields["CapBnd"], 16) == mask_of(CAP_NET_RAW, CAP_CHOWN, 5)
    assert int(fields["CapPrm"], 16) == mask_of(CAP_NET_RAW, CAP_CHOWN)
    assert int(fields["CapEff"], 16) == mask_of(CAP_CHOWN)
    assert int(fields["CapInh"], 16) == mask_of(CAP_NET_RAW)
    assert int(fields["CapAmb"], 16) == mask_of(CAP_NET_RAW)


def _host_bounding_lacks(bit: int) -> bool:
    fields = status_fields(Path("/proc/self/status").read_text())
    return not int(fields["CapBnd"], 16) & (1 << bit)


@pytest.mark.parametrize("sets", [("bounding",), ("bounding", "effective", "permitted")])
def test_a_capability_the_host_cannot_grant_is_named_in_a_warning(runtime, bundle, tmp_path,
                                                                  sets):
    """runtime-spec config.md: a value that cannot be granted MUST be logged as a warning."""
    if not _host_bounding_lacks(CAP_SYS_RESOURCE):
        pytest.skip("this host's bounding set has CAP_SYS_RESOURCE")
    edit = set_process(capabilities={s: ["CAP_SYS_RESOURCE", "CAP_CHOWN"] for s in sets})
    log_file = tmp_path / "pyrunc.log"
    run_in_container(runtime, bundle, "true", edit=edit, global_args=("--log", str(log_file)))
    warnings = [line for line in log_file.read_text().splitlines() if "warn" in line]
    assert any("CAP_SYS_RESOURCE" in line for line in warnings), log_file.read_text()


def test_ambient_capabilities_reach_a_non_root_program(runtime, bundle):
    caps = ["CAP_NET_RAW"]
    edit = set_process(user={"uid": 1000, "gid": 1000},
                       capabilities={s: caps for s in ("bounding", "effective", "permitted",
                                                       "inheritable", "ambient")})
    fields = status_fields(run_in_container(runtime, bundle, "cat", "/proc/self/status",
                                            edit=edit))
    assert fields["Uid"].split()[:2] == ["1000", "1000"]
    for name in ("CapEff", "CapPrm", "CapAmb", "CapInh", "CapBnd"):
        assert int(fields[name], 16) == mask_of(CAP_NET_RAW), (name, fields[name])


def test_no_capabilities_object_leaves_a_non_root_program_without_capabilities(runtime, bundle):
    def edit(config: dict) -> None:
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
        config["process"]["capabilities"] = {}

    fields = status_fields(run_in_container(runtime, bundle, "cat", "/proc/self/status",
                                            edit=edit))
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges_flag_is_what_the_config_says(runtime, bundle, nnp):
    fields = status_fields(run_in_container(runtime, bundle, "cat", "/proc/self/status",
                                            edit=set_process(noNewPrivileges=nnp)))
    assert fields["NoNewPrivs"] == ("1" if nnp else "0")


# --- user, groups, umask -------------------------------------------------------------------------

def test_user_uid_gid_and_additional_gids_are_the_programs_identity(runtime, bundle):
    edit = set_process(user={"uid": 1000, "gid": 1000, "additionalGids": [10, 65534]})
    out = run_in_container(runtime, bundle, "sh", "-c", "id -u; id -g; id -G", edit=edit)
    uid, gid, groups = out.splitlines()
    assert uid == "1000" and gid == "1000"
    assert set(groups.split()) == {"1000", "10", "65534"}
    fields = status_fields(run_in_container(runtime, bundle, "cat", "/proc/self/status",
                                            edit=edit, cid="p2"))
    assert fields["Uid"].split() == ["1000"] * 4
    assert fields["Gid"].split() == ["1000"] * 4
    assert sorted(fields["Groups"].split(), key=int) == ["10", "65534"]


def test_root_user_without_additional_gids_has_no_supplementary_groups(runtime, bundle):
    fields = status_fields(run_in_container(runtime, bundle, "cat", "/proc/self/status"))
    assert fields["Uid"].split() == ["0"] * 4
    assert fields["Groups"] == ""


def test_umask_from_the_config_is_the_programs_umask(runtime, bundle):
    out = run_in_container(runtime, bundle, "sh", "-c",
                           "umask; touch /tmp/f; stat -c %a /tmp/f",
                           edit=lambda c: (c["process"]["user"].update(umask=0o027),
                                           c["root"].update(readonly=False)))
    assert out.splitlines() == ["0027", "640"]


def test_umask_defaults_to_0022(runtime, bundle):
    assert run_in_container(runtime, bundle, "sh", "-c", "umask").strip() == "0022"


# --- rlimits -----------------------------------------------------------------------------------

def test_rlimits_are_set_with_their_soft_and_hard_values(runtime, bundle):
    edit = set_process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                {"type": "RLIMIT_NPROC", "soft": 777, "hard": 888}])
    out = run_in_container(runtime, bundle, "sh", "-c",
                           "ulimit -n; ulimit -Hn; cat /proc/self/limits", edit=edit)
    lines = out.splitlines()
    assert lines[0] == "123" and lines[1] == "456"
    limits = {line[:26].strip(): line[26:].split() for line in lines[2:]}
    assert limits["Max open files"][:2] == ["123", "456"]
    assert limits["Max processes"][:2] == ["777", "888"]


def _has_cap_sys_resource() -> bool:
    fields = status_fields(Path("/proc/self/status").read_text())
    return bool(int(fields["CapEff"], 16) & (1 << CAP_SYS_RESOURCE))


@pytest.mark.skipif(_has_cap_sys_resource(),
                    reason="with CAP_SYS_RESOURCE a hard limit can be raised")
def test_rlimit_hard_above_the_callers_hard_limit_fails_create_with_eperm(runtime, bundle):
    host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert host_hard != resource.RLIM_INFINITY
    edit = set_process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024,
                                 "hard": host_hard + 1}])
    result = runtime("create", "-b", str(bundle("true", edit=edit)), "rl", check=False)
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "setrlimit" in lines[0] and "EPERM" in lines[0]
    assert not (runtime.root / "rl").exists()


# --- environment and cwd -----------------------------------------------------------------------

def test_env_is_passed_exactly_and_home_comes_from_etc_passwd(runtime, bundle):
    env = ["PATH=/bin:/sbin", "FOO=bar baz", "EMPTY=", "EQ=a=b"]
    out = run_in_container(runtime, bundle, "env", edit=set_process(env=env),
                           env={**os.environ, "LEAK_FROM_CALLER": "1"})
    assert sorted(out.splitlines()) == sorted(env + ["HOME=/root"])


def test_home_for_a_non_root_user_is_its_passwd_entry(runtime, bundle):
    edit = set_process(env=["PATH=/bin"], user={"uid": 1000, "gid": 1000})
    assert "HOME=/home/user" in run_in_container(runtime, bundle, "env", edit=edit).splitlines()


def test_home_of_a_uid_missing_from_passwd_is_slash(runtime, bundle):
    edit = set_process(env=["PATH=/bin"], user={"uid": 4242, "gid": 4242})
    assert "HOME=/" in run_in_container(runtime, bundle, "env", edit=edit).splitlines()


def test_home_set_in_the_config_is_kept(runtime, bundle):
    edit = set_process(env=["PATH=/bin", "HOME=/srv"])
    assert sorted(run_in_container(runtime, bundle, "env", edit=edit).splitlines()) == \
        ["HOME=/srv", "PATH=/bin"]


def test_empty_home_in_the_config_is_replaced_like_runc_does(runtime, bundle):
    # runc fills in HOME when it is unset *or* empty.
    edit = set_process(env=["PATH=/bin", "HOME="])
    assert sorted(run_in_container(runtime, bundle, "env", edit=edit).splitlines()) == \
        ["HOME=/root", "PATH=/bin"]


def test_cwd_is_the_programs_working_directory(runtime, bundle):
    assert run_in_container(runtime, bundle, "pwd", edit=set_process(cwd="/etc")) == "/etc\n"


def test_missing_cwd_is_created_like_runc_does(runtime, bundle):
    # runc creates a missing cwd (MkdirAll inside the new root) before the user switch.
    out = run_in_container(runtime, bundle, "sh", "-c", "pwd; stat -c %a .",
                           edit=set_process(cwd="/does/not/exist"))
    assert out.splitlines() == ["/does/not/exist", "755"]


# --- oom_score_adj -----------------------------------------------------------------------------

def test_oom_score_adj_is_set_for_the_program(runtime, bundle):
    own = int(Path("/proc/self/oom_score_adj").read_text())
    wanted = 500 if own != 500 else 501
    out = run_in_container(runtime, bundle, "cat", "/proc/self/oom_score_adj",
                           edit=set_process(oomScoreAdj=wanted))
    assert out.strip() == str(wanted)


# --- file descriptors ----------------------------------------------------------------------------

def _fd_listing(out: str) -> dict[int, str]:
    """`ls -l /proc/self/fd` output as {fd: target}."""
    fds = {}
    for line in out.splitlines():
        if " -> " not in line:
            continue
        left, target = line.split(" -> ", 1)
        fds[int(left.split()[-1])] = target
    return fds


def test_only_stdio_reaches_the_program_even_if_pyrunc_inherited_more(runtime, bundle, tmp_path):
    leaked = tmp_path / "leaked"
    leaked.write_text("secret\n")
    fd = os.open(leaked, os.O_RDONLY)  # inheritable=False by default: make it inheritable
    try:
        os.set_inheritable(fd, True)
        out = run_in_container(runtime, bundle, "ls", "-l", "/proc/self/fd", pass_fds=(fd,))
    finally:
        os.close(fd)
    fds = _fd_listing(out)
    # Above 2 there may only be the directory ls is listing (if it still has it open).
    extra = {n: t for n, t in fds.items() if n > 2}
    assert {0, 1, 2} <= set(fds), fds
    assert all("/proc/" in t for t in extra.values()), fds
    assert fd not in extra and not any("leaked" in t for t in fds.values())


def test_preserve_fds_passes_fd_3_through_with_its_number(runtime, bundle, tmp_path):
    passed = tmp_path / "passed"
    passed.write_text("through fd 3\n")
    b = bundle("sh", "-c", "cat <&3; test -e /proc/self/fd/4 && echo fd4-open || echo fd4-closed")
    other = tmp_path / "other"
    other.write_text("not passed\n")
    # The caller's fd 3 (and an fd 4 that is not asked for), set up by a shell around pyrunc.
    argv = runtime.argv("run", "--preserve-fds", "1", "-b", str(b), "pf")
    with open(tmp_path / "out", "w+") as out, open(tmp_path / "err", "w+") as err:
        rc = subprocess.run(["sh", "-c", 'exec "$@" 3<"$F3" 4<"$F4"', "sh", *argv],
                            env={**os.environ, "F3": str(passed), "F4": str(other)},
                            stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            timeout=60).returncode
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert rc == 0, stderr
    assert stdout.splitlines() == ["through fd 3", "fd4-closed"]


def test_preserve_fds_of_a_closed_fd_is_refused(runtime, bundle, tmp_path):
    b = bundle("true")
    with open(tmp_path / "err", "w+") as err:
        # fd 3 is closed in the shell that execs pyrunc.
        rc = subprocess.run(["sh", "-c", 'exec 3<&-; exec "$@"', "sh",
                             *runtime.argv("create", "--preserve-fds", "1", "-b", str(b), "pc")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                            timeout=60).returncode
        err.seek(0)
        message = err.read()
    assert rc == 1 and "unable to stat preserved-fd" in message
    assert not (runtime.root / "pc").exists()


# --- args[0] -------------------------------------------------------------------------------------

def test_missing_executable_fails_create_and_leaves_nothing(runtime, bundle, cgroup_path):
    result = runtime("create", "-b", str(bundle("no-such-program", "x")), "nx", check=False)
    assert result.returncode == 1
    assert 'exec: "no-such-program": executable file not found in $PATH' in result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr
    assert not (runtime.root / "nx").exists()
    assert runtime("delete", "--force", "nx").returncode == 0
    listed = json.loads(runtime("list", "--format", "json").stdout)
    assert listed is None or listed == []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        assert not (Path("/sys/fs/cgroup") / hierarchy / cgroup_path.lstrip("/")).exists()


def test_missing_absolute_executable_fails_create_with_no_such_file(runtime, bundle):
    result = runtime("create", "-b", str(bundle("/bin/nope")), "nf", check=False)
    assert result.returncode == 1
    # runc 1.5's wording, which podman and the shim match on.
    assert "exec /bin/nope: no such file or directory" in result.stderr
    assert not (runtime.root / "nf").exists()


def test_a_directory_as_executable_fails_create_with_permission_denied(runtime, bundle):
    result = runtime("create", "-b", str(bundle("/etc")), "nd", check=False)
    assert result.returncode == 1
    assert "permission denied" in result.stderr
    assert not (runtime.root / "nd").exists()


def test_a_user_with_cap_dac_override_runs_a_binary_whose_x_bits_are_not_its_own(
        runtime, bundle, tmp_path):
    """execve lets CAP_DAC_OVERRIDE stand in for a missing x bit (as long as one x bit is set);
    the create-time check must decide as execve will, with the process's capabilities."""
    caps = ["CAP_DAC_OVERRIDE"]

    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
        config["process"]["capabilities"] = {s: caps for s in ("bounding", "effective",
                                                                "permitted", "inheritable",
                                                                "ambient")}

    b = bundle("/opt/private/echo", "ran", edit=edit)
    target = b / "rootfs/opt/private/echo"
    target.parent.mkdir(parents=True)
    target.write_bytes((b / "rootfs/bin/busybox").read_bytes())
    target.chmod(0o700)   # owner root; uid 1000 only gets in through CAP_DAC_OVERRIDE
    assert runtime("run", "-b", str(b), "dac").stdout == "ran\n"
    if shutil.which("runc"):
        runc = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "-b", str(b),
                               "dac-runc"], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        assert runc.stdout == "ran\n", runc.stderr


def test_args0_is_resolved_against_the_containers_path(runtime, bundle):
    def edit(config: dict) -> None:
        config["process"]["env"] = ["PATH=/opt/tools"]
        config["root"]["readonly"] = False

    b = bundle("mytool", edit=edit)
    tools = b / "rootfs/opt/tools"
    tools.mkdir(parents=True)
    (tools / "mytool").write_text("#!/bin/sh\necho from-opt-tools \"$0\"\n")
    (tools / "mytool").chmod(0o755)
    result = runtime("run", "-b", str(b), "pt")
    assert result.stdout == "from-opt-tools /opt/tools/mytool\n"


def test_detached_non_root_program_can_reopen_its_own_stdout(runtime, bundle, tmp_path):
    # A created container's stdio is what the caller passed (here a root-owned 0600 file);
    # like runc, pyrunc gives it to the process uid, so `>/dev/stdout` (a reopen) works.
    # (A foreground `run` leaves its stdio alone: that is the person's own terminal or file.)
    edit = set_process(user={"uid": 1000, "gid": 1000})
    b = bundle("sh", "-c", "echo via-dev-stdout >/dev/stdout", edit=edit)
    out = tmp_path / "out"
    with open(out, "w") as f:
        os.chmod(out, 0o600)
        runtime("run", "-d", "-b", str(b), "p", stdout_file=f)
    deadline = time.monotonic() + 10
    while runtime.state("p")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    runtime("delete", "p")
    assert out.read_text() == "via-dev-stdout\n"


def test_unlimited_rlimit_is_applied_as_unlimited(runtime, bundle):
    """podman writes --ulimit X=-1:-1 as 2**64-1, the kernel's RLIM_INFINITY."""
    edit = set_process(rlimits=[{"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}])
    assert run_in_container(runtime, bundle, "sh", "-c", "ulimit -c", edit=edit) == "unlimited\n"


@pytest.mark.parametrize("field, value", [("uid", 2**32 - 1), ("gid", 2**31)])
def test_ids_that_setresuid_would_misread_are_refused(runtime, bundle, field, value):
    # (uid_t)-1 means "leave unchanged" to setresuid: the program would stay root.
    b = bundle("id", edit=set_process(user={"uid": 0, "gid": 0, field: value}))
    result = runtime("create", "-b", str(b), "ids", check=False)
    assert result.returncode == 1 and f"/process/user/{field}" in result.stderr
    assert not (runtime.root / "ids").exists()


def test_a_missing_preserved_fd_is_not_confused_with_the_log_file(runtime, bundle, tmp_path):
    result = runtime("run", "--preserve-fds", "1", "-b", str(bundle("true")), "pf", check=False,
                     global_args=("--log", str(tmp_path / "log")))
    assert result.returncode == 1 and "unable to stat preserved-fd" in result.stderr
