"""OCI hooks run by real containers: phases, order, namespaces, state, args/env, failures.

Each hook is a small shell script that records, in a directory of the test's, what it saw: the
state JSON on its stdin, its argv and environment, its mount namespace and cgroup. The runtime's
hooks (prestart, createRuntime, poststart, poststop) must run in the host's mount namespace; the
container's (createContainer, startContainer) in the container's. startContainer's path resolves
inside the container, so its script lives in the rootfs and the log directory is bind-mounted.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pyrunc_testing import needs_root, reap_children

pytestmark = [needs_root, pytest.mark.integration]

PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
          "poststop")

# argv: PHASE LOGDIR [extra args...]; one file per phase, one line per phase in LOGDIR/order.
HOOK_SCRIPT = """#!/bin/sh
state=$(cat)
phase=$1
dir=$2
{
  echo "$state"
  readlink /proc/self/ns/mnt
  readlink /proc/self/ns/pid
  echo "args=$*"
  env | sort | tr '\\n' ' '
  echo
  cat /proc/self/cgroup | tr '\\n' ' '
  echo
} > "$dir/$phase"
echo "$phase" >> "$dir/order"
"""


class Recorded:
    """What one hook wrote: state, mnt namespace, args, env, cgroup lines."""

    def __init__(self, path: Path) -> None:
        lines = path.read_text().splitlines()
        self.state = json.loads(lines[0])
        self.mnt_ns = lines[1]
        self.pid_ns = lines[2]
        self.args = lines[3].removeprefix("args=")
        self.env = lines[4].split()
        self.cgroup = lines[5]


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        reap_children()
        time.sleep(0.02)
    return True


def wait_stopped(runtime, cid: str) -> None:
    assert wait_for(lambda: runtime.state(cid)["status"] == "stopped"), runtime.state(cid)


@pytest.fixture
def hook_env(tmp_path):
    """(host script, log dir) for hooks that run with the host's file tree."""
    script = tmp_path / "hook.sh"
    script.write_text(HOOK_SCRIPT)
    script.chmod(0o755)
    logs = tmp_path / "logs"
    logs.mkdir()
    return script, logs


def hook(path: str, phase: str, logdir: str, *extra: str, **fields) -> dict:
    return {"path": path, "args": ["hook.sh", phase, logdir, *extra],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"HOOK_PHASE={phase}"], **fields}


def all_phase_hooks(script: Path, logs: Path):
    """Edit for a bundle: one recording hook per phase, startContainer's inside the container."""
    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["mounts"].append({"destination": "/hooklogs", "type": "bind",
                                 "source": str(logs), "options": ["bind"]})
        config["hooks"] = {phase: [hook(str(script), phase, str(logs))] for phase in PHASES}
        config["hooks"]["startContainer"] = [hook("/hook.sh", "startContainer", "/hooklogs")]
    return edit


def install_container_hook(b: Path) -> None:
    inside = b / "rootfs/hook.sh"
    inside.write_text(HOOK_SCRIPT)
    inside.chmod(0o755)


