"""Rootless podman with pyrunc as its runtime: run, exec, stop and rm as an unprivileged user.

podman runs as a fresh account (`RootlessUser`) with a private HOME, XDG_RUNTIME_DIR,
storage.conf (vfs driver, storage under the user's home) and containers.conf, and
`--runtime` set to the every-user pyrunc. podman makes its own user namespace with the user's
/etc/subuid range (through newuidmap), and runs pyrunc inside it as that namespace's root, so
pyrunc is "rootless" there by runc's rules: its state goes to $XDG_RUNTIME_DIR/pyrunc and the
container gets no cgroup. The image is the tests' busybox rootfs, `podman import`ed: no
registry. Everything (podman's pause process and slirp4netns included) goes with the user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyrunc_testing import make_bundle, needs_root
from rootless_user import SUBID_COUNT, RootlessUser, system_pyrunc

pytestmark = [needs_root, pytest.mark.integration,
              pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed")]

IMAGE = "localhost/pyrunc-rootless-busybox:latest"
FUSE_OVERLAYFS = "/usr/bin/fuse-overlayfs"
#: sh as PID 1 ignores SIGTERM without a handler: this one makes `podman stop` graceful.
SERVE = "trap 'exit 0' TERM; while :; do sleep 1; done"


class RootlessPodman:
    """podman as `user`, with storage and configuration of its own under the user's home."""

    def __init__(self, user: RootlessUser, driver: str = "vfs") -> None:
        self.user = user
        self.driver = driver
        base = user.home / "podman"
        base.mkdir()
        storage_conf = base / "storage.conf"
        storage = "vfs" if driver == "vfs" else "overlay"
        text = (f'[storage]\ndriver = "{storage}"\nrunroot = "{base}/runroot"\n'
                f'graphroot = "{base}/storage"\n')
        if driver == "fuse-overlayfs":
            text += f'\n[storage.options.overlay]\nmount_program = "{FUSE_OVERLAYFS}"\n'
        storage_conf.write_text(text)
        containers_conf = base / "containers.conf"
        containers_conf.write_text(
            '[containers]\nlog_driver = "k8s-file"\n\n'
            '[engine]\nlock_type = "file"\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n'
            f'\n[engine.runtimes]\npyrunc = ["{system_pyrunc()}"]\n')
        self.env = user.env(CONTAINERS_STORAGE_CONF=str(storage_conf),
                            CONTAINERS_CONF=str(containers_conf))
        self.global_args = ["--root", f"{base}/storage", "--runroot", f"{base}/runroot",
                            "--tmpdir", f"{base}/tmp", "--storage-driver", storage,
                            "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                            "--runtime", system_pyrunc()]
        if driver == "fuse-overlayfs":
            # With --storage-driver on the command line podman drops storage.conf's options.
            self.global_args += ["--storage-opt", f"overlay.mount_program={FUSE_OVERLAYFS}"]
        self.base = base
        subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(base)], check=True)

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.user.run(["podman", *self.global_args, *args], env=self.env,
                             timeout=timeout, check=check)

    def root_fstype_vfs(self) -> str:
        """A vfs container's root is a bind of a directory: the filesystem of the user's home."""
        out = subprocess.run(["stat", "-f", "-c", "%T", str(self.base)], capture_output=True,
                             text=True, check=True).stdout.strip()
        return {"ext2/ext3": "ext4"}.get(out, out)

    def import_busybox(self) -> None:
        bundle = self.base / "bundle"
        make_bundle(bundle, rootfs_copy=True)
        archive = self.base / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            for entry in sorted((bundle / "rootfs").iterdir()):
                tar.add(entry, arcname=entry.name)
        subprocess.run(["chown", "-R", f"{self.user.uid}:{self.user.gid}", str(self.base)],
                       check=True)
        self("import", str(archive), IMAGE)
        shutil.rmtree(bundle)
        archive.unlink()


