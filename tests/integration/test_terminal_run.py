"""Containers with `process.terminal`: the console socket, the pty the program sees, foreground run.

The test plays the part of containerd's shim / conmon: it listens on an AF_UNIX socket, passes it
as `--console-socket`, receives the pty master and reads the container's output from it. The
foreground `pyrunc run` tests give pyrunc a pty of the test's own as its terminal (CI has no
controlling terminal), with the test reading the other side.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import select
import socket
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from pyrunc_testing import needs_root, reap_children

pytestmark = [needs_root, pytest.mark.integration]


def listening_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)
    return sock


def receive_master(listener: socket.socket, timeout: float = 10) -> tuple[bytes, list[int], int]:
    """Accept the runtime's one connection; return (name, fds, number of cmsgs)."""
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(timeout)
        data, ancdata, flags, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * 4))
        assert not flags & socket.MSG_CTRUNC
        fds: list[int] = []
        for level, kind, payload in ancdata:
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            fds.extend(array.array("i", payload[:len(payload) - len(payload) % 4]))
        # The runtime closes its end after the one message.
        assert conn.recv(1) == b""
    return data, fds, len(ancdata)


def read_until_eof(master: int, timeout: float = 20) -> bytes:
    """Everything the container writes, until every slave is closed (EIO on the master)."""
    out = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        reap_children()
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return bytes(out)
            raise
        if not chunk:
            return bytes(out)
        out += chunk
    raise AssertionError(f"no EOF on the pty master after {timeout} s; got {bytes(out)!r}")


