"""The runtime <-> child channel: whole messages of any size, and fds passed beside them."""

from __future__ import annotations

import os

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
