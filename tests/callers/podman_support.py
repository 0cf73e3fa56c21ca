"""A private podman for the tests: its own storage, configuration, cgroup parent and cleanup.

podman keeps state in several places: image and container storage (`--root`), run-time state
(`--runroot`), locks, exit files and the events log (`--tmpdir`), network configuration
(containers.conf `network_config_dir`), the container cgroups (`--cgroup-parent`), and the state
pyrunc itself keeps for each container (pyrunc's default `--root`, /run/pyrunc: conmon's exit
command, `podman container cleanup`, does not pass `--runtime-flag`s on, so a private pyrunc root
would leave its containers behind). Everything but the last lives under one temporary directory,
so a test run shares nothing with another podman on the machine. `PodmanHost.leftovers` lists what
a test left (containers, conmon processes, mounts, cgroups, pyrunc state) and `PodmanHost.purge`
removes it, whether or not the test passed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from pyrunc_testing import host_mounts_mentioning, make_bundle, pyrunc_command, reap_children

IMAGE = "localhost/pyrunc-busybox:latest"
PYRUNC_STATE = Path("/run/pyrunc")
#: This host's RLIMIT_NOFILE hard limit is 20000 and CAP_SYS_RESOURCE is not in the bounding
#: set: podman's default ulimits (nofile 1048576) would make every create fail with EPERM.
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def pyrunc_path() -> str:
    """The pyrunc executable under test (podman needs a single path, not `python -m`)."""
    command = pyrunc_command()
    if len(command) != 1:
        raise RuntimeError("podman needs pyrunc as one executable: install the venv's pyrunc")
    return command[0]


def containers_conf(path: Path, network_dir: Path, *, json_log: bool = False) -> Path:
    """Write the containers.conf the tests use; the runtime entry is the one README shows.

    ``json_log`` names pyrunc in `runtime_supports_json`, so that conmon gives it
    `--log-format=json --log=FILE` and podman reads errors back from that file.
    """
    supports_json = 'runtime_supports_json = ["crun", "runc", "pyrunc"]\n' if json_log else ""
    path.write_text(
        "[containers]\n"
        "# Container output in a file podman reads back (`podman logs`), on any host.\n"
        'log_driver = "k8s-file"\n'
        "\n"
        "[engine]\n"
        "# File locks under --tmpdir instead of the machine-wide /dev/shm/libpod_lock.\n"
        'lock_type = "file"\n'
        f"{supports_json}"
        "\n"
        "[engine.runtimes]\n"
        f'pyrunc = ["{pyrunc_path()}"]\n'
        "\n"
        "[network]\n"
        f'network_config_dir = "{network_dir}"\n'
    )
    return path


class PodmanHost:
    """One private podman installation under ``base``, with the busybox image imported."""

    def __init__(self, base: Path, cgroup_parent: str) -> None:
        self.base = base
        self.cgroup_parent = cgroup_parent
        self.conf = containers_conf(base / "containers.conf", base / "networks")
        #: Ids of the containers the current test started (the teardown checks their state).
        self.started: list[str] = []
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}
        self.global_args = [
            "--root", str(base / "root"), "--runroot", str(base / "runroot"),
            "--tmpdir", str(base / "tmp"), "--cgroup-manager=cgroupfs",
            "--events-backend=file", "--runtime", pyrunc_path(),
        ]

    # -- running podman ----------------------------------------------------------------------

    def __call__(self, *args: str, check: bool = True, timeout: float = 120,
                 runtime: str | None = None, conf: Path | None = None, **kwargs: Any
                 ) -> subprocess.CompletedProcess[str]:
        """Run `podman GLOBAL... ARGS`; ``runtime`` replaces the `--runtime` value, ``conf``
        the containers.conf."""
        global_args = list(self.global_args)
        if runtime is not None:
            global_args[-1] = runtime
        env = self.env if conf is None else {**self.env, "CONTAINERS_CONF": str(conf)}
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.run(["podman", *global_args, *args], capture_output=True, text=True,
                              timeout=timeout, env=env, check=False, **kwargs)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def run_args(self, *extra: str) -> list[str]:
        """The flags every container of the tests gets: no network, this host's ulimits, and a
        cgroup under the tests' own parent (never under the machine's own cgroups)."""
        return ["--network", "none", *ULIMITS, "--cgroup-parent", self.cgroup_parent, *extra]

    def run(self, *args: str, options: tuple[str, ...] = (), **kwargs: Any
            ) -> subprocess.CompletedProcess[str]:
        """`podman run [test flags] OPTIONS IMAGE ARGS...`, exit status not checked."""
        return self("run", *self.run_args(*options), IMAGE, *args, check=False, **kwargs)

    def start_detached(self, *args: str, options: tuple[str, ...] = ()) -> str:
        """`podman run -d ...`; returns the container id."""
        out = self("run", "-d", *self.run_args(*options), IMAGE, *args).stdout
        container_id = out.strip().splitlines()[-1]
        self.started.append(container_id)
        return container_id

    def inspect(self, container_id: str) -> dict[str, Any]:
        data = json.loads(self("container", "inspect", container_id).stdout)
        assert isinstance(data, list) and len(data) == 1
        return dict(data[0])

    def wait_status(self, container_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        """Poll `inspect` until State.Status is ``status``."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.inspect(container_id)
            if info["State"]["Status"] == status or time.monotonic() > deadline:
                return info
            time.sleep(0.1)

    # -- set-up and clean-up -----------------------------------------------------------------

    def import_busybox(self) -> None:
        """Build the tests' busybox rootfs and `podman import` it as IMAGE."""
        bundle = self.base / "bundle"
        make_bundle(bundle)
        rootfs = bundle / "rootfs"
        archive = self.base / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            for entry in sorted(rootfs.iterdir()):
                tar.add(entry, arcname=entry.name)
        self("import", str(archive), IMAGE)
        shutil.rmtree(bundle)
        archive.unlink()

    def container_ids(self) -> list[str]:
        out = self("ps", "-a", "-q", "--no-trunc", check=False).stdout
        return out.split()

    def conmon_pids(self) -> list[int]:
        """conmon processes serving this installation (they name its storage in their args)."""
        found = []
        marker = str(self.base).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.split(b"\0", 1)[0].endswith(b"conmon") and marker in cmdline:
                found.append(int(entry.name))
        return found

    def cgroup_dirs(self) -> list[Path]:
        """Every cgroup directory below the tests' parent, deepest first."""
        found: list[Path] = []
        for hierarchy in CGROUP_ROOT.iterdir():
            parent = hierarchy / self.cgroup_parent.lstrip("/")
            for directory, _, _ in os.walk(parent):
                if directory != str(parent):
                    found.append(Path(directory))
        return sorted(found, key=lambda p: len(p.parts), reverse=True)

    def leftovers(self, ids: list[str], grace: float = 15) -> dict[str, list[str]]:
        """What is still there ``grace`` seconds after a test, that it should have removed.

        The grace period is for work that ends just after the podman command: conmon may outlive
        it by a moment (after a failed create, say), and so may the exit command it runs.
        """
        deadline = time.monotonic() + grace
        while True:
            reap_children()
            left = self._leftovers_now(ids)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def _leftovers_now(self, ids: list[str]) -> dict[str, list[str]]:
        left = {
            "containers": self.container_ids(),
            "conmon": [str(pid) for pid in self.conmon_pids()],
            "mounts": [line.split()[4] for line in host_mounts_mentioning(str(self.base))],
            # podman (cgroupfs) keeps every conmon in <parent>/conmon, and leaves that cgroup.
            "cgroups": [str(p) for p in self.cgroup_dirs() if p.name != "conmon"],
            "pyrunc state": [i for i in ids if (PYRUNC_STATE / i).exists()],
        }
        return {what: items for what, items in left.items() if items}

    def purge(self, ids: list[str]) -> None:
        """Remove every container, process, mount, cgroup and state dir podman or pyrunc left."""
        self("rm", "--all", "--force", "--time", "0", check=False)
        for pid in self.conmon_pids():
            _kill(pid)
        for container_id in ids:
            if (PYRUNC_STATE / container_id).exists():
                subprocess.run([pyrunc_path(), "delete", "--force", container_id],
                               capture_output=True, check=False, timeout=60)
        for line in reversed(host_mounts_mentioning(str(self.base))):
            subprocess.run(["umount", "-l", line.split()[4]], capture_output=True, check=False)
        for directory in self.cgroup_dirs():
            _rmdir_cgroup(directory)
        reap_children()

    def destroy(self) -> None:
        """Tear the whole installation down, the cgroup parent included."""
        self.purge(self.container_ids())
        for hierarchy in CGROUP_ROOT.iterdir():
            path = hierarchy / self.cgroup_parent.lstrip("/")
            if path.is_dir() and _rmdir_cgroup(path):
                try:
                    path.parent.rmdir()   # shared by other runs: removed only when empty
                except OSError:
                    pass
        shutil.rmtree(self.base, ignore_errors=True)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rmdir_cgroup(path: Path) -> bool:
    """rmdir a cgroup, killing what is still in it first; False if it stays."""
    procs = path / "cgroup.procs"
    for _ in range(50):
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            try:
                for pid in procs.read_text().split():
                    _kill(int(pid))
            except OSError:
                pass
            reap_children()
            time.sleep(0.05)
    return False


def cgroup_of(pid: int, controller: str) -> str:
    """The v1 ``controller`` cgroup of ``pid``, as /proc/<pid>/cgroup names it."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise AssertionError(f"pid {pid} has no {controller} cgroup")
