"""containerd 1.6 drives pyrunc through containerd-shim-runc-v2, as `ctr` users and dockerd do.

One private containerd serves the module (its root, state and socket in a temporary
directory; the CRI plugin off). Every container is started with `ctr run --runc-binary
<pyrunc> --runc-root <dir of the test's own>`, so the shim calls pyrunc for create, start,
exec, kill, pause, resume, ps and delete, and its state can be read back with
`pyrunc --root <dir>/<namespace> list`. Each container gets an absolute cgroup path under
/pyrunc-test (a relative one would land under the machine's own cgroup).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerd_daemon import Containerd
from busybox_image import build_oci_archive
from pyrunc_testing import is_root, pyrunc_command

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not is_root(), reason="starts containerd and containers: needs root"),
    pytest.mark.skipif(shutil.which("containerd") is None or shutil.which("ctr") is None,
                       reason="containerd is not installed (apt-get install containerd)"),
]

IMAGE = "localhost/bb:latest"
NAMESPACE = "default"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    base = tmp_path_factory.mktemp("containerd")
    d = Containerd(base)
    forced: list[str] = []
    try:
        d.start()
        archive = build_oci_archive(base, base / "image.tar")
        d.ctr("image", "import", "--base-name", "localhost/bb", str(archive))
        yield d
    finally:
        forced = d.stop()
        d.remove()
    assert not forced, f"containerd left things behind: {forced}"


class Ctr:
    """`ctr run` and friends with pyrunc as the runtime binary and a private state root."""

    def __init__(self, daemon: Containerd, runc_root: Path, cgroup: str) -> None:
        self.daemon = daemon
        self.runc_root = runc_root
        self.cgroup = cgroup
        self.pyrunc = pyrunc_command()[0]
        self.fifo_dir = runc_root.parent / "fifo"   # ctr's default is /run/containerd/fifo
        self.ids: list[str] = []

    def run_argv(self, cid: str, *args: str, flags: tuple[str, ...] = ()) -> list[str]:
        self.ids.append(cid)
        return ["run", "--fifo-dir", str(self.fifo_dir), "--runc-binary", self.pyrunc,
                "--runc-root", str(self.runc_root),
                "--cgroup", f"{self.cgroup}/{cid}", *flags, IMAGE, cid, *args]

    def run(self, cid: str, *args: str, flags: tuple[str, ...] = (),
            check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.daemon.ctr(*self.run_argv(cid, *args, flags=flags), check=check)

    def exec_argv(self, cid: str, exec_id: str, *args: str,
                  flags: tuple[str, ...] = ()) -> list[str]:
        return ["task", "exec", "--fifo-dir", str(self.fifo_dir), "--exec-id", exec_id, *flags,
                cid, *args]

    def in_pty(self, *ctr_args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ctr on a terminal of its own (script(1)), as a user at a shell would."""
        argv = ["ctr", "--address", str(self.daemon.socket), "--namespace", NAMESPACE,
                *ctr_args]
        return subprocess.run(["script", "-qec", shlex.join(argv), "/dev/null"],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    def pyrunc_list(self) -> list[dict[str, object]]:
        out = subprocess.run([self.pyrunc, "--root", str(self.runc_root / NAMESPACE), "list",
                              "--format", "json"], capture_output=True, text=True, check=True)
        return json.loads(out.stdout or "[]") or []

    def task_status(self, cid: str) -> str:
        for line in self.daemon.ctr("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[2]
        return ""

    def wait_status(self, cid: str, status: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.task_status(cid) != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"task {cid} is {self.task_status(cid)!r}, not {status}")
            time.sleep(0.1)

    def remove(self, cid: str) -> None:
        """Kill, delete and remove one container; quiet when parts are already gone."""
        ctr = self.daemon.ctr
        if self.task_status(cid):
            ctr("task", "kill", "--signal", "SIGKILL", cid, check=False)
            deadline = time.monotonic() + 20
            while self.task_status(cid) not in ("STOPPED", "") and time.monotonic() < deadline:
                time.sleep(0.1)
            ctr("task", "delete", "--force", cid, check=False)
        ctr("container", "rm", cid, check=False)


@pytest.fixture
def ctr(daemon: Containerd, tmp_path: Path, cgroup_path: str) -> Iterator[Ctr]:
    helper = Ctr(daemon, tmp_path / "runc-root", cgroup_path)
    try:
        yield helper
    finally:
        for cid in helper.ids:
            helper.remove(cid)
        left = helper.pyrunc_list() if (helper.runc_root / NAMESPACE).exists() else []
        for cid in (str(c["id"]) for c in left):
            subprocess.run([helper.pyrunc, "--root", str(helper.runc_root / NAMESPACE),
                            "delete", "--force", cid], capture_output=True, check=False)
        for cgroup_dir in Path("/sys/fs/cgroup").glob(f"*{cgroup_path}"):
            cgroup_dir.rmdir()
    assert not left, f"pyrunc containers left behind: {left}"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def running(ctr: Ctr) -> str:
    """A detached busybox `sleep` started through the shim; removed by `ctr`'s teardown."""
    cid = new_id("sleeper")
    result = ctr.run(cid, "sleep", "1000", flags=("--detach",))
    assert result.returncode == 0, result.stderr
    ctr.wait_status(cid, "RUNNING")
    return cid


def test_run_passes_output_and_exit_status_through(ctr: Ctr) -> None:
    result = ctr.run(new_id("echo"), "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3",
                     flags=("--rm",))
    assert result.returncode == 3, result.stderr
    assert result.stdout == "to-stdout\n"
    assert result.stderr == "to-stderr\n"


def test_run_with_a_tty_gives_the_program_a_terminal(ctr: Ctr) -> None:
    cid = new_id("tty")
    # The sleep keeps the task alive until ctr has sent the terminal's size (see the exec test).
    script = "tty; [ -t 1 ] && echo stdout-is-a-tty; sleep 1; exit 5"
    result = ctr.in_pty(*ctr.run_argv(cid, "sh", "-c", script, flags=("--rm", "--tty")))
    assert result.returncode == 5, result.stdout + result.stderr
    # ctr writes a NUL to the terminal first (script shows it as "^@"), with runc too.
    lines = [line for line in result.stdout.replace("\r", "").replace("^@", "").splitlines()
             if line]
    assert lines == ["/dev/pts/0", "stdout-is-a-tty"], lines


def test_detached_task_is_a_pyrunc_container(ctr: Ctr, running: str) -> None:
    containers = {str(c["id"]): c for c in ctr.pyrunc_list()}
    assert running in containers, containers
    assert containers[running]["status"] == "running"
    task = ctr.daemon.ctr("task", "ls").stdout
    assert str(containers[running]["pid"]) in task
    cgroup = Path(f"/proc/{containers[running]['pid']}/cgroup").read_text()
    assert f":memory:{ctr.cgroup}/{running}\n" in cgroup


def test_task_exec_without_a_tty(ctr: Ctr, running: str) -> None:
    result = ctr.daemon.ctr(*ctr.exec_argv(running, "probe", "sh", "-c",
                                           "echo out $$; echo err >&2; exit 7"), check=False)
    assert result.returncode == 7, result.stderr
    out, pid = result.stdout.split()
    assert out == "out" and pid != "1"
    assert result.stderr == "err\n"


def test_task_exec_with_a_tty(ctr: Ctr, running: str) -> None:
    # The sleep keeps the process alive until ctr has sent the terminal's size: ctr resizes
    # only after the start, and logs an error for a process that has already exited (with
    # runc as well).
    result = ctr.in_pty(*ctr.exec_argv(running, "shell", "sh", "-c",
                                       "tty; [ -t 1 ] && echo stdout-is-a-tty; sleep 1; exit 4",
                                       flags=("--tty",)))
    assert result.returncode == 4, result.stdout + result.stderr
    lines = [line for line in result.stdout.replace("\r", "").replace("^@", "").splitlines()
             if line]
    assert len(lines) == 2 and lines[0].startswith("/dev/pts/"), lines
    assert lines[1] == "stdout-is-a-tty", lines


def test_task_ps_lists_the_containers_processes(ctr: Ctr, running: str) -> None:
    init_pid = next(c["pid"] for c in ctr.pyrunc_list() if c["id"] == running)
    exec_ = ctr.daemon.ctr(*ctr.exec_argv(running, "extra", "sleep", "1000",
                                          flags=("--detach",)), check=False)
    assert exec_.returncode == 0, exec_.stderr
    rows = ctr.daemon.ctr("task", "ps", running).stdout.splitlines()
    assert rows[0].split()[0] == "PID"
    pids = {int(row.split()[0]) for row in rows[1:]}
    assert init_pid in pids and len(pids) == 2, rows


def test_task_pause_and_resume_freeze_the_cgroup(ctr: Ctr, running: str) -> None:
    freezer = Path("/sys/fs/cgroup/freezer") / f"{ctr.cgroup}/{running}".lstrip("/")
    ctr.daemon.ctr("task", "pause", running)
    assert ctr.task_status(running) == "PAUSED"
    assert freezer.joinpath("freezer.state").read_text().strip() == "FROZEN"
    assert next(c["status"] for c in ctr.pyrunc_list() if c["id"] == running) == "paused"
    ctr.daemon.ctr("task", "resume", running)
    assert ctr.task_status(running) == "RUNNING"
    assert freezer.joinpath("freezer.state").read_text().strip() == "THAWED"


def test_task_metrics_read_the_containers_cgroup(ctr: Ctr, running: str) -> None:
    out = ctr.daemon.ctr("task", "metrics", running).stdout
    values = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    assert int(values["pids.current"]) == 1, out
    assert int(values["memory.usage_in_bytes"]) > 0, out


def test_task_kill_then_delete_reports_the_signal_and_removes_the_container(
        ctr: Ctr, running: str) -> None:
    ctr.daemon.ctr("task", "kill", "--signal", "SIGKILL", running)
    ctr.wait_status(running, "STOPPED")
    deleted = ctr.daemon.ctr("task", "delete", running)
    assert "exit code 137" in deleted.stdout + deleted.stderr, deleted
    assert running not in {c["id"] for c in ctr.pyrunc_list()}
    assert not (Path("/sys/fs/cgroup/memory") / f"{ctr.cgroup}/{running}".lstrip("/")).exists()


def test_memory_limit_reaches_the_memory_cgroup(ctr: Ctr) -> None:
    cid = new_id("mem")
    limit = 64 * 1024 * 1024
    result = ctr.run(cid, "sleep", "1000", flags=("--detach", "--memory-limit", str(limit)))
    assert result.returncode == 0, result.stderr
    memory = Path("/sys/fs/cgroup/memory") / f"{ctr.cgroup}/{cid}".lstrip("/")
    assert int(memory.joinpath("memory.limit_in_bytes").read_text()) == limit


def test_a_pyrunc_error_is_readable_in_ctrs_output(ctr: Ctr) -> None:
    cid = new_id("missing")
    result = ctr.run(cid, "/no/such/program", flags=("--rm",))
    assert result.returncode != 0
    message = result.stderr.strip()
    assert "OCI runtime create failed" in message, message
    assert "/no/such/program" in message and "no such file or directory" in message, message
    assert cid not in {c["id"] for c in ctr.pyrunc_list()}