def test_all_six_phases_run_in_order_with_their_status_and_namespaces(runtime, bundle,
                                                                      hook_env):
    script, logs = hook_env
    b = bundle("sh", "-c", "echo program >> /hooklogs/order; "
                           "cat /proc/self/cgroup | tr '\\n' ' ' > /hooklogs/program-cgroup",
               edit=all_phase_hooks(script, logs))
    install_container_hook(b)
    host_mnt = os.readlink("/proc/self/ns/mnt")
    host_pid_ns = os.readlink("/proc/self/ns/pid")
    own_cgroup = Path("/proc/self/cgroup").read_text().replace("\n", " ")

    runtime("create", "-b", str(b), "h")
    pid = runtime.state("h")["pid"]
    container_mnt = os.readlink(f"/proc/{pid}/ns/mnt")
    container_pid_ns = os.readlink(f"/proc/{pid}/ns/pid")
    assert container_mnt != host_mnt
    assert (logs / "order").read_text().split() == ["prestart", "createRuntime",
                                                    "createContainer"]
    runtime("start", "h")
    wait_stopped(runtime, "h")
    runtime("delete", "h")

    order = (logs / "order").read_text().split()
    assert sorted(order) == sorted([*PHASES, "program"])
    assert order[:3] == ["prestart", "createRuntime", "createContainer"]
    # startContainer runs in the init before the program; poststart in `start` concurrently
    # with that (runc does the same); poststop last.
    assert order.index("startContainer") < order.index("program")
    assert order[-1] == "poststop"

    seen = {phase: Recorded(logs / phase) for phase in PHASES}
    expected_status = {"prestart": "creating", "createRuntime": "creating",
                       "createContainer": "creating", "startContainer": "created",
                       "poststart": "running", "poststop": "stopped"}
    for phase, rec in seen.items():
        assert rec.state["status"] == expected_status[phase], phase
        assert rec.state["id"] == "h" and rec.state["bundle"] == str(b), phase
        assert rec.state["ociVersion"], phase
    for phase in ("prestart", "createRuntime", "createContainer", "poststart", "poststop"):
        assert seen[phase].state["pid"] == pid, phase

    for phase in ("prestart", "createRuntime", "poststart", "poststop"):
        assert seen[phase].mnt_ns == host_mnt, phase
        assert seen[phase].pid_ns == host_pid_ns, phase
        # Run by pyrunc itself, from the caller's cgroup (not the container's).
        assert seen[phase].cgroup == own_cgroup, phase
    # The container's hooks are children of its init: its namespaces and its cgroup, so they
    # see the same /proc/self/cgroup as the program.
    program_cgroup = (logs / "program-cgroup").read_text()
    for phase in ("createContainer", "startContainer"):
        assert seen[phase].mnt_ns == container_mnt, phase
        assert seen[phase].pid_ns == container_pid_ns, phase
        assert seen[phase].cgroup == program_cgroup, phase


def test_hook_args_and_env_are_passed_exactly(runtime, bundle, hook_env):
    script, logs = hook_env

    def edit(config: dict) -> None:
        config["hooks"] = {"createRuntime": [hook(str(script), "createRuntime", str(logs),
                                                  "extra arg", "--flag")]}

    b = bundle("true", edit=edit)
    runtime("create", "-b", str(b), "ae", env={**os.environ, "LEAK_FROM_CALLER": "1"})
    runtime("delete", "ae")
    rec = Recorded(logs / "createRuntime")
    # $* of the script: argv[1:] (args[0] is argv[0], not repeated).
    assert rec.args == f"createRuntime {logs} extra arg --flag"
    assert "HOOK_PHASE=createRuntime" in rec.env
    assert "PATH=/usr/sbin:/usr/bin:/sbin:/bin" in rec.env
    assert not any(e.startswith("LEAK_FROM_CALLER=") for e in rec.env)


def test_hook_timeout_kills_the_hook_and_fails_create_leaving_nothing(runtime, bundle):
    marker = "99.3141"  # a sleep duration nothing else uses, to find a leftover hook

    def edit(config: dict) -> None:
        config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", marker],
                                              "timeout": 1}]}

    started = time.monotonic()
    result = runtime("create", "-b", str(bundle("sleep", "100", edit=edit)), "to", check=False)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "error running createRuntime hook #0: hook ran past" in result.stderr
    assert elapsed < 20
    assert not (runtime.root / "to").exists()

    def sleeper_gone() -> bool:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                        return False
                except OSError:
                    pass
        return True

    assert wait_for(sleeper_gone, 5)


@pytest.mark.parametrize("phase", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_phase_hook_fails_create_with_one_line_and_leaves_nothing(
        runtime, bundle, hook_env, phase):
    _, logs = hook_env

    def edit(config: dict) -> None:
        config["hooks"] = {
            phase: [{"path": "/bin/sh", "args": ["sh", "-c", "echo boom-$0 >&2; exit 3", phase]}],
            "poststop": [hook(str(hook_env[0]), "poststop", str(logs))],
        }

    result = runtime("create", "-b", str(bundle("sleep", "100", edit=edit)), "hf", check=False)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "warning" not in line]
    assert len(errors) == 1, result.stderr
    assert f"error running {phase} hook #0: exit status" in errors[0]
    assert "exit status 3" in errors[0] and f"boom-{phase}" in errors[0]
    assert not (runtime.root / "hf").exists()
    # A container that was never created is not "stopped": no poststop for it (as runc).
    assert not (logs / "poststop").exists()