@pytest.fixture(params=["vfs", "fuse-overlayfs"])
def podman(request: pytest.FixtureRequest) -> Iterator[RootlessPodman]:
    """Rootless podman on vfs storage (plain copies) and on overlay storage mounted by
    fuse-overlayfs (what rootless podman used before the kernel allowed overlay in a userns)."""
    if request.param == "fuse-overlayfs" and not os.path.exists(FUSE_OVERLAYFS):
        pytest.skip("fuse-overlayfs is not installed")
    user = RootlessUser()
    engine = RootlessPodman(user, request.param)
    try:
        yield engine
    finally:
        left = engine("ps", "-a", "-q", check=False).stdout.split()
        engine("rm", "--all", "--force", "--time", "0", check=False)
        # Storage files belong to the user's subordinate ids: root removes them with the home.
        user.remove()
    assert not left, f"podman containers left behind: {left}"


def uid_map_rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_rootless_podman_run_with_pyrunc(podman: RootlessPodman) -> None:
    podman.import_busybox()
    result = podman("run", "--rm", "--network", "none", IMAGE, "sh", "-c",
                    "id -u; cat /proc/self/uid_map")
    user = podman.user
    lines = result.stdout.splitlines()
    assert lines[0] == "0"
    # podman's user namespace (the user and its subordinate range), as the container sees it.
    assert uid_map_rows("\n".join(lines[1:])) == [
        ["0", str(user.uid), "1"], ["1", str(user.subid_start), str(SUBID_COUNT)]]
    assert podman("ps", "-a", "-q").stdout.split() == []


def test_rootless_podman_exec_stop_rm_with_pyrunc(podman: RootlessPodman) -> None:
    podman.import_busybox()
    network = "slirp4netns" if shutil.which("slirp4netns") else "none"
    container = podman("run", "-d", "--network", network, IMAGE, "sh", "-c",
                       SERVE).stdout.strip().splitlines()[-1]
    info = json.loads(podman("inspect", container).stdout)[0]
    assert info["OCIRuntime"] == "pyrunc" or info["OCIRuntime"] == system_pyrunc()
    assert info["State"]["Status"] == "running"
    # pyrunc keeps the container's state under the user's runtime directory.
    assert (podman.user.runtime_dir / "pyrunc" / container).is_dir()

    inside = podman("exec", container, "sh", "-c",
                    "id -u; cat /proc/self/uid_map; ip -o -4 addr show").stdout
    assert inside.splitlines()[0] == "0"
    assert [str(podman.user.subid_start), str(SUBID_COUNT)] in \
        [row[1:] for row in uid_map_rows("\n".join(inside.splitlines()[1:3]))]
    if network == "slirp4netns":
        assert "10.0.2.100/24" in inside, inside
    # The container's root is the storage driver's: a fuse-overlayfs mount, or a plain vfs copy.
    mountinfo = podman("exec", container, "cat", "/proc/self/mountinfo").stdout
    root_fstype = next(line.split(" - ")[1].split()[0] for line in mountinfo.splitlines()
                       if line.split()[4] == "/")
    assert root_fstype == ("fuse.fuse-overlayfs" if podman.driver == "fuse-overlayfs"
                           else podman.root_fstype_vfs()), mountinfo
    # Processes of the container run as the user's ids on the host, never as root.
    host_pid = info["State"]["Pid"]
    status = Path(f"/proc/{host_pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(podman.user.uid)] * 4

    started = time.monotonic()
    podman("stop", "--time", "10", container)
    assert time.monotonic() - started < 10   # the TERM handler ran: no SIGKILL after 10 s
    stopped = json.loads(podman("inspect", container).stdout)[0]["State"]
    assert (stopped["Status"], stopped["ExitCode"]) == ("exited", 0)
    podman("rm", container)
    assert podman("ps", "-a", "-q").stdout.split() == []
    assert not (podman.user.runtime_dir / "pyrunc" / container).exists()
