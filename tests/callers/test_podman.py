"""podman (4.3, through conmon) driving pyrunc as its OCI runtime.

podman never runs `pyrunc run`: it writes the bundle, conmon calls `pyrunc create` (with a
console socket for `-t`), podman calls `start`, `state`, `kill`, `pause`, `resume`, `delete`, and
conmon calls `exec --process F --detach [--tty]` for `podman exec`. These tests check what a
podman user sees: exit codes and output, signals and their timing, limits in the cgroup files,
the user and the seccomp filter inside the container. Every podman keeps its state under a
temporary directory (see podman_support.py); after each test nothing may be left.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from podman_support import (
    CGROUP_ROOT,
    IMAGE,
    PYRUNC_STATE,
    PodmanHost,
    cgroup_of,
    containers_conf,
    pyrunc_path,
)
from pyrunc_testing import needs_root, status_fields

pytestmark = [
    needs_root,
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("podman") is None or shutil.which("conmon") is None,
                       reason="needs podman and conmon (apt-get install podman)"),
]

SLEEP = ("sleep", "1000")
#: A container that leaves on SIGTERM with status 7 (busybox sh runs the trap between sleeps).
TRAPS_TERM = ("sh", "-c", "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done")


@pytest.fixture(scope="module")
def podman_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanHost]:
    host = PodmanHost(tmp_path_factory.mktemp("podman"),
                      f"/pyrunc-test-podman/{uuid.uuid4().hex[:12]}")
    try:
        host.import_busybox()
        yield host
    finally:
        host.destroy()


@pytest.fixture
def podman(podman_host: PodmanHost) -> Iterator[PodmanHost]:
    """The module's podman; afterwards every container is removed and nothing may remain."""
    ids = podman_host.started = []
    yield podman_host
    ids.extend(i for i in podman_host.container_ids() if i not in ids)
    podman_host("rm", "--all", "--force", "--time", "0", check=False)
    left = podman_host.leftovers(ids)
    podman_host.purge(ids)
    assert not left, f"podman and pyrunc left behind: {left}"


def wait_for_log(podman: PodmanHost, container_id: str, line: str, timeout: float = 20) -> None:
    """Wait until the container's output (conmon's log) holds ``line``."""
    deadline = time.monotonic() + timeout
    while line not in podman("logs", container_id).stdout.splitlines():
        assert time.monotonic() < deadline, f"no {line!r} from {container_id}"
        time.sleep(0.1)


def pid_of(podman: PodmanHost, container_id: str) -> int:
    pid = int(podman.inspect(container_id)["State"]["Pid"])
    assert pid > 0
    return pid


def test_run_rm_gives_the_output_and_the_exit_code(podman: PodmanHost) -> None:
    proc = podman.run("sh", "-c", "echo out; echo err >&2; exit 3", options=("--rm",))
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "out\n"
    assert "err" in proc.stderr
    assert podman.run("true", options=("--rm",)).returncode == 0


def test_a_missing_executable_is_exit_127_with_the_reason(podman: PodmanHost) -> None:
    proc = podman.run("/no/such/program", options=("--rm",))
    assert proc.returncode == 127, proc.stderr
    assert "/no/such/program" in proc.stderr


def test_errors_come_back_through_the_json_log(podman: PodmanHost) -> None:
    """With pyrunc in `runtime_supports_json`, podman reads the error from pyrunc's --log."""
    conf = containers_conf(podman.base / "json-log.conf", podman.base / "networks",
                           json_log=True)
    # Without the ulimit flags podman asks for RLIMIT_NOFILE 1048576, above this host's hard
    # limit, and create must fail (EPERM: CAP_SYS_RESOURCE is not in the bounding set).
    proc = podman("run", "--rm", "--network", "none", "--cgroup-parent", podman.cgroup_parent,
                  IMAGE, "true", check=False, conf=conf)
    assert proc.returncode == 126, proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: {pyrunc_path()}: setrlimit RLIMIT_NOFILE"), error
    assert "EPERM" in error
    assert "pyrunc: pyrunc:" not in error   # the message, not stderr's prefixed copy
    ok = podman("run", "--rm", *podman.run_args(), IMAGE, "echo", "ok", conf=conf)
    assert ok.stdout == "ok\n"


