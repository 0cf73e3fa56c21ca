"""The runtime <-> child channel: whole messages of any size, and fds passed beside them."""

from __future__ import annotations

import os

import pytest

from pyrunc.process import sync


def test_a_message_larger_than_64_kib_arrives_whole():
    a, b = sync.SyncChannel.pair()
    try:
        big = "x" * (300 * 1024)
        a.send("hooks-done", state={"annotations": {"k": big}})
        assert b.recv()["state"]["annotations"]["k"] == big
    finally:
        a.close()
        b.close()


def test_fds_travel_with_a_message_as_new_descriptors():
    a, b = sync.SyncChannel.pair()
    r, w = os.pipe()
    try:
        a.send("console", fds=[w], path="/dev/pts/0")
        msg = b.recv()
        assert msg["path"] == "/dev/pts/0" and len(msg["fds"]) == 1
        received = msg["fds"][0]
        assert received != w
        os.write(received, b"through the copy")
        os.close(received)
        os.close(w)
        assert os.read(r, 100) == b"through the copy"
    finally:
        os.close(r)
        a.close()
        b.close()


def test_eof_is_channel_closed():
    a, b = sync.SyncChannel.pair()
    a.close()
    try:
        b.recv()
    except sync.ChannelClosed:
        pass
    else:
        raise AssertionError("no ChannelClosed at EOF")
    finally:
        b.close()


class _MoveOfAnExitedChild:
    """A cgroup move of a child that has exited fails as the kernel's does (ESRCH)."""

    def add_process(self, pid: int) -> None:
        os.waitpid(pid, 0)
        raise ProcessLookupError(3, "No such process")


class _NoCgroup:
    def add_process(self, pid: int) -> None:
        os.waitpid(pid, 0)


def _child_that_fails(child: sync.SyncChannel, parent: sync.SyncChannel) -> int:
    pid = os.fork()
    if pid == 0:
        parent.close()
        child.send(sync.ERROR, message="seccomp: libseccomp not found")
        os._exit(1)
    child.close()
    return pid


@pytest.mark.parametrize("cgroups", [_MoveOfAnExitedChild(), _NoCgroup()])
def test_a_child_that_fails_during_the_cgroup_move_is_heard(cgroups):
    """The move, or the CGROUP_JOINED after it, meets a dead child: its ERROR is the reason."""
    parent, child = sync.SyncChannel.pair()
    pid = _child_that_fails(child, parent)
    try:
        reason = sync.move_into_cgroup(parent, cgroups, pid)
        if reason is None:   # the move itself worked: the error is the next message
            assert parent.recv()["message"] == "seccomp: libseccomp not found"
        else:
            assert reason == "seccomp: libseccomp not found"
    finally:
        parent.close()


def test_a_move_that_fails_for_a_live_child_raises_the_kernels_error():
    parent, child = sync.SyncChannel.pair()

    class Refused:
        def add_process(self, pid: int) -> None:
            raise PermissionError(13, "Permission denied")

    try:
        with pytest.raises(PermissionError):
            sync.move_into_cgroup(parent, Refused(), os.getpid())
    finally:
        parent.close()
        child.close()


def test_a_signal_during_the_wait_for_a_message_is_not_an_error():
    """A foreground `run` holds signals for the container while it waits on the channel: the
    handler runs and the wait goes on (no EINTR)."""
    import signal
    import time

    caught: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, _frame: caught.append(signum))
    parent, child = sync.SyncChannel.pair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        time.sleep(0.3)
        child.send("ready")
        os._exit(0)
    child.close()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert parent.recv()["type"] == "ready"
        assert caught == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        parent.close()
        os.waitpid(pid, 0)
