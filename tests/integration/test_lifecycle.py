"""The runtime-spec lifecycle with real containers: create, start, state, kill, delete, run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyrunc_testing import Runtime, needs_root, reap_children

pytestmark = [needs_root, pytest.mark.integration]


def wait_for_status(rt: Runtime, cid: str, status: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        result = rt("state", cid, check=False)
        state = json.loads(result.stdout) if result.returncode == 0 else {"status": None}
        if state["status"] == status or time.monotonic() > deadline:
            return state
        reap_children()
        time.sleep(0.02)


def test_create_parks_init_and_writes_pid_file_without_newline(runtime, bundle, tmp_path):
    b = bundle("sleep", "100")
    pid_file = tmp_path / "init.pid"
    runtime("create", "--bundle", str(b), "--pid-file", str(pid_file), "c1")
    text = pid_file.read_text()
    assert text.isdigit() and not text.endswith("\n")
    state = runtime.state("c1")
    assert state["status"] == "created"
    assert state["pid"] == int(text)
    assert state["id"] == "c1" and state["bundle"] == str(b)
    assert state["rootfs"] == str(b / "rootfs")
    assert list(state)[:5] == ["ociVersion", "id", "pid", "status", "bundle"]
    assert state["created"].endswith("Z") and "." in state["created"]
    # The parked init has not run the program yet: it is still the pyrunc interpreter.
    assert "sleep" not in Path(f"/proc/{text}/cmdline").read_text()
    runtime("delete", "c1")  # created containers are deletable without --force
    assert not (runtime.root / "c1").exists()


def test_start_runs_program_and_state_follows_the_kernel(runtime, bundle):
    b = bundle("sleep", "100")
    runtime("create", "-b", str(b), "c2")
    runtime("start", "c2")
    state = wait_for_status(runtime, "c2", "running")
    assert state["status"] == "running"
    assert "sleep" in Path(f"/proc/{state['pid']}/cmdline").read_text()
    second = runtime("start", "c2", check=False)
    assert second.returncode == 1 and "cannot start an already running container" in second.stderr
    refused = runtime("delete", "c2", check=False)
    assert refused.returncode == 1 and "not stopped: running" in refused.stderr
    runtime("kill", "c2", "KILL")
    state = wait_for_status(runtime, "c2", "stopped")
    assert state["status"] == "stopped" and state["pid"] == 0
    runtime("delete", "c2")


@pytest.mark.parametrize("signame", ["TERM", "SIGTERM", "15", "sigterm"])
def test_kill_accepts_names_with_or_without_sig_and_numbers(runtime, bundle, signame):
    b = bundle("sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done")
    runtime("run", "-d", "-b", str(b), "k")
    wait_for_status(runtime, "k", "running")
    time.sleep(0.2)  # let the shell install its trap
    runtime("kill", "k", signame)
    assert wait_for_status(runtime, "k", "stopped")["status"] == "stopped"
    not_running = runtime("kill", "k", "KILL", check=False)
    assert not_running.returncode == 1 and "container not running" in not_running.stderr
    runtime("kill", "--all", "k", "KILL")  # --all succeeds on a stopped container
    runtime("delete", "k")


def test_kill_rejects_unknown_signal(runtime, bundle):
    runtime("create", "-b", str(bundle("true")), "ks")
    result = runtime("kill", "ks", "NOPE", check=False)
    assert result.returncode == 1 and 'unknown signal "NOPE"' in result.stderr
    runtime("delete", "--force", "ks")


def test_run_exit_status_is_the_containers(runtime, bundle):
    assert runtime("run", "-b", str(bundle("sh", "-c", "exit 7")), "e7", check=False).returncode == 7
    assert not (runtime.root / "e7").exists()


def test_run_killed_by_signal_exits_128_plus_n(runtime, bundle):
    # (A pid namespace's init ignores SIGKILL from inside, so the kill comes from outside.)
    proc = subprocess.Popen(runtime.argv("run", "-b", str(bundle("sleep", "100")), "sig"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for_status(runtime, "sig", "running")
    runtime("kill", "sig", "9")
    assert proc.wait(timeout=20) == 128 + 9


def test_run_bundle_directory_form_derives_a_unique_id(runtime, bundle):
    b = bundle("sh", "-c", "cat /etc/hostname >/dev/null; echo hi")
    first = runtime("run", "--keep", str(b))
    assert first.stdout == "hi\n"
    runtime("run", "--keep", str(b))
    ids = [c["id"] for c in json.loads(runtime("list", "--format", "json").stdout)]
    assert ids == [b.name, f"{b.name}-2"]
    for cid in ids:
        runtime("delete", cid)


def test_foreground_run_forwards_signals_to_the_container(runtime, bundle):
    b = bundle("sh", "-c", "trap 'echo got-term; exit 3' TERM; echo ready; "
                           "while true; do sleep 0.1; done")
    proc = subprocess.Popen(runtime.argv("run", "-b", str(b), "fwd"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert "got-term" in out
    assert proc.returncode == 3, err


def test_state_list_and_delete_of_unknown_ids(runtime):
    for args in (("state", "nope"), ("start", "nope"), ("kill", "nope"), ("delete", "nope")):
        result = runtime(*args, check=False)
        assert result.returncode == 1
        assert "container does not exist" in result.stderr, args
    assert runtime("delete", "--force", "nope").returncode == 0
    missing_root = runtime("list", check=False)
    assert missing_root.returncode == 1 and "ENOENT" in missing_root.stderr
    runtime.root.mkdir()
    assert runtime("list", "--format", "json").stdout.strip() == "null"


def test_invalid_id_is_refused(runtime, bundle):
    result = runtime("create", "-b", str(bundle()), "../x", check=False)
    assert result.returncode == 1 and "invalid container ID format" in result.stderr


def test_duplicate_id_is_refused_and_first_container_survives(runtime, bundle):
    b = bundle("sleep", "100")
    runtime("create", "-b", str(b), "dup")
    result = runtime("create", "-b", str(b), "dup", check=False)
    assert result.returncode == 1 and "already exists" in result.stderr
    assert runtime.state("dup")["status"] == "created"
    runtime("delete", "--force", "dup")


def test_delete_force_cleans_up_a_create_killed_with_sigkill(runtime, bundle, cgroup_path):
    b = bundle("sleep", "100", edit=lambda c: c.setdefault("hooks", {}).setdefault(
        "createRuntime", []).append({"path": "/bin/sleep", "args": ["sleep", "30"]}))
    proc = subprocess.Popen(runtime.argv("create", "-b", str(b), "half"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not (runtime.root / "half" / "state.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # inside the createRuntime hook now
    proc.kill()
    proc.wait()
    runtime("delete", "--force", "half")
    reap_children()
    assert not (runtime.root / "half").exists()
    assert not Path(f"/sys/fs/cgroup/pids{cgroup_path}").exists()


def test_concurrent_commands_on_one_id_are_serialized(runtime, bundle):
    b = bundle("sleep", "100")
    runtime("create", "-b", str(b), "conc")
    procs = [subprocess.Popen(runtime.argv("start", "conc"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    codes = sorted(p.wait(timeout=30) for p in procs)
    assert codes == [0, 1, 1]
    runtime("delete", "--force", "conc")


def test_init_joins_its_cgroup_before_create_returns(runtime, bundle, cgroup_path, tmp_path):
    b = bundle("sleep", "100")
    runtime("create", "-b", str(b), "--pid-file", str(tmp_path / "pid"), "cg")
    pid = (tmp_path / "pid").read_text()
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for controller in ("pids", "memory", "freezer", "name=systemd"):
        line = next(x for x in lines if x.split(":")[1] == controller)
        assert line.split(":", 2)[2] == cgroup_path, line
    runtime("delete", "c" + "g")
    assert not Path(f"/sys/fs/cgroup/pids{cgroup_path}").exists()


def test_log_format_json_writes_runc_style_records(runtime, bundle, tmp_path):
    log = tmp_path / "log.json"
    result = runtime("state", "missing", check=False,
                     global_args=("--log", str(log), "--log-format", "json"))
    assert result.returncode == 1
    assert result.stderr.strip() == "container does not exist"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[-1]["level"] == "error"
    assert records[-1]["msg"] == "container does not exist"
    assert set(records[-1]) >= {"level", "msg", "time"}


def test_create_failure_leaves_nothing_behind(runtime, bundle, cgroup_path):
    b = bundle("no-such-program")
    result = runtime("create", "-b", str(b), "bad", check=False)
    assert result.returncode == 1
    assert 'exec: "no-such-program": executable file not found in $PATH' in result.stderr
    errors = [line for line in result.stderr.splitlines() if "warning" not in line]
    assert len(errors) == 1, result.stderr
    assert not (runtime.root / "bad").exists()
    assert not Path(f"/sys/fs/cgroup/pids{cgroup_path}").exists()
    reap_children()


def test_state_reports_annotations(runtime, bundle):
    b = bundle("true", edit=lambda c: c.update(annotations={"org.example/key": "v"}))
    runtime("create", "-b", str(b), "ann")
    assert runtime.state("ann")["annotations"] == {"org.example/key": "v"}
    runtime("delete", "ann")


def test_dead_unreaped_init_reads_as_stopped(runtime, bundle, tmp_path):
    """The caller reaps the init: until it does, a zombie init must still read `stopped`."""
    b = bundle("true")
    runtime("run", "-d", "-b", str(b), "--pid-file", str(tmp_path / "pid"), "z")
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 10
    while "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert runtime.state("z")["status"] == "stopped"
    runtime("delete", "z")
    os.waitpid(pid, 0)


def test_delete_of_a_stopped_container_kills_processes_left_in_its_cgroup(runtime, bundle,
                                                                          cgroup_path):
    """Without a pid namespace, children outlive the init; delete must not leak them."""
    b = bundle("sh", "-c", "sleep 100 & echo started",
               edit=lambda c: c["linux"].__setitem__(
                   "namespaces", [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]))
    runtime("run", "-d", "-b", str(b), "orph")
    assert wait_for_status(runtime, "orph", "stopped")["status"] == "stopped"
    procs = Path(f"/sys/fs/cgroup/pids{cgroup_path}/cgroup.procs")
    assert procs.read_text().split(), "the background sleep should still be in the cgroup"
    runtime("delete", "orph")
    reap_children()
    assert not Path(f"/sys/fs/cgroup/pids{cgroup_path}").exists()


def test_pidfd_socket_receives_a_pidfd_of_the_init(runtime, bundle, tmp_path):
    import socket

    path = str(tmp_path / "pidfd.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        runtime("create", "-b", str(bundle("sleep", "100")), "--pidfd-socket", path, "pfd")
        conn, _ = listener.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    pid = runtime.state("pfd")["pid"]
    assert msg and len(fds) == 1
    # A pidfd names its process in fdinfo.
    fdinfo = Path(f"/proc/self/fdinfo/{fds[0]}").read_text()
    os.close(fds[0])
    assert f"Pid:\t{pid}" in fdinfo
    runtime("delete", "pfd")


def test_create_refuses_a_cgroup_that_already_holds_processes(runtime, bundle, cgroup_path):
    """Two containers with one cgroupsPath: the second must not join (and later kill) the first."""
    runtime("run", "-d", "-b", str(bundle("sleep", "100")), "first")
    second = runtime("create", "-b", str(bundle("sleep", "100")), "second", check=False)
    assert second.returncode == 1 and "cgroup is not empty" in second.stderr
    assert not (runtime.root / "second").exists()
    assert runtime.state("first")["status"] == "running"
    runtime("delete", "--force", "first")


def _without_pid_namespace(config: dict) -> None:
    # A pid namespace's init ignores signals it has no handler for; these tests need the
    # default action, so the program is not pid 1 here.
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                     if n["type"] != "pid"]


def test_signal_during_foreground_create_reaches_the_container(runtime, bundle):
    """A SIGTERM while `run` is still creating must not kill pyrunc and orphan the container."""
    def edit(config: dict) -> None:
        _without_pid_namespace(config)
        config.setdefault("hooks", {}).setdefault("createRuntime", []).append(
            {"path": "/bin/sleep", "args": ["sleep", "1"]})
    b = bundle("sleep", "100", edit=edit)
    proc = subprocess.Popen(runtime.argv("run", "-b", str(b), "early"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (runtime.root / "early" / "state.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)      # inside the createRuntime hook
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert not (runtime.root / "early").exists()


def test_sigint_to_a_created_container_kills_it_by_that_signal(runtime, bundle, tmp_path):
    """The parked init must not turn SIGINT into Python's KeyboardInterrupt (exit 127)."""
    runtime("create", "-b", str(bundle("sleep", "100", edit=_without_pid_namespace)),
            "--pid-file", str(tmp_path / "pid"), "int")
    pid = int((tmp_path / "pid").read_text())
    runtime("kill", "int", "INT")
    _, status = os.waitpid(pid, 0)   # the test process is the subreaper: it gets the status
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT
    runtime("delete", "int")


