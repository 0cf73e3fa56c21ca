"""Tests for pyrunc.terminal: console-socket framing, pty allocation, and the foreground proxy.

No container is started. The "container's terminal" and the "caller's terminal" are pty pairs made
with os.openpty, because CI has no controlling terminal of its own.
"""

from __future__ import annotations

import array
import errno
import os
import select
import socket
import struct
import termios
import time
import traceback
import tty
from collections.abc import Callable, Iterator

import pytest

from pyrunc import terminal
from pyrunc.linux.consts import CLONE_NEWNS, MS_PRIVATE, MS_REC
from pyrunc.linux.syscalls import KernelError, mount, unshare

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


# --- helpers ---------------------------------------------------------------------------------------

def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        assert exc.errno == errno.EBADF
        return False
    return True


def _read_exactly(fd: int, size: int, timeout: float = 5.0) -> bytes:
    """Read `size` bytes from a blocking fd, failing the test instead of hanging."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < size:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {data!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data += os.read(fd, size - len(data))
    return data


def _pump_until(proxy: terminal.TerminalProxy, done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "proxy did not make progress"
        proxy.pump(0.05)


def _run_in_child(body: Callable[[], None]) -> int:
    """Run `body` in a forked child (for setsid/mount namespaces); return its exit status."""
    pid = os.fork()
    if pid == 0:
        code = 1
        report = os.dup(2)  # the body may replace fd 2
        try:
            body()
            code = 0
        except BaseException:  # noqa: BLE001 - report anything to the parent
            os.write(report, ("child failed:\n" + traceback.format_exc()).encode())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


# --- console socket: send / receive ---------------------------------------------------------------

def test_send_then_receive_master_over_socketpair(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    runtime_end, caller_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with caller_end:
        sock_fd = runtime_end.detach()
        terminal.send_console_master(sock_fd, master, "/dev/ptmx")
        assert not _is_open(sock_fd) and not _is_open(master), "runtime kept a copy"
        received = terminal.receive_console_master(caller_end, timeout=5)
    try:
        assert os.isatty(received)
        assert not os.get_inheritable(received)
        os.write(slave, b"ping")
        assert _read_exactly(received, 4) == b"ping"
    finally:
        os.close(received)


def test_message_framing_is_name_plus_exactly_one_fd(pty_pair: tuple[int, int]) -> None:
    master, _ = pty_pair
    runtime_end, caller_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with caller_end:
        terminal.send_console_master(runtime_end.detach(), master, "/dev/pts/7")
        int_size = struct.calcsize("i")
        data, ancdata, flags, _ = caller_end.recvmsg(4096, socket.CMSG_SPACE(8 * int_size))
        # The sender closed its end: the next read is EOF, so nothing else was sent.
        assert caller_end.recv(1) == b""
    assert data == b"/dev/pts/7"
    assert not flags & socket.MSG_CTRUNC
    assert len(ancdata) == 1
    level, kind, payload = ancdata[0]
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    assert len(payload) == int_size  # CMSG_LEN(sizeof(int)), as conmon and go-runc require
    fd = array.array("i", payload)[0]
    assert os.isatty(fd)
    os.close(fd)


def test_send_closes_fds_even_when_the_caller_is_gone(pty_pair: tuple[int, int]) -> None:
    master, _ = pty_pair
    runtime_end, caller_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    caller_end.close()
    sock_fd = runtime_end.detach()
    with pytest.raises(KernelError, match="send the console master.*EPIPE"):
        terminal.send_console_master(sock_fd, master, "/dev/ptmx")
    assert not _is_open(sock_fd) and not _is_open(master)


def test_send_rejects_an_empty_name(pty_pair: tuple[int, int]) -> None:
    master, _ = pty_pair
    runtime_end, caller_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with caller_end, pytest.raises(KernelError, match="invalid terminal name"):
        terminal.send_console_master(runtime_end.detach(), master, "")


def test_receive_rejects_two_fds_and_closes_them(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        a.sendmsg([b"/dev/ptmx"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master, slave]))])
        before = set(os.listdir("/proc/self/fd"))
        with pytest.raises(KernelError, match="exactly one fd, got 2"):
            terminal.receive_console_master(b, timeout=5)
        assert set(os.listdir("/proc/self/fd")) <= before | {str(master), str(slave)}


def test_receive_rejects_a_non_terminal_fd() -> None:
    r, w = os.pipe()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        socket.send_fds(a, [b"/dev/ptmx"], [r])
        with pytest.raises(KernelError, match="not a terminal"):
            terminal.receive_console_master(b, timeout=5)
    os.close(r)
    os.close(w)


def test_receive_reports_a_peer_that_closed_without_sending() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.close()
    with b, pytest.raises(KernelError, match="closed the socket before sending"):
        terminal.receive_console_master(b, timeout=5)


def test_receive_times_out() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b, pytest.raises(TimeoutError, match="receive the console master"):
        terminal.receive_console_master(b, timeout=0.05)


# --- console socket: connect ----------------------------------------------------------------------

def _listener(path: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    return server


def test_connect_console_socket_reaches_the_listener(tmp_path, pty_pair: tuple[int, int]) -> None:
    path = str(tmp_path / "console.sock")
    with _listener(path) as server:
        fd = terminal.connect_console_socket(path)
        assert not os.get_inheritable(fd)
        terminal.send_console_master(fd, pty_pair[0], "/dev/ptmx")
        conn, _ = server.accept()  # like the shim: accept only after the runtime is done
        with conn:
            received = terminal.receive_console_master(conn, timeout=5)
        assert os.isatty(received)
        os.close(received)


def test_connect_console_socket_with_a_path_longer_than_sun_path(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = str(deep / "console.sock")
    assert len(path) > 108
    monkeypatch.chdir(deep)  # bind(2) has the same limit: bind by a short relative name
    with _listener("console.sock") as server:
        fd = terminal.connect_console_socket(path)
        conn, _ = server.accept()
        conn.close()
        os.close(fd)


def test_connect_console_socket_missing_path(tmp_path) -> None:
    path = str(tmp_path / "nope.sock")
    with pytest.raises(KernelError) as info:
        terminal.connect_console_socket(path)
    assert str(info.value) == f"connect to console socket {path}: ENOENT (No such file or directory)"


def test_connect_console_socket_not_a_socket(tmp_path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(KernelError) as info:
        terminal.connect_console_socket(str(path))
    assert str(info.value) == f"connect to console socket {path}: ECONNREFUSED (Connection refused)"


def test_connect_console_socket_refuses_abstract_addresses() -> None:
    with pytest.raises(KernelError, match="abstract"):
        terminal.connect_console_socket("\0pyrunc-test")


# --- container side ---------------------------------------------------------------------------------

def test_create_container_pty_from_host_ptmx() -> None:
    master, slave, path = terminal.create_container_pty((24, 80))
    try:
        assert path.startswith("/dev/pts/")
        assert os.isatty(master) and os.isatty(slave)
        assert not os.get_inheritable(master) and not os.get_inheritable(slave)
        assert os.stat(path).st_rdev == os.fstat(slave).st_rdev
        assert terminal.get_window_size(slave) == (24, 80)
        tty.setraw(slave)
        os.write(master, b"in")
        assert _read_exactly(slave, 2) == b"in"
        os.write(slave, b"out")
        assert _read_exactly(master, 3) == b"out"
    finally:
        os.close(master)
        os.close(slave)


def test_create_container_pty_without_console_size_leaves_zero_size() -> None:
    master, slave, _ = terminal.create_container_pty(None)
    try:
        assert terminal.get_window_size(slave) == (0, 0)
    finally:
        os.close(master)
        os.close(slave)


def test_slave_path_fallback_opens_the_same_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_peer_ioctl(master: int, flags: int) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(terminal, "_slave_via_peer_ioctl", no_peer_ioctl)
    master, slave, path = terminal.create_container_pty((10, 20))
    try:
        assert os.stat(path).st_rdev == os.fstat(slave).st_rdev
        assert terminal.get_window_size(slave) == (10, 20)
    finally:
        os.close(master)
        os.close(slave)


def test_become_terminal_owner_makes_the_pty_stdio_and_controlling_tty(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    slave_name = os.ttyname(slave)

    def child() -> None:
        spare = os.dup(slave)  # > 2, so it must be closed afterwards
        terminal.become_terminal_owner(spare)
        assert not _is_open(spare)
        for fd in (0, 1, 2):
            assert os.ttyname(fd) == slave_name
        assert os.getsid(0) == os.getpid()
        assert os.tcgetpgrp(0) == os.getpgrp()
        # /dev/tty opens only for a process with a controlling terminal; writes reach our pty.
        fd = os.open("/dev/tty", os.O_RDWR)
        os.write(fd, b"via /dev/tty")
        os.close(fd)

    assert _run_in_child(child) == 0
    assert b"via /dev/tty" in _read_exactly(master, len("via /dev/tty"))


def test_become_terminal_owner_when_already_session_leader(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair

    def child() -> None:
        os.setsid()
        terminal.become_terminal_owner(os.dup(slave))
        assert os.tcgetpgrp(0) == os.getpgrp()

    assert _run_in_child(child) == 0


@needs_root
def test_bind_console_puts_the_slave_on_the_target(tmp_path) -> None:
    master, slave, path = terminal.create_container_pty(None)
    target = str(tmp_path / "console")

    def child() -> None:
        unshare(CLONE_NEWNS)
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        terminal.bind_console(path, target)
        assert os.stat(target).st_rdev == os.fstat(slave).st_rdev

    try:
        assert _run_in_child(child) == 0
        assert os.path.isfile(target), "the placeholder file was created outside the child's mount"
    finally:
        os.close(master)
        os.close(slave)


@needs_root
def test_bind_console_replaces_a_symlink(tmp_path) -> None:
    master, slave, path = terminal.create_container_pty(None)
    decoy = tmp_path / "decoy"
    decoy.write_text("host file")
    target = tmp_path / "console"
    target.symlink_to(decoy)

    def child() -> None:
        unshare(CLONE_NEWNS)
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        terminal.bind_console(path, str(target))
        assert os.stat(target).st_rdev == os.fstat(slave).st_rdev
        assert decoy.read_text() == "host file"
        assert not os.path.ismount(decoy)

    try:
        assert _run_in_child(child) == 0
    finally:
        os.close(master)
        os.close(slave)


def test_clear_onlcr_applies_to_the_slave(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    assert termios.tcgetattr(slave)[1] & termios.ONLCR
    terminal.clear_onlcr(master)
    assert not termios.tcgetattr(slave)[1] & termios.ONLCR
    os.write(slave, b"a\n")
    assert _read_exactly(master, 2) == b"a\n"


def test_chown_terminal(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    if os.geteuid() != 0:
        pytest.skip("needs root")
    group = os.fstat(slave).st_gid
    terminal.chown_terminal(slave, 1234)
    assert (os.fstat(slave).st_uid, os.fstat(slave).st_gid) == (1234, group)


# --- the foreground proxy ---------------------------------------------------------------------------

class Terminals:
    """A caller's terminal (user side = `user`, pyrunc's stdio = `caller`) and a container pty."""

    def __init__(self) -> None:
        self.user, self.caller = os.openpty()
        self.container_master, self.container = os.openpty()
        tty.setraw(self.container)  # no echo / line buffering: bytes pass unchanged

    def close(self) -> None:
        for fd in (self.user, self.caller, self.container_master, self.container):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def terms() -> Iterator[Terminals]:
    t = Terminals()
    yield t
    t.close()


def test_proxy_copies_both_ways(terms: Terminals) -> None:
    with terminal.TerminalProxy(terms.container_master, terms.caller, terms.caller) as proxy:
        os.write(terms.user, b"typed\x03")  # ^C must arrive as a byte, not as SIGINT here
        got = b""

        def typed_arrived() -> bool:
            nonlocal got
            if select.select([terms.container], [], [], 0)[0]:
                got += os.read(terms.container, 100)
            return got == b"typed\x03"

        _pump_until(proxy, typed_arrived)

        os.write(terms.container, b"output\n")
        out = b""

        def output_arrived() -> bool:
            nonlocal out
            if select.select([terms.user], [], [], 0)[0]:
                out += os.read(terms.user, 100)
            return out == b"output\n"

        _pump_until(proxy, output_arrived)


def test_proxy_raw_mode_is_set_then_restored(terms: Terminals) -> None:
    before = termios.tcgetattr(terms.caller)
    proxy = terminal.TerminalProxy(terms.container_master, terms.caller, terms.caller)
    during = termios.tcgetattr(terms.caller)
    assert not during[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
    proxy.close()
    assert termios.tcgetattr(terms.caller) == before
    proxy.close()  # idempotent
    assert not _is_open(terms.container_master)


def test_proxy_restores_the_terminal_even_after_input_eof(terms: Terminals) -> None:
    before = termios.tcgetattr(terms.caller)
    proxy = terminal.TerminalProxy(terms.container_master, terms.caller, terms.caller)
    proxy.stdin_fd = None  # as after EOF/hang-up on stdin
    proxy.close()
    assert termios.tcgetattr(terms.caller) == before


def test_proxy_sets_the_size_at_start_and_on_resize(terms: Terminals) -> None:
    terminal.set_window_size(terms.user, 30, 100)
    with terminal.TerminalProxy(terms.container_master, terms.caller, terms.caller) as proxy:
        assert terminal.get_window_size(terms.container) == (30, 100)
        terminal.set_window_size(terms.user, 50, 132)  # the user resized the window
        proxy.resize()
        assert terminal.get_window_size(terms.container) == (50, 132)


def test_proxy_clears_onlcr_unless_asked_not_to() -> None:
    for keep, expected in ((False, 0), (True, termios.ONLCR)):
        master, slave = os.openpty()
        proxy = terminal.TerminalProxy(master, os.open(os.devnull, os.O_RDONLY), 1, keep_onlcr=keep)
        assert termios.tcgetattr(slave)[1] & termios.ONLCR == expected
        os.close(proxy._caller_fds[0])
        proxy.close()
        os.close(slave)


def test_proxy_with_pipes_and_eof_on_stdin(terms: Terminals) -> None:
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        proxy = terminal.TerminalProxy(terms.container_master, in_r, out_w)
        assert proxy._saved_termios is None  # no raw mode on a pipe
        os.write(in_w, b"abc")
        os.close(in_w)
        got = b""

        def input_done() -> bool:
            nonlocal got
            if select.select([terms.container], [], [], 0)[0]:
                got += os.read(terms.container, 100)
            return got == b"abc" and proxy.stdin_fd is None

        _pump_until(proxy, input_done)
        assert proxy.pump(0.01)  # EOF on stdin does not end the session

        os.write(terms.container, b"xyz")
        proxy.pump(0.2)
        assert os.read(out_r, 100) == b"xyz"
        proxy.close()
    finally:
        for fd in (in_r, out_r, out_w):
            os.close(fd)


def test_proxy_pump_reports_eof_after_copying_the_rest(terms: Terminals) -> None:
    out_r, out_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        proxy = terminal.TerminalProxy(terms.container_master, devnull, out_w)
        os.write(terms.container, b"last words")
        os.close(terms.container)  # the container's last slave fd: the master now reads EIO
        deadline = time.monotonic() + 5
        while proxy.pump(0.05):
            assert time.monotonic() < deadline
        assert os.read(out_r, 100) == b"last words"
        assert proxy.fds_to_watch() == {}
        proxy.close()
    finally:
        for fd in (out_r, out_w, devnull):
            os.close(fd)


def test_proxy_drain_copies_buffered_output(terms: Terminals) -> None:
    out_r, out_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        proxy = terminal.TerminalProxy(terms.container_master, devnull, out_w)
        os.write(terms.container, b"tail")
        start = time.monotonic()
        proxy.drain(timeout=0.1)  # slave still open (a daemon holds it): stop after the timeout
        assert time.monotonic() - start < 2
        assert os.read(out_r, 100) == b"tail"
        os.write(terms.container, b"more")
        os.close(terms.container)
        proxy.drain(timeout=5)  # returns at EIO, not after 5 s
        assert os.read(out_r, 100) == b"more"
        proxy.close()
    finally:
        for fd in (out_r, out_w, devnull):
            os.close(fd)


def test_proxy_survives_a_closed_stdout(terms: Terminals) -> None:
    out_r, out_w = os.pipe()
    os.close(out_r)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        proxy = terminal.TerminalProxy(terms.container_master, devnull, out_w)
        os.write(terms.container, b"nobody reads this")
        proxy.pump(0.5)
        assert proxy.stdout_fd is None
        assert proxy.pump(0.01)  # still draining the pty so the container never blocks
        proxy.close()
    finally:
        os.close(out_w)
        os.close(devnull)


def test_proxy_backpressure_keeps_output_flowing(terms: Terminals) -> None:
    """Input the container does not read is queued, and output still gets through meanwhile."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        tty.setraw(terms.container)
        proxy = terminal.TerminalProxy(terms.container_master, in_r, out_w)
        chunk = b"x" * 65536
        os.set_blocking(in_w, False)
        for _ in range(4):
            try:
                os.write(in_w, chunk)
            except BlockingIOError:
                break
        for _ in range(40):
            proxy.pump(0.01)
        assert proxy._to_master, "the slave's input queue should be full"
        os.write(terms.container, b"still alive")
        proxy.pump(0.2)
        assert os.read(out_r, 100) == b"still alive"
        proxy.close()
    finally:
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)


