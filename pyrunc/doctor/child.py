"""Run a probe in a forked, throw-away child and learn how it ended.

A probe that unshares or mounts changes the process that runs it; in a child that change dies
with the child. The child reports over a pipe (a line of text) and through its exit status (0, or
the errno of the step that failed); the parent always reaps it. An alarm bounds every child, so a
probe that blocks cannot hang the report.
"""

from __future__ import annotations

import errno
import os
import signal
from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

#: Seconds a probe child may run before SIGALRM ends it.
CHILD_TIMEOUT = 5

_OTHER_FAILURE = 255


@dataclass
class Outcome:
    """How a child probe ended: ok, or the errno and the step that failed."""

    ok: bool
    text: str
    errno: int = 0
    signal: int = 0

    @property
    def errno_name(self) -> str:
        return errno.errorcode.get(self.errno, f"errno {self.errno}")

    def failure(self) -> str:
        """`<step>: <ERRNO>` (or how the child died), for a 'does not' line."""
        if self.signal:
            return f"{self.text or 'probe'}: killed by signal {signal.Signals(self.signal).name}"
        if self.errno:
            return f"{self.text}: {self.errno_name} ({os.strerror(self.errno)})"
        return self.text or "probe failed"


def in_child(probe: Callable[[], str]) -> Outcome:
    """Fork; the child runs `probe()` and exits. Returns the child's report.

    `probe` returns a line for the report, or raises: an OSError becomes its errno (and its
    `step`, when it is a KernelError, or its str() as the text), anything else exit status 255.
    """
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = _OTHER_FAILURE
        try:
            os.close(read_fd)
            signal.alarm(CHILD_TIMEOUT)
            try:
                text, status = probe(), 0
            except OSError as exc:
                text = getattr(exc, "step", None) or \
                    (f"{exc.filename}" if exc.filename else type(exc).__name__)
                status = exc.errno if exc.errno and 0 < exc.errno < _OTHER_FAILURE else \
                    _OTHER_FAILURE
            except BaseException as exc:  # noqa: BLE001 - the child must reach os._exit
                text = f"{type(exc).__name__}: {exc}"
            os.write(write_fd, text.encode(errors="replace")[:4000])
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks = []
    try:
        while chunk := os.read(read_fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        _, wait_status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    if os.WIFSIGNALED(wait_status):
        return Outcome(False, text, signal=os.WTERMSIG(wait_status))
    code = os.waitstatus_to_exitcode(wait_status)
    if code == 0:
        return Outcome(True, text)
    return Outcome(False, text, errno=code if code != _OTHER_FAILURE else 0)