def test_fifo_left_by_a_start_that_died_does_not_hang_the_next_one(runtime, bundle):
    """A `start` killed between releasing the init and removing the fifo leaves the fifo."""
    runtime("create", "-b", str(bundle("sleep", "100")), "stale")
    fifo = runtime.root / "stale" / "exec.fifo"
    fd = os.open(fifo, os.O_RDONLY)          # what `start` does, minus the clean-up
    assert os.read(fd, 1) == b"0"
    os.close(fd)
    deadline = time.monotonic() + 10
    while runtime.state("stale")["status"] != "running":
        assert time.monotonic() < deadline, "the released program never showed as running"
        time.sleep(0.02)
    second = runtime("start", "stale", check=False, timeout=20)
    assert second.returncode == 1 and "already running" in second.stderr
    assert not fifo.exists()
    runtime("delete", "--force", "stale")


def test_the_runtime_leaves_the_inits_modules_to_the_intermediate(runtime, bundle, tmp_path):
    """The intermediate imports what the init needs while the runtime waits for the cgroup
    move; a runtime that imported them itself would pay for them before the fork."""
    init_only = ("pyrunc.rootfs", "pyrunc.capabilities", "pyrunc.devices", "pyrunc.lsm",
                 "pyrunc.process.child", "pyrunc.process.attrs")
    code = ("import sys\nfrom pyrunc.cli.main import main\n"
            f"rc = main(['--root', {str(runtime.root)!r}, 'create', '-b', "
            f"{str(bundle('true'))!r}, 'lazy'])\n"
            f"loaded = [m for m in {init_only!r} if m in sys.modules]\n"
            "sys.stderr.write(f'\\nRC={rc} LOADED={loaded}')\n")
    err = tmp_path / "err"
    with open(err, "w") as f:   # a file: the container's init inherits it
        subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=f, timeout=60)
    try:
        assert err.read_text().rstrip().endswith("RC=0 LOADED=[]"), err.read_text()
        runtime("start", "lazy")
    finally:
        runtime("delete", "--force", "lazy", check=False)
