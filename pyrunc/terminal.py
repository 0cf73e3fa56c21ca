"""Container terminals: the pty inside the container, the console socket, and the foreground proxy.

When `process.terminal` is true the container gets a pseudo-terminal of its own. The pair must be
allocated *inside* the container, after pivot_root, from the container's own devpts instance
(`/dev/ptmx`), so that the slave's name (`/dev/pts/N`) means something to the processes that see it.
The slave becomes the init's stdio, controlling terminal and `/dev/console`; the master leaves the
container at once:

* detached (`create`, `run -d`, `exec -d`): over `--console-socket PATH` to the caller (containerd's
  shim, conmon), as one `sendmsg` carrying the master's name and exactly one `SCM_RIGHTS` fd;
* foreground (`run`, `exec` without `-d`): over one end of a socketpair to pyrunc itself, which then
  copies bytes between the caller's terminal and the master (`TerminalProxy`).

Once sent, no process of the runtime may keep a copy of the master: the caller detects the end of
the container's output by the master hitting EIO, which only happens when every slave fd is closed,
and conmon/go-runc assume they hold the only master reference.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import select
import socket
import stat
import struct
import termios
import time
import tty

from pyrunc.linux import mountapi
from pyrunc.linux.consts import MS_BIND
from pyrunc.linux.procfs import PROC_SUPER_MAGIC, fs_type
from pyrunc.linux.syscalls import (
    TIOCGPTN,
    TIOCGPTPEER,
    TIOCGWINSZ,
    TIOCSCTTY,
    TIOCSPTLCK,
    TIOCSWINSZ,
    KernelError,
    describe_oserror,
    mount,
    winsize_bytes,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# sun_path is 108 bytes including the terminating NUL.
_SUN_PATH_MAX = 107
# Receivers (go-runc, conmon) read the name into a 4 KiB buffer.
_NAME_MAX = 4096
_INT_SIZE = struct.calcsize("i")
_READ_CHUNK = 64 * 1024


# --- runtime side: the console socket ------------------------------------------------------------

def connect_console_socket(path: str) -> int:
    """Connect to the caller's listening `--console-socket` and return the connected fd.

    Done by the runtime *before* forking the init, so that a wrong path fails `create` with a clear
    error rather than deep inside the container, and so that the init can reach a socket whose path
    its own mount namespace no longer shows. The fd is close-on-exec: the init uses it before its
    execve and `send_console_master` closes it. The caller should pass a path made absolute against
    its own cwd (create chdirs into the bundle).

    Paths longer than sun_path allows are reached through the directory's /proc/self/fd entry.
    """
    step = f"connect to console socket {path}"
    if not path or path.startswith("\0"):
        raise KernelError(errno.EINVAL, step + " (abstract socket addresses are not supported)",
                          path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        _connect_unix(sock, path)
    except OSError as exc:
        sock.close()
        raise KernelError(exc.errno or errno.EINVAL, step, path) from None
    return sock.detach()


def _connect_unix(sock: socket.socket, path: str) -> None:
    """connect(2) to a filesystem socket, even one whose path is too long for sun_path."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        sock.connect(path)
        return
    directory, name = os.path.split(path)
    dir_fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        short = f"/proc/self/fd/{dir_fd}/{name}"
        if len(os.fsencode(short)) > _SUN_PATH_MAX:
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path)
        sock.connect(short)
    finally:
        os.close(dir_fd)


def send_console_master(sock_fd: int, master_fd: int, name: str) -> None:
    """Send the pty master to the caller, then close both the socket and the master.

    The framing is what every caller checks: one `sendmsg` whose data is `name` (non-empty) and
    whose ancillary data is one `SCM_RIGHTS` message holding exactly one fd. Both fds are closed
    even on failure, because a master left open in the runtime would keep the caller from ever
    seeing EOF.
    No acknowledgement is awaited: the caller accepts only after create/exec has returned.
    """
    step = "send the console master over the console socket"
    data = os.fsencode(name)
    try:
        if not data or len(data) >= _NAME_MAX:
            raise KernelError(errno.EINVAL, f"{step}: invalid terminal name {name!r}")
        fds = array.array("i", [master_fd])
        with socket.socket(fileno=os.dup(sock_fd)) as sock:
            try:
                # MSG_NOSIGNAL: a caller that went away must be an error, not a SIGPIPE.
                sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)],
                                   socket.MSG_NOSIGNAL)
                while sent < len(data):  # the fd travelled with the first byte
                    sent += sock.send(data[sent:], socket.MSG_NOSIGNAL)
            except OSError as exc:
                raise describe_oserror(exc, step) from None
    finally:
        _close_quietly(sock_fd)
        _close_quietly(master_fd)


