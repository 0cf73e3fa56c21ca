"""Races on the last component of a path the runtime mounts onto (CVE-2021-30465 and
CVE-2025-52565 classes).

A thread of the test exchanges, atomically and in a loop (renameat2 RENAME_EXCHANGE), a path in
the rootfs between a real directory (or file) and a symlink pointing outside the rootfs, while
containers are created. A symlink that exists *when the runtime resolves the path* is
legitimately followed inside the root; what must never happen is a mount landing outside it.
That is observed where it would show: a createContainer hook runs in the container's mount
namespace after every mount is made (before pivot_root hides the host's tree) and records any
mount on the outside directory, and whether the volume's content shows through it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from pyrunc_testing import host_mounts_mentioning, needs_root, reap_children

pytestmark = [needs_root, pytest.mark.integration]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _exchange(a: Path, b: Path) -> None:
    if _libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b),
                       _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


@contextmanager
def _flipping(path: Path, real: Path, link: Path) -> Iterator[list[int]]:
    """Exchange `path` (starting as `real`) and `link` in a loop until the block ends.

    The runtime may remove a symlink it finds (as it does for /dev/console): the flipper then
    puts the symlink (read from `link` at the start) and the file back, so the race goes on.
    Yields a one-item list counting the exchanges, to show that the race really ran."""
    target = os.readlink(link)
    os.rename(real, path)
    count = [0]
    stop = threading.Event()

    def restore() -> None:
        if not os.path.lexists(path):
            path.write_text("") if not real.name.endswith(".dir") else path.mkdir()
        if not (path.is_symlink() or link.is_symlink()):
            with contextlib.suppress(OSError):
                link.unlink() if not link.is_dir() else link.rmdir()
        if not os.path.lexists(link):
            link.symlink_to(target)

    def flipper() -> None:
        while not stop.is_set():
            try:
                _exchange(path, link)
                count[0] += 1
                if count[0] % 512 == 0:
                    restore()
            except OSError:
                with contextlib.suppress(OSError):
                    restore()

    thread = threading.Thread(target=flipper, daemon=True)
    thread.start()
    try:
        yield count
    finally:
        stop.set()
        thread.join()


def _symlink_target(outside: Path, style: str) -> str:
    return str(outside) if style == "absolute" else "../../../../../../../.." + str(outside)


def _watch_hook(tmp_path: Path, outside: Path, marker: str) -> tuple[dict, Path]:
    """A createContainer hook that logs every mount on `outside`, and `marker` seen in it."""
    log = tmp_path / "landed.log"
    script = tmp_path / "watch.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"grep -F ' {outside} ' /proc/self/mountinfo >> {log}\n"
        f"[ -e '{outside}/{marker}' ] && echo 'marker seen through {outside}' >> {log}\n"
        "exit 0\n")
    script.chmod(0o755)
    return {"path": str(script)}, log


class _Outcome(NamedTuple):
    returncode: int
    output: str   # what the container wrote on its terminal
    stderr: str   # the runtime's


def _run_with_console(runtime, b: Path, cid: str, sock_dir: Path) -> _Outcome:
    """create --console-socket, take the pty master as a shim does, start, read to the end."""
    sock_path = sock_dir / f"{cid}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(1)
    try:
        created = runtime("create", "--console-socket", str(sock_path), "-b", str(b), cid,
                          check=False)
        if created.returncode != 0:
            return _Outcome(created.returncode, "", created.stderr)
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            _, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4))
        master = int.from_bytes(ancdata[0][2][:4], sys.byteorder)
        try:
            runtime("start", cid)
            out = bytearray()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if not select.select([master], [], [], 0.1)[0]:
                    continue
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break  # EIO: every slave is closed
                if not chunk:
                    break
                out += chunk
        finally:
            os.close(master)
        while runtime.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
            reap_children()
            time.sleep(0.02)
        runtime("delete", "--force", cid)
        return _Outcome(0, out.decode(errors="replace"), "")
    finally:
        listener.close()
        sock_path.unlink()


def _one_line_failures(results) -> list[str]:
    """The failures that do not read as one clear line (an error is allowed, a mess is not)."""
    return [r.stderr for r in results
            if r.returncode != 0 and len(r.stderr.strip().splitlines()) != 1]


@pytest.mark.parametrize("style", ["absolute", "climbing"])
def test_cve_2021_30465_a_bind_destination_swapped_for_an_outside_symlink_never_mounts_outside(
        runtime, bundle, tmp_path, style):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "host-file").write_text("host\n")
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "from-volume").write_text("volume\n")
    hook, log = _watch_hook(tmp_path, outside, "from-volume")

    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["mounts"].append({"destination": "/data/vol", "type": "bind",
                                 "source": str(volume), "options": ["rbind"]})
        config.setdefault("hooks", {})["createContainer"] = [hook]

    b = bundle("true", edit=edit)
    data = b / "rootfs/data"
    data.mkdir()
    (data / "vol.real").mkdir()
    (data / "vol.link").symlink_to(_symlink_target(outside, style))
    results = []
    with _flipping(data / "vol", data / "vol.real", data / "vol.link") as flips:
        for i in range(25):
            results.append(runtime("run", "-b", str(b), f"swap{i}", check=False))
    assert flips[0] > 100, "the race did not run"
    landed = log.read_text() if log.exists() else ""
    assert landed == "", f"a bind mount landed outside the rootfs:\n{landed}"
    assert sorted(p.name for p in outside.iterdir()) == ["host-file"]
    assert not host_mounts_mentioning(str(outside))
    assert any(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert not _one_line_failures(results), _one_line_failures(results)


@pytest.mark.parametrize("style", ["absolute", "climbing"])
def test_cve_2025_52565_dev_console_swapped_for_a_symlink_is_never_mounted_through(
        runtime, bundle, tmp_path, style):
    """terminal: true binds the pty slave on /dev/console, inside the new root. The image's own
    /dev (no /dev tmpfs) has a /dev/console that flips between a file and a symlink to a host
    file's path; a decoy lies where that path leads inside the rootfs (in a real attack, a
    procfs file such as core_pattern). Neither the host file nor the decoy is ever mounted
    over or written; a run either works or fails with one line."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "console-target"
    target.write_text("host file\n")

    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
        config["linux"].pop("devices", None)

    b = bundle("sh", "-c", "grep -F console-target /proc/self/mountinfo && echo MOUNTED-OVER; "
                           "echo done", tty=True, edit=edit)
    decoy = b / "rootfs" / str(target).lstrip("/")
    decoy.parent.mkdir(parents=True)
    decoy.write_text("decoy\n")
    files = {target: target.stat(), decoy: decoy.stat()}
    dev = b / "rootfs/dev"
    dev.mkdir(exist_ok=True)
    for name in ("console", "console.real", "console.link"):
        if (dev / name).exists() or (dev / name).is_symlink():
            (dev / name).unlink()
    (dev / "console.real").write_text("")
    (dev / "console.link").symlink_to(_symlink_target(target, style))
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir()
    results = []
    with _flipping(dev / "console", dev / "console.real", dev / "console.link") as flips:
        for i in range(15):
            results.append(_run_with_console(runtime, b, f"console{i}", sock_dir))
    assert flips[0] > 100, "the race did not run"
    for path, before in files.items():
        after = path.stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
            (before.st_ino, before.st_size, before.st_mtime_ns), path
    assert target.read_text() == "host file\n" and decoy.read_text() == "decoy\n"
    assert not host_mounts_mentioning(str(outside))
    ok = [r for r in results if r.returncode == 0]
    assert ok, [r.stderr for r in results]
    through = [r.output for r in ok if "MOUNTED-OVER" in r.output]
    assert not through, f"the console was bound through the symlink: {through}"
    assert all("done" in r.output for r in ok), [r.output for r in ok]
    assert not _one_line_failures(results), _one_line_failures(results)