def test_hook_that_cannot_be_executed_fails_create(runtime, bundle):
    def edit(config: dict) -> None:
        config["hooks"] = {"createRuntime": [{"path": "/no/such/hook"}]}

    result = runtime("create", "-b", str(bundle("true", edit=edit)), "nh", check=False)
    assert result.returncode == 1
    assert "error running createRuntime hook #0: fork/exec /no/such/hook: no such file" in result.stderr
    assert not (runtime.root / "nh").exists()


def test_failing_poststart_hook_stops_and_destroys_the_container(runtime, bundle, tmp_path,
                                                                  hook_env, cgroup_path):
    """runtime-spec 1.3.0 lifecycle step 9: the runtime MUST generate an error, stop the
    container and continue at the destroy step; the later poststart hooks do not run, the
    poststop hooks do."""
    script, logs = hook_env

    def edit(config: dict) -> None:
        config["hooks"] = {"poststart": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo poststart-broke >&2; exit 4"]},
            hook(str(script), "poststart", str(logs)),
        ], "poststop": [hook(str(script), "poststop", str(logs))]}

    runtime("create", "-b", str(bundle("sleep", "100", edit=edit)), "ps")
    pid = runtime.state("ps")["pid"]
    result = runtime("start", "ps", check=False)
    assert result.returncode == 1 and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "error running poststart hook #0: exit status 4" in lines[0], result.stderr
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                    open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z")
    assert not (runtime.root / "ps").exists()
    assert not (logs / "poststart").exists()
    assert Recorded(logs / "poststop").state["status"] == "stopped"
    assert not any(os.path.exists(f"/sys/fs/cgroup/{h}{cgroup_path}")
                   for h in os.listdir("/sys/fs/cgroup"))


def test_failing_poststop_hook_only_warns_and_delete_succeeds(runtime, bundle, tmp_path,
                                                              hook_env):
    script, logs = hook_env

    def edit(config: dict) -> None:
        config["hooks"] = {"poststop": [
            {"path": "/bin/false"},
            hook(str(script), "poststop", str(logs)),
        ]}

    log_file = tmp_path / "pyrunc.log"
    runtime("run", "-d", "-b", str(bundle("true", edit=edit)), "pd")
    wait_stopped(runtime, "pd")
    result = runtime("delete", "pd", global_args=("--log", str(log_file)))
    assert result.returncode == 0
    assert not (runtime.root / "pd").exists()
    assert "error running poststop hook #0: exit status 1" in log_file.read_text()
    rec = Recorded(logs / "poststop")
    assert rec.state["status"] == "stopped" and rec.state["id"] == "pd"


def test_failing_start_container_hook_stops_the_program_from_running(runtime, bundle):
    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["hooks"] = {"startContainer": [{"path": "/bin/sh",
                                               "args": ["sh", "-c", "exit 5"]}]}

    b = bundle("sh", "-c", "touch /program-ran", edit=edit)
    runtime("create", "-b", str(b), "sc")
    runtime("start", "sc", check=False)
    wait_stopped(runtime, "sc")
    runtime("delete", "sc")
    assert not (b / "rootfs/program-ran").exists()


def test_run_foreground_runs_every_phase_once(runtime, bundle, hook_env):
    script, logs = hook_env
    b = bundle("true", edit=all_phase_hooks(script, logs))
    install_container_hook(b)
    runtime("run", "-b", str(b), "fg")
    order = (logs / "order").read_text().split()
    assert sorted(order) == sorted(PHASES)
    assert order[:3] == ["prestart", "createRuntime", "createContainer"]
    assert order[-1] == "poststop"