def test_run_t_gives_the_container_a_terminal(podman: PodmanHost) -> None:
    proc = podman.run("sh", "-c", "tty; [ -t 0 ] && echo stdin-is-a-tty", options=("--rm", "-t"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.replace("\r\n", "\n").splitlines()
    assert lines[0].startswith("/dev/pts/"), proc.stdout
    assert "stdin-is-a-tty" in lines


def test_detached_container_runs_under_pyrunc_and_takes_exec(podman: PodmanHost) -> None:
    container_id = podman.start_detached(*SLEEP)
    info = podman.inspect(container_id)
    assert info["State"]["Status"] == "running"
    assert info["OCIRuntime"] == pyrunc_path()
    assert (PYRUNC_STATE / container_id).is_dir()   # pyrunc's own state for this container

    proc = podman("exec", container_id, "sh", "-c", "echo in $(hostname); exit 5", check=False)
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == f"in {container_id[:12]}\n"

    # An exec'd process shares the init's pid namespace: it sees `sleep` as pid 1.
    assert podman("exec", container_id, "cat", "/proc/1/cmdline").stdout == "sleep\x001000\x00"


def test_exec_t_gives_the_process_a_terminal(podman: PodmanHost) -> None:
    container_id = podman.start_detached(*SLEEP)
    proc = podman("exec", "-t", container_id, "sh", "-c", "tty; [ -t 1 ] && echo out-is-a-tty",
                  check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.replace("\r\n", "\n").splitlines()
    assert lines[0].startswith("/dev/pts/"), proc.stdout
    assert "out-is-a-tty" in lines


def test_stop_sends_sigterm_and_the_container_may_leave(podman: PodmanHost) -> None:
    container_id = podman.start_detached(*TRAPS_TERM)
    wait_for_log(podman, container_id, "ready")   # the trap is set
    began = time.monotonic()
    podman("stop", "--time", "30", container_id)
    assert time.monotonic() - began < 15           # it left on SIGTERM, long before SIGKILL
    assert podman.inspect(container_id)["State"]["ExitCode"] == 7


def test_stop_sends_sigkill_after_the_timeout(podman: PodmanHost) -> None:
    # The container notes SIGTERM and carries on, so only the SIGKILL after --time stops it.
    container_id = podman.start_detached(
        "sh", "-c", "trap 'echo got-term' TERM; echo ready; while :; do sleep 0.1; done")
    wait_for_log(podman, container_id, "ready")
    began = time.monotonic()
    podman("stop", "--time", "2", container_id)
    took = time.monotonic() - began
    assert 2 <= took < 20, took
    state = podman.inspect(container_id)["State"]
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 137
    assert podman("logs", container_id).stdout.split() == ["ready", "got-term"]


def test_kill_delivers_the_signal(podman: PodmanHost) -> None:
    trapping = podman.start_detached(
        "sh", "-c", "trap 'exit 9' USR1; echo ready; while :; do sleep 0.1; done")
    wait_for_log(podman, trapping, "ready")
    podman("kill", "--signal", "USR1", trapping)
    assert podman.wait_status(trapping, "exited")["State"]["ExitCode"] == 9

    sleeping = podman.start_detached(*SLEEP)
    podman("kill", sleeping)                          # SIGKILL by default
    assert podman.wait_status(sleeping, "exited")["State"]["ExitCode"] == 137


def test_rm_f_removes_a_running_container_and_its_processes(podman: PodmanHost) -> None:
    container_id = podman.start_detached(*SLEEP)
    pid = pid_of(podman, container_id)
    memory_cgroup = CGROUP_ROOT / "memory" / cgroup_of(pid, "memory").lstrip("/")
    assert memory_cgroup.is_dir()
    podman("rm", "--force", "--time", "0", container_id)   # SIGKILL at once
    assert container_id not in podman.container_ids()
    assert not (PYRUNC_STATE / container_id).exists()
    assert not memory_cgroup.exists()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        status = status_fields(Path(f"/proc/{pid}/status").read_text()).get("State", "")
        if status.startswith("Z"):
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or status.startswith("Z")


def test_pause_freezes_the_cgroup_and_unpause_thaws_it(podman: PodmanHost) -> None:
    container_id = podman.start_detached(*SLEEP)
    freezer = CGROUP_ROOT / "freezer" / cgroup_of(pid_of(podman, container_id),
                                                  "freezer").lstrip("/") / "freezer.state"
    podman("pause", container_id)
    assert podman.inspect(container_id)["State"]["Status"] == "paused"
    assert freezer.read_text().strip() == "FROZEN"
    podman("unpause", container_id)
    assert podman.inspect(container_id)["State"]["Status"] == "running"
    assert freezer.read_text().strip() == "THAWED"
    assert podman("exec", container_id, "echo", "awake").stdout == "awake\n"


def test_top_lists_the_container_processes(podman: PodmanHost) -> None:
    container_id = podman.start_detached(*SLEEP)
    rows = podman("top", container_id, "pid", "args").stdout.splitlines()
    assert rows[0].split() == ["PID", "COMMAND"]
    assert ["1", "sleep", "1000"] in [row.split() for row in rows[1:]]


def test_memory_and_pids_limits_reach_the_cgroup(podman: PodmanHost) -> None:
    container_id = podman.start_detached(*SLEEP, options=("--memory", "64m", "--pids-limit", "42"))
    pid = pid_of(podman, container_id)
    memory = cgroup_of(pid, "memory")
    assert memory.startswith(podman.cgroup_parent + "/"), memory
    assert (CGROUP_ROOT / "memory" / memory.lstrip("/") / "memory.limit_in_bytes"
            ).read_text().strip() == str(64 * 1024 * 1024)
    pids = cgroup_of(pid, "pids")
    assert (CGROUP_ROOT / "pids" / pids.lstrip("/") / "pids.max").read_text().strip() == "42"


def test_user_option_sets_the_identity(podman: PodmanHost) -> None:
    proc = podman.run("id", options=("--rm", "--user", "1000:1000"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("uid=1000(user) gid=1000(user)")
    proc = podman.run("id", "-u", options=("--rm", "--user", "nobody"))
    assert proc.stdout.strip() == "65534", proc.stderr


def test_the_default_seccomp_profile_is_applied(podman: PodmanHost) -> None:
    confined = podman.run("cat", "/proc/self/status", options=("--rm",))
    assert confined.returncode == 0, confined.stderr
    assert status_fields(confined.stdout)["Seccomp"] == "2"
    unconfined = podman.run("cat", "/proc/self/status",
                            options=("--rm", "--security-opt", "seccomp=unconfined"))
    assert status_fields(unconfined.stdout)["Seccomp"] == "0"


def test_runtime_by_name_from_containers_conf(podman: PodmanHost) -> None:
    """`podman --runtime pyrunc` finds pyrunc through `[engine.runtimes]` (README's entry)."""
    assert f'pyrunc = ["{pyrunc_path()}"]' in podman.conf.read_text()
    info = podman("info", "--format", "{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}}",
                  runtime="pyrunc").stdout.split()
    assert info == ["pyrunc", pyrunc_path()]
    container_id = podman("run", "-d", *podman.run_args(), IMAGE, *SLEEP,
                          runtime="pyrunc").stdout.strip()
    podman.started.append(container_id)
    assert podman.inspect(container_id)["OCIRuntime"] == "pyrunc"
    assert (PYRUNC_STATE / container_id).is_dir()
    # The exit command conmon runs when the container ends names the runtime too.
    podman("stop", "--time", "0", container_id, runtime="pyrunc")
    podman("rm", container_id, runtime="pyrunc")
    assert not (PYRUNC_STATE / container_id).exists()