def receive_console_master(sock: socket.socket, timeout: float | None = None) -> int:
    """Receive a pty master sent with `send_console_master` (foreground `run`/`exec`).

    Enforces the same framing the external callers enforce, so that a framing bug shows up in
    pyrunc's own tests and not only under containerd. The fd arrives close-on-exec. Raises
    TimeoutError after `timeout` seconds, and KernelError if the peer closed without sending
    (the init died before it set up the terminal) or sent anything but exactly one fd.
    """
    step = "receive the console master"
    sock.settimeout(timeout)
    try:
        data, ancdata, flags, _ = sock.recvmsg(_NAME_MAX, socket.CMSG_SPACE(4 * _INT_SIZE),
                                               socket.MSG_CMSG_CLOEXEC)
    except TimeoutError:
        raise TimeoutError(f"{step}: timed out after {timeout} s") from None
    except OSError as exc:
        raise describe_oserror(exc, step) from None
    fds = _fds_from_ancillary(ancdata)
    problem = _framing_problem(data, fds, flags)
    if problem:
        for fd in fds:
            _close_quietly(fd)
        raise KernelError(errno.EBADMSG, f"{step}: {problem}")
    return fds[0]


def _fds_from_ancillary(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """Every fd carried by SCM_RIGHTS messages (so that unexpected extras can be closed)."""
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % _INT_SIZE
            fds.extend(array.array("i", payload[:usable]))
    return fds


def _framing_problem(data: bytes, fds: list[int], flags: int) -> str | None:
    """Why a console message is unacceptable, or None when it is one name plus one tty fd."""
    if not data and not fds:
        return "the container closed the socket before sending its terminal"
    if flags & socket.MSG_CTRUNC:
        return "ancillary data was truncated (too many fds)"
    if len(fds) != 1:
        return f"expected exactly one fd, got {len(fds)}"
    if not data:
        return "the terminal name is empty"
    if not os.isatty(fds[0]):
        return "the received fd is not a terminal"
    return None


# --- container side: the pty, /dev/console, the controlling terminal ---------------------------

#: A pty master opened before chroot by `preopen_ptmx` (a container without a mount namespace).
_preopened_master: int | None = None


def preopen_ptmx() -> None:
    """Open a pty master from the host's /dev/ptmx now, for `create_container_pty` to use later.

    A container without a mount namespace of its own is only chrooted: nothing is mounted in
    it (that would change the host), so its rootfs has no devpts and no /dev/ptmx. runc fails
    there (`open /dev/ptmx: no such file or directory`); pyrunc allocates the pair from the
    devpts that the container shares with the host anyway, before the chroot hides it.
    """
    global _preopened_master
    try:
        _preopened_master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise describe_oserror(exc, "open the host's /dev/ptmx (no mount namespace)") from None


def create_container_pty(console_size: tuple[int, int] | None) -> tuple[int, int, str]:
    """Allocate a pty from the devpts at /dev/ptmx; return (master, slave, slave path).

    Must run after pivot_root so the pair comes from the container's devpts (`newinstance`). The
    master is opened O_NOCTTY so that the init does not acquire it as its controlling terminal.
    `console_size` is (height, width) = (rows, cols), applied before the master is handed out so
    the first program already sees the right size. Both fds are close-on-exec.
    """
    global _preopened_master
    flags = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
    if _preopened_master is not None:
        master, _preopened_master = _preopened_master, None
    else:
        try:
            master = os.open("/dev/ptmx", flags)
        except OSError as exc:
            raise describe_oserror(exc, "open /dev/ptmx") from None
    try:
        _ioctl(master, TIOCSPTLCK, struct.pack("i", 0), "unlock the pty slave")
        number = struct.unpack("I", _ioctl_read(master, TIOCGPTN, 4, "get the pty number"))[0]
        slave_path = f"/dev/pts/{number}"
        slave = _open_slave(master, slave_path, flags)
        if console_size is not None:
            set_window_size(master, *console_size)
    except BaseException:
        os.close(master)
        raise
    return master, slave, slave_path


def _open_slave(master: int, slave_path: str, flags: int) -> int:
    """Open the slave, preferring TIOCGPTPEER (Linux 4.13).

    TIOCGPTPEER opens the peer without a path lookup, so it cannot be tricked by whatever the
    container's /dev/pts holds; the path is the fallback for older kernels.
    """
    try:
        return _slave_via_peer_ioctl(master, flags)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTTY):  # kernels without TIOCGPTPEER
            raise describe_oserror(exc, "open the pty slave") from None
    return _slave_via_path(slave_path, flags)


