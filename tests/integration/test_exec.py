"""`pyrunc exec`: a process added to a running container, as the container sees it.

Each test starts a real container, execs into it and compares what the exec'd process reports
(/proc/self/ns/*, /proc/self/cgroup, /proc/self/status, id, env, cwd) with the container's init.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pyrunc_testing import needs_root, reap_children, status_fields

pytestmark = [needs_root, pytest.mark.integration]

NAMESPACES = ("mnt", "uts", "ipc", "pid", "net", "cgroup", "user", "time")


@pytest.fixture
def running(runtime, bundle):
    """Factory: a detached container running `sleep`, deleted afterwards."""
    made: list[str] = []

    def factory(cid: str = "ex", edit=None) -> int:
        runtime("run", "-d", "-b", str(bundle("sleep", "1000", edit=edit)), cid)
        made.append(cid)
        return int(runtime.state(cid)["pid"])

    yield factory
    failed = {}
    for cid in made:
        result = runtime("delete", "--force", cid, check=False)
        if result.returncode != 0:
            failed[cid] = result.stderr
    reap_children()
    assert not failed, failed


def test_exec_joins_every_namespace_and_the_cgroup_of_the_init(runtime, running):
    pid = running()
    script = "; ".join(f"echo {n} $(readlink /proc/self/ns/{n})" for n in NAMESPACES)
    out = runtime("exec", "ex", "sh", "-c",
                  script + "; cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup").stdout
    lines = out.splitlines()
    seen = dict(line.split(" ", 1) for line in lines[:len(NAMESPACES)])
    for name in NAMESPACES:
        assert seen[name] == os.readlink(f"/proc/{pid}/ns/{name}"), name
    ours, _, the_inits = "\n".join(lines[len(NAMESPACES):]).partition("\n---\n")
    assert ours.splitlines() == the_inits.splitlines()


def test_exec_exit_status_and_signal_status_are_the_callers(runtime, running):
    running()
    assert runtime("exec", "ex", "sh", "-c", "exit 7", check=False).returncode == 7
    assert runtime("exec", "ex", "sh", "-c", "kill -TERM $$", check=False).returncode == 128 + 15


def test_exec_without_process_file_takes_the_containers_process_with_overrides(runtime, running):
    running()
    out = runtime("exec", "--user", "1000:1000", "--additional-gids", "10", "--cwd", "/tmp",
                  "--env", "EXTRA=1", "ex", "sh", "-c", "id -u; id -g; id -G; pwd; "
                  "echo EXTRA=$EXTRA; echo PATH=$PATH").stdout.splitlines()
    assert out[:4] == ["1000", "1000", "1000 10", "/tmp"]
    assert out[4] == "EXTRA=1" and out[5].startswith("PATH=/")


def test_exec_with_a_process_file_uses_exactly_that_process(runtime, running, tmp_path):
    running()
    process = {"args": ["sh", "-c", "echo $GREETING; pwd; id -u; "
                        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"],
               "env": ["PATH=/bin", "GREETING=hello"], "cwd": "/etc", "user": {"uid": 0, "gid": 0},
               "capabilities": {s: ["CAP_KILL"] for s in ("bounding", "effective", "permitted")},
               "noNewPrivileges": True}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    out = runtime("exec", "--process", str(path), "ex").stdout.splitlines()
    assert out[:3] == ["hello", "/etc", "0"]
    fields = status_fields("\n".join(out[3:]))
    assert int(fields["CapEff"], 16) == 1 << 5 and fields["NoNewPrivs"] == "1"


def test_exec_applies_the_containers_seccomp_profile(runtime, running):
    def edit(config: dict) -> None:
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
        config["root"]["readonly"] = False
    running(edit=edit)
    result = runtime("exec", "ex", "sh", "-c", "grep ^Seccomp: /proc/self/status; mkdir /x",
                     check=False)
    assert "Seccomp:\t2" in result.stdout
    assert result.returncode != 0 and "Operation not permitted" in result.stderr


def test_exec_detach_writes_the_pid_file_and_leaves_the_process_to_the_caller(
        runtime, running, tmp_path):
    running()
    pid_file = tmp_path / "exec.pid"
    result = runtime("exec", "--detach", "--pid-file", str(pid_file), "ex", "sleep", "30")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    pid = int(pid_file.read_text())
    assert "\n" not in pid_file.read_text()
    # It runs the program (not pyrunc) and is our child now: we are the subreaper.
    deadline = time.monotonic() + 5
    while "sleep" not in os.readlink(f"/proc/{pid}/exe") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.readlink(f"/proc/{pid}/exe").endswith("busybox")
    assert int(Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1]) == os.getpid()
    os.kill(pid, 9)
    os.waitpid(pid, 0)


def test_exec_detach_tty_hands_the_pty_master_to_the_console_socket(runtime, running, tmp_path):
    """What containerd's shim does for `ctr task exec -t`: --detach plus a console socket."""
    import array
    import socket

    running()
    process = {"args": ["sh", "-c", "tty; echo done"], "env": ["PATH=/bin"], "cwd": "/",
               "user": {"uid": 0, "gid": 0}, "terminal": True}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    sock_path = tmp_path / "console.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(sock_path))
        listener.listen(1)
        listener.settimeout(10)
        runtime("exec", "--process", str(path), "--detach", "--console-socket", str(sock_path),
                "ex")
        conn, _ = listener.accept()
        with conn:
            data, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4))
    master = array.array("i", ancdata[0][2][:4])[0]
    try:
        out = b""
        deadline = time.monotonic() + 10
        while b"done" not in out and time.monotonic() < deadline:
            try:
                out += os.read(master, 4096)
            except OSError:  # EIO: every slave is closed
                break
    finally:
        os.close(master)
        reap_children()
    assert data.startswith(b"/dev/pts/")
    assert out.replace(b"\r", b"").splitlines()[:2] == [data, b"done"]