def wait_stopped(runtime, cid: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while runtime.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, runtime.state(cid)
        reap_children()
        time.sleep(0.02)


def create_with_console(runtime, b: Path, cid: str, tmp_path: Path) -> tuple[bytes, int]:
    """`create --console-socket`; returns (terminal name, master fd) as a shim would get them."""
    sock_path = tmp_path / f"{cid}.sock"
    with listening_socket(sock_path) as listener:
        runtime("create", "--console-socket", str(sock_path), "-b", str(b), cid)
        name, fds, cmsgs = receive_master(listener)
    assert cmsgs == 1 and len(fds) == 1, (cmsgs, fds)
    return name, fds[0]


# --- the console socket ------------------------------------------------------------------------

def test_console_socket_gets_one_tty_master_and_the_program_runs_on_its_slave(
        runtime, bundle, tmp_path):
    b = bundle("sh", "-c", "tty; test -c /dev/console && echo console-ok; "
                           "test -t 0 && test -t 1 && test -t 2 && echo stdio-is-tty; echo hi",
               tty=True)
    name, master = create_with_console(runtime, b, "t1", tmp_path)
    try:
        assert name and b"\0" not in name
        assert os.isatty(master)
        runtime("start", "t1")
        out = read_until_eof(master).decode().replace("\r\n", "\n")
    finally:
        os.close(master)
    lines = out.splitlines()
    assert lines[0].startswith("/dev/pts/"), out
    assert lines[1:] == ["console-ok", "stdio-is-tty", "hi"]
    wait_stopped(runtime, "t1")
    runtime("delete", "t1")


def test_dev_console_is_the_programs_pty(runtime, bundle, tmp_path):
    b = bundle("sh", "-c", "cat /proc/self/mountinfo; stat -c '%t:%T' /dev/console $(tty)",
               tty=True)
    _, master = create_with_console(runtime, b, "t2", tmp_path)
    try:
        runtime("start", "t2")
        out = read_until_eof(master).decode().replace("\r\n", "\n")
    finally:
        os.close(master)
    lines = out.splitlines()
    console_dev, tty_dev = lines[-2:]
    assert console_dev == tty_dev  # the same pts node, bound over /dev/console
    assert any(" /dev/console " in line for line in lines[:-2])
    wait_stopped(runtime, "t2")
    runtime("delete", "t2")


def test_console_size_is_applied_before_the_program_starts(runtime, bundle, tmp_path):
    def edit(config: dict) -> None:
        config["process"]["consoleSize"] = {"height": 33, "width": 101}

    b = bundle("stty", "size", tty=True, edit=edit)
    _, master = create_with_console(runtime, b, "t3", tmp_path)
    try:
        # The size is already on the pty before start, as the shim would see it.
        rows, cols = os.get_terminal_size(master).lines, os.get_terminal_size(master).columns
        assert (rows, cols) == (33, 101)
        runtime("start", "t3")
        out = read_until_eof(master).decode()
    finally:
        os.close(master)
    assert out.strip() == "33 101"
    wait_stopped(runtime, "t3")
    runtime("delete", "t3")


def test_input_written_to_the_master_reaches_the_program(runtime, bundle, tmp_path):
    b = bundle("sh", "-c", "read line; echo got:$line", tty=True)
    _, master = create_with_console(runtime, b, "t4", tmp_path)
    try:
        runtime("start", "t4")
        os.write(master, b"ping\n")
        out = read_until_eof(master).decode().replace("\r\n", "\n")
    finally:
        os.close(master)
    assert out.splitlines()[-1] == "got:ping"  # (the pty echoes the input line first)
    wait_stopped(runtime, "t4")
    runtime("delete", "t4")


def test_no_pyrunc_process_keeps_the_master_open(runtime, bundle, tmp_path):
    b = bundle("sleep", "100", tty=True)
    _, master = create_with_console(runtime, b, "t5", tmp_path)
    try:
        runtime("start", "t5")
        pid = runtime.state("t5")["pid"]
        master_id = os.fstat(master)
        holders = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                for fd in os.listdir(f"/proc/{entry}/fd"):
                    st = os.stat(f"/proc/{entry}/fd/{fd}")
                    if (st.st_dev, st.st_ino, st.st_rdev) == \
                            (master_id.st_dev, master_id.st_ino, master_id.st_rdev):
                        holders.append((entry, fd))
            except OSError:
                continue
        assert holders == [], f"processes holding the master (container pid {pid}): {holders}"
    finally:
        os.close(master)
        runtime("delete", "--force", "t5")


def test_detached_exec_tty_sends_a_master_whose_slave_the_process_runs_on(
        runtime, bundle, tmp_path):
    # conmon's `podman exec -t`: exec --process F --detach --tty --console-socket S ID.
    runtime("run", "-d", "-b", str(bundle("sleep", "100")), "t6")
    try:
        sock_path = tmp_path / "exec.sock"
        with listening_socket(sock_path) as listener:
            runtime("exec", "--detach", "--tty", "--console-socket", str(sock_path), "t6",
                    "sh", "-c", "tty; [ -t 0 ] && [ -t 2 ] && echo stdio-is-tty")
            name, fds, cmsgs = receive_master(listener)
        assert cmsgs == 1 and len(fds) == 1, (cmsgs, fds)
        try:
            lines = read_until_eof(fds[0]).decode().replace("\r\n", "\n").splitlines()
        finally:
            os.close(fds[0])
        assert name.startswith(b"/dev/pts/")
        assert lines == [name.decode(), "stdio-is-tty"]
    finally:
        runtime("delete", "--force", "t6")
        reap_children()


def test_terminal_without_console_socket_is_refused(runtime, bundle):
    result = runtime("create", "-b", str(bundle("true", tty=True)), "nt", check=False)
    assert result.returncode == 1
    assert "cannot allocate tty if" in result.stderr
    assert "will detach without setting console socket" in result.stderr
    assert not (runtime.root / "nt").exists()
    detached = runtime("run", "-d", "-b", str(bundle("true", tty=True)), "nt", check=False)
    assert detached.returncode == 1
    assert "will detach without setting console socket" in detached.stderr
    assert not (runtime.root / "nt").exists()


def test_console_socket_without_terminal_is_refused(runtime, bundle, tmp_path):
    sock_path = tmp_path / "c.sock"
    with listening_socket(sock_path):
        result = runtime("create", "--console-socket", str(sock_path), "-b",
                         str(bundle("true")), "ns", check=False)
    assert result.returncode == 1
    assert "cannot use console socket if" in result.stderr
    assert "will not detach or allocate tty" in result.stderr
    assert not (runtime.root / "ns").exists()


def test_console_socket_path_that_does_not_exist_fails_create_and_leaves_nothing(
        runtime, bundle, tmp_path):
    result = runtime("create", "--console-socket", str(tmp_path / "missing.sock"), "-b",
                     str(bundle("true", tty=True)), "nm", check=False)
    assert result.returncode == 1 and "console socket" in result.stderr
    assert not (runtime.root / "nm").exists()


# --- foreground run under the test's own pty ----------------------------------------------------

def run_on_pty(runtime, b: Path, cid: str, *, size: tuple[int, int] | None = None,
               timeout: float = 30, watch=None) -> tuple[int, bytes, list, list]:
    """`pyrunc run` with a fresh pty as its stdin/stdout/stderr and controlling terminal.

    Returns (exit status, everything written to the terminal, termios before, termios after).
    `watch(output, slave_fd, master_fd)` is called whenever output arrived while pyrunc runs.
    """
    master, slave = os.openpty()
    try:
        if size is not None:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
        before = termios.tcgetattr(slave)

        def make_controlling_tty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        proc = subprocess.Popen(runtime.argv("run", "-b", str(b), cid), stdin=slave, stdout=slave,
                                stderr=slave, start_new_session=True,
                                preexec_fn=make_controlling_tty)
        output = bytearray()
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"run did not finish; output {bytes(output)!r}"
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    output += os.read(master, 4096)
                except OSError:
                    break
                if watch is not None:
                    watch(bytes(output), slave, master)
        status = proc.wait(timeout=timeout)
        while select.select([master], [], [], 0.05)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        after = termios.tcgetattr(slave)
    finally:
        os.close(slave)
        os.close(master)
    return status, bytes(output), before, after


def test_foreground_run_on_a_terminal_shows_output_and_propagates_the_exit_code(runtime, bundle):
    b = bundle("sh", "-c", "tty; echo hello-from-the-container; exit 5", tty=True)
    status, output, _, _ = run_on_pty(runtime, b, "fg1")
    text = output.decode(errors="replace").replace("\r", "")
    assert status == 5, text
    # pyrunc's own stderr shares the terminal: leave out its warnings.
    lines = [line for line in text.splitlines() if not line.startswith("pyrunc: warning")]
    assert lines[0].startswith("/dev/pts/"), text
    assert lines[1:] == ["hello-from-the-container"], text
    assert not (runtime.root / "fg1").exists()


def test_foreground_run_puts_the_terminal_in_raw_mode_and_restores_it(runtime, bundle):
    b = bundle("sh", "-c", "echo started; sleep 1; echo done", tty=True)
    during = []

    def watch(output: bytes, slave: int, master: int) -> None:
        if b"started" in output and not during:
            during.append(termios.tcgetattr(slave))

    status, output, before, after = run_on_pty(runtime, b, "fg2", watch=watch)
    assert status == 0, output
    assert b"done" in output
    assert before[3] & termios.ICANON and before[3] & termios.ECHO
    assert during, output
    assert not during[0][3] & (termios.ICANON | termios.ECHO | termios.ISIG)
    assert after == before


def test_foreground_run_passes_ctrl_c_to_the_containers_terminal(runtime, bundle):
    # Raw mode on the caller's side: ^C is a byte for the container's pty, whose line discipline
    # turns it into SIGINT for the container's foreground process group.
    b = bundle("sh", "-c", "trap 'echo got-int; exit 9' INT; echo ready; "
                           "while true; do sleep 0.1; done", tty=True)
    sent = []

    def watch(output: bytes, slave: int, master: int) -> None:
        if b"ready" in output and not sent:
            os.write(master, b"\x03")
            sent.append(True)

    status, output, _, _ = run_on_pty(runtime, b, "fg4", watch=watch)
    assert sent, output
    assert b"got-int" in output
    assert status == 9, output


def test_foreground_run_gives_the_container_the_callers_window_size(runtime, bundle):
    b = bundle("stty", "size", tty=True)
    status, output, _, _ = run_on_pty(runtime, b, "fg3", size=(41, 123))
    assert status == 0, output
    assert output.decode().split()[-2:] == ["41", "123"]


def test_terminal_is_owned_by_a_non_root_process_user(runtime, bundle, tmp_path):
    # runc chowns the init's stdio (here the pty slave) to the process uid, so that the program
    # can reopen its own terminal by name (/dev/pts/N, /dev/console), not only via /dev/tty.
    def edit(config: dict) -> None:
        config["process"]["user"] = {"uid": 1000, "gid": 1000}

    b = bundle("sh", "-c", "t=$(tty); stat -c %u $t; stat -c %u /dev/console; "
                           "echo reopened >$t && echo ok", tty=True, edit=edit)
    _, master = create_with_console(runtime, b, "t6", tmp_path)
    try:
        runtime("start", "t6")
        out = read_until_eof(master).decode().replace("\r\n", "\n")
    finally:
        os.close(master)
    wait_stopped(runtime, "t6")
    runtime("delete", "t6")
    assert out.splitlines() == ["1000", "1000", "reopened", "ok"], out