def _slave_via_peer_ioctl(master: int, flags: int) -> int:
    return fcntl.ioctl(master, TIOCGPTPEER, flags)


def _slave_via_path(slave_path: str, flags: int) -> int:
    try:
        return os.open(slave_path, flags)
    except OSError as exc:
        raise describe_oserror(exc, f"open the pty slave {slave_path}") from None


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ on a pty (either side); the kernel sends SIGWINCH to the foreground group."""
    _ioctl(fd, TIOCSWINSZ, winsize_bytes(rows, cols), f"set the terminal size to {rows}x{cols}")


def get_window_size(fd: int) -> tuple[int, int]:
    """TIOCGWINSZ: (rows, cols) of a terminal."""
    rows, cols, _, _ = struct.unpack("HHHH",
                                     _ioctl_read(fd, TIOCGWINSZ, 8, "get the terminal size"))
    return rows, cols


def bind_console(slave_path: str, target: str = "/dev/console", *,
                 slave_fd: int | None = None) -> None:
    """Bind-mount the pty slave over /dev/console so the container's console is its terminal.

    A bind mount needs an existing target, so an empty file is created when there is none. A symlink
    at the target is replaced: mount(2) follows symlinks, and one planted in the rootfs must not
    redirect the bind (the CVE-2025-52565 class). The bind goes from the slave's fd onto the
    target's fd (open_tree + move_mount): not through /proc/self/fd/N either, since the
    container's /proc may be the image's own files.
    """
    try:
        if os.path.islink(target):
            os.unlink(target)
        if not os.path.lexists(target):
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
            os.close(os.open(target, flags, 0o600))
    except OSError as exc:
        raise describe_oserror(exc, f"create {target}") from None
    try:
        fd = os.open(target, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise describe_oserror(exc, f"open {target}") from None
    step = f"bind {slave_path} on {target}"
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode)):
            raise KernelError(errno.EINVAL, f"bind the console: {target} is neither a file nor "
                              "a character device", target)
        if slave_fd is not None:
            try:
                mountapi.bind_fd_onto_fd(slave_fd, fd, step)
                return
            except KernelError as exc:
                if exc.errno != errno.ENOSYS:
                    raise
        # Kernels before 5.2: through the fd's magic link, once /proc is known to be procfs.
        if not _is_procfs_dir("/proc/self/fd"):
            raise KernelError(errno.EXDEV, f"{step}: /proc in the container is not procfs "
                              "and the kernel has no open_tree", target)
        mount(slave_path, f"/proc/self/fd/{fd}", None, MS_BIND, step=step)
    finally:
        os.close(fd)


def _is_procfs_dir(path: str) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fs_type(fd) == PROC_SUPER_MAGIC
    finally:
        os.close(fd)


def chown_terminal(slave_fd: int, uid: int, gid: int = -1) -> None:
    """Give the slave to the process user, so that a non-root container process owns its tty.

    gid -1 keeps the group devpts assigned (normally `tty`, from the `gid=5` mount option).
    """
    try:
        os.fchown(slave_fd, uid, gid)
    except OSError as exc:
        raise describe_oserror(exc, f"chown the terminal to {uid}:{gid}") from None


def become_terminal_owner(slave_fd: int) -> None:
    """Make the slave this process's controlling terminal and its stdin/stdout/stderr.

    setsid() first because TIOCSCTTY only works for a session leader without a terminal; EPERM means
    the process already leads a process group (normally: already a session leader) and is ignored.
    """
    try:
        os.setsid()
    except PermissionError:
        pass
    _ioctl(slave_fd, TIOCSCTTY, 0, "make the pty the controlling terminal")
    try:
        for target in (0, 1, 2):
            os.dup2(slave_fd, target)
    except OSError as exc:
        raise describe_oserror(exc, "make the pty the standard streams") from None
    if slave_fd > 2:
        os.close(slave_fd)


def clear_onlcr(fd: int) -> None:
    """Stop the pty from turning "\\n" into "\\r\\n" in the container's output.

    Foreground `run` does this so that programs reading pyrunc's stdout see the container's bytes
    unchanged (runc behaves the same). Termios on a master applies to its slave.
    """
    try:
        attrs = termios.tcgetattr(fd)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except (termios.error, OSError) as exc:
        raise KernelError(_errno_of(exc), "clear ONLCR on the terminal") from None


# --- foreground: copying between the caller's terminal and the master --------------------------

class TerminalProxy:
    """Connect the caller's stdin/stdout to a container's pty master for foreground `run`/`exec`.

    The caller's terminal (when stdin is a tty) is put in raw mode so that every key, including ^C
    and ^Z, reaches the container's terminal, whose own line discipline then does echo, line editing
    and signal generation. Pipes work too: no raw mode, and EOF on stdin only stops input.

    The owner runs the event loop, either by calling `pump(timeout)` repeatedly, or by polling
    `fds_to_watch()` itself and passing each ready fd to `handle_ready(fd, events)`. Call `resize()`
    on SIGWINCH, `drain()` after the container exited, and always `close()` (or use `with`), which
    restores the caller's terminal.

    The proxy owns `master_fd` and closes it in `close()`.
    """

    def __init__(self, master_fd: int, stdin_fd: int = 0, stdout_fd: int = 1, *,
                 raw: bool = True, keep_onlcr: bool = False) -> None:
        self.master_fd = master_fd
        self._caller_fds = (stdin_fd, stdout_fd)  # for raw mode and window size, even after EOF
        self.stdin_fd: int | None = stdin_fd  # None once stdin hit EOF
        self.stdout_fd: int | None = stdout_fd  # None once the reader of stdout went away
        self._to_master = bytearray()
        self._saved_termios: list[Any] | None = None
        self._master_open = True
        self._closed = False
        os.set_blocking(master_fd, False)  # our own open file: a full slave must not stall output
        if not keep_onlcr:
            clear_onlcr(master_fd)
        if raw and os.isatty(stdin_fd):
            self._saved_termios = termios.tcgetattr(stdin_fd)
            tty.setraw(stdin_fd, termios.TCSANOW)  # TCSANOW: keep keys typed ahead
        self.resize()

    # -- window size --

    def _size_source(self) -> int | None:
        for fd in self._caller_fds:
            try:
                if os.isatty(fd):
                    return fd
            except OSError:
                continue
        return None

    def resize(self) -> None:
        """Copy the caller's window size to the container's terminal (call on SIGWINCH)."""
        source = self._size_source()
        if source is None or not self._master_open:
            return
        try:
            set_window_size(self.master_fd, *get_window_size(source))
        except OSError:
            pass  # the caller's terminal or the container went away; nothing to resize

    # -- event loop interface --

    def fds_to_watch(self) -> dict[int, int]:
        """fd -> poll events the proxy wants; empty once the master is done."""
        watch: dict[int, int] = {}
        if not self._master_open:
            return watch
        master_events = select.POLLIN
        if self._to_master:
            master_events |= select.POLLOUT  # input is queued: wait until the slave reads
        elif self.stdin_fd is not None:
            watch[self.stdin_fd] = select.POLLIN  # read input only when the last is delivered
        watch[self.master_fd] = master_events
        return watch

    def handle_ready(self, fd: int, events: int) -> bool:
        """Act on poll events for one fd; False once the master is finished (EOF/EIO)."""
        if fd == self.master_fd:
            if events & select.POLLOUT:
                self._flush_input()
            if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                self._copy_output()
        elif fd == self.stdin_fd and events & (select.POLLIN | select.POLLHUP | select.POLLERR):
            self._read_input()
        return self._master_open

    def pump(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds and copy what is ready; False once the master hit
        EOF/EIO."""
        watch = self.fds_to_watch()
        if not watch:
            return False
        poller = select.poll()
        for fd, events in watch.items():
            poller.register(fd, events)
        for fd, events in poller.poll(max(0, int(timeout * 1000))):
            if fd in self.fds_to_watch():
                self.handle_ready(fd, events)
        return self._master_open

    def drain(self, timeout: float = 0.2, limit: float = 5.0) -> None:
        """Copy the output still buffered in the pty after the container's process exited.

        Stops at EOF/EIO, when nothing arrived for `timeout` seconds, or after `limit` seconds in
        all: a daemon left in the container may hold the slave open, or keep writing, forever.
        What is left after an exit is at most the pty's buffer, so the limit cuts nothing real.
        """
        deadline = time.monotonic() + limit
        poller = select.poll()
        while self._master_open and time.monotonic() < deadline:
            poller.register(self.master_fd, select.POLLIN)
            ready = poller.poll(max(0, int(timeout * 1000)))
            poller.unregister(self.master_fd)
            if not ready:
                return
            self._copy_output()

    def close(self) -> None:
        """Restore the caller's terminal and close the master (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._saved_termios is not None:
            try:
                termios.tcsetattr(self._caller_fds[0], termios.TCSADRAIN, self._saved_termios)
            except (termios.error, OSError):
                pass
        self._master_open = False
        _close_quietly(self.master_fd)

    def __enter__(self) -> TerminalProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- copying --

    def _read_input(self) -> None:
        assert self.stdin_fd is not None
        try:
            data = os.read(self.stdin_fd, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            # EOF on stdin only stops input: the container keeps running and its output flows.
            self.stdin_fd = None
            return
        self._to_master += data
        self._flush_input()

    def _flush_input(self) -> None:
        while self._to_master and self._master_open:
            try:
                written = os.write(self.master_fd, self._to_master)
            except BlockingIOError:
                return
            except OSError:
                self._to_master.clear()  # the container's terminal is gone; input has nowhere to go
                return
            del self._to_master[:written]

    def _copy_output(self) -> None:
        """Read what the master has and write it out; EOF/EIO means every slave fd was closed."""
        while self._master_open:
            try:
                data = os.read(self.master_fd, _READ_CHUNK)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise describe_oserror(exc, "read from the container's terminal") from None
                data = b""
            if not data:
                self._master_open = False
                return
            self._write_output(data)

    def _write_output(self, data: bytes) -> None:
        """Write all of `data` to stdout; a closed stdout discards output but keeps the pty
        drained."""
        if self.stdout_fd is None:
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.stdout_fd, view):]
            except BlockingIOError:
                select.select([], [self.stdout_fd], [])
            except OSError:
                self.stdout_fd = None  # EPIPE etc.: the reader left
                return


# --- helpers --------------------------------------------------------------------------------------

def _ioctl(fd: int, request: int, arg: bytes | int, step: str) -> bytes | int:
    try:
        return fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise describe_oserror(exc, step) from None


def _ioctl_read(fd: int, request: int, size: int, step: str) -> bytes:
    """An ioctl that fills a buffer of `size` bytes; returns what the kernel wrote there."""
    try:
        return fcntl.ioctl(fd, request, bytes(size))
    except OSError as exc:
        raise describe_oserror(exc, step) from None


def _errno_of(exc: BaseException) -> int:
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    if exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return errno.EIO


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