def test_proxy_drain_gives_up_on_a_writer_that_never_stops(terms: Terminals) -> None:
    out_r, out_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    pid = os.fork()
    if pid == 0:  # a daemon left in the container, writing forever
        try:
            while True:
                os.write(terms.container, b"spam" * 256)
        finally:
            os._exit(0)
    try:
        proxy = terminal.TerminalProxy(terms.container_master, devnull, out_w)
        proxy.stdout_fd = None  # discard: the test only measures time
        start = time.monotonic()
        proxy.drain(timeout=1, limit=0.3)
        assert time.monotonic() - start < 1.5
        proxy.close()
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        for fd in (out_r, out_w, devnull):
            os.close(fd)


def test_whole_sequence_with_a_child_process() -> None:
    """The order the runtime uses, minus the container: pty in the child, master to the parent."""
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    out_r, out_w = os.pipe()
    go_r, go_w = os.pipe()  # plays the exec fifo: the child runs only once the proxy is set up
    devnull = os.open(os.devnull, os.O_RDONLY)
    pid = os.fork()
    if pid == 0:
        try:
            parent_end.close()
            os.close(go_w)
            master, slave, path = terminal.create_container_pty((12, 34))
            terminal.become_terminal_owner(slave)
            terminal.send_console_master(child_end.detach(), master, path)
            os.read(go_r, 1)
            os.execvp("sh", ["sh", "-c", 'echo "hello"; tty; stty size'])
        finally:
            os._exit(127)
    child_end.close()
    os.close(go_r)
    try:
        with parent_end:
            master = terminal.receive_console_master(parent_end, timeout=5)
        with terminal.TerminalProxy(master, devnull, out_w) as proxy:
            os.close(go_w)  # "start": ONLCR is already cleared
            deadline = time.monotonic() + 10
            while proxy.pump(0.05):
                assert time.monotonic() < deadline
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        lines = os.read(out_r, 4096).split(b"\n")
        assert lines[0] == b"hello"  # ONLCR cleared: no "\r"
        assert lines[1].startswith(b"/dev/pts/")
        assert lines[2] == b"12 34"
    finally:
        for fd in (out_r, out_w, devnull, go_w):
            try:
                os.close(fd)
            except OSError:
                pass  # go_w is normally closed already