def test_exec_errors_exit_255_with_runcs_wording_and_leave_nothing(runtime, running, bundle,
                                                                  cgroup_path):
    running()
    result = runtime("exec", "ex", "no-such-program", check=False)
    assert result.returncode == 255
    assert 'exec failed: ' in result.stderr
    assert 'exec: "no-such-program": executable file not found in $PATH' in result.stderr
    assert runtime("exec", "missing", "true", check=False).returncode == 255
    def own_cgroup(config: dict) -> None:
        config["linux"]["cgroupsPath"] = f"{cgroup_path}-gone"
    runtime("run", "-d", "-b", str(bundle("true", edit=own_cgroup)), "gone")
    deadline = time.monotonic() + 5
    while runtime.state("gone")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    stopped = runtime("exec", "gone", "true", check=False)
    assert stopped.returncode == 255
    assert "cannot exec in a stopped container" in stopped.stderr
    runtime("delete", "gone")
    # Nothing of the failed execs is left in the container's cgroup.
    assert len(json.loads(runtime("list", "--format", "json").stdout)) == 1


def test_exec_into_a_user_namespace_container_is_root_of_it(runtime, running):
    map_ = [{"containerID": 0, "hostID": 0, "size": 65536}]

    def edit(config: dict) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = map_
        config["linux"]["gidMappings"] = map_
    pid = running(edit=edit)
    out = runtime("exec", "ex", "sh", "-c", "readlink /proc/self/ns/user; id -u").stdout
    assert out.splitlines() == [os.readlink(f"/proc/{pid}/ns/user"), "0"]


ATTACK = """
while true; do
  for p in /proc/[0-9]*; do
    case "$(readlink $p/exe 2>/dev/null)" in *python*) echo "$p $(readlink $p/exe)" >> /tmp/hits;; esac
  done
done
"""


def test_cve_2019_5736_exec_processes_never_show_the_runtime_to_the_container(runtime, running):
    """A loop inside the container watches for processes whose /proc/<pid>/exe it can read, while
    exec'd processes come and go: pyrunc's joiner and process are non-dumpable until execve, so
    the container never gets a handle on the host's interpreter."""
    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["process"]["args"] = ["sh", "-c", ATTACK]
    running(edit=edit)
    for _ in range(20):
        runtime("exec", "ex", "true")
    hits = runtime("exec", "ex", "cat", "/tmp/hits", check=False).stdout
    assert hits == "", hits