def test_cve_2025_52565_a_fake_proc_never_redirects_the_console_bind(runtime, bundle, tmp_path):
    """No procfs is mounted and the image's /proc/self/fd/N are symlinks to a decoy: binding the
    console "through /proc/self/fd/N" would follow the image's link and cover the decoy. The
    bind is made from the pty's fd onto /dev/console's fd, through no path at all."""
    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
        config["linux"]["maskedPaths"] = []
        config["linux"]["readonlyPaths"] = []

    b = bundle("sh", "-c", "grep -qs decoy /proc/self/mountinfo; "
                           "[ -c /etc/decoy ] && echo DECOY-COVERED; "
                           "[ -c /dev/console ] && echo console-is-a-tty; echo done",
               tty=True, edit=edit)
    rootfs = b / "rootfs"
    decoy = rootfs / "etc/decoy"
    decoy.write_text("decoy\n")
    fake_fd = rootfs / "proc/self/fd"
    fake_fd.mkdir(parents=True)
    for n in range(256):
        (fake_fd / str(n)).symlink_to("/etc/decoy")
    sock_dir = tmp_path / "sock"
    sock_dir.mkdir()
    result = _run_with_console(runtime, b, "fakeproc", sock_dir)
    assert decoy.read_text() == "decoy\n"
    assert "DECOY-COVERED" not in result.output, result
    assert result.returncode == 0, result.stderr
    assert "console-is-a-tty" in result.output and "done" in result.output, result.output
