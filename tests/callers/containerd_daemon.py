"""A private containerd for the caller tests: its own config, root, state and socket.

Nothing is shared with a containerd the machine may run: every path is under one temporary
directory. Stopping is by the daemon's pid, then by the pids of the shims it started (found
by the socket address in their command line, which is unique to this daemon), and finally
every mount left under the daemon's root and state is unmounted, deepest first.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from pyrunc_testing import reap_children

CRI_RUNTIME = "pyrunc"


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(base: Path, *, cri: bool, pyrunc: str = "", sandbox_image: str = "") -> Path:
    """containerd config `version = 2`; the CRI plugin is disabled unless ``cri``.

    With ``cri`` the CRI plugin gets a runtime handler "pyrunc" (shim io.containerd.runc.v2
    with BinaryName pointing at pyrunc, Root under ``base``), the locally imported sandbox
    image, and no CNI (pods use the host network).
    """
    lines = [
        "version = 2",
        f"root = {_toml_str(str(base / 'root'))}",
        f"state = {_toml_str(str(base / 'state'))}",
        "[grpc]",
        f"  address = {_toml_str(str(base / 'containerd.sock'))}",
        "[ttrpc]",
        f"  address = {_toml_str(str(base / 'containerd.sock.ttrpc'))}",
        "[debug]",
        f"  address = {_toml_str(str(base / 'debug.sock'))}",
        "[metrics]",
        '  address = ""',
    ]
    disabled = ['"io.containerd.snapshotter.v1.aufs"', '"io.containerd.snapshotter.v1.btrfs"',
                '"io.containerd.snapshotter.v1.devmapper"', '"io.containerd.snapshotter.v1.zfs"',
                '"io.containerd.tracing.processor.v1.otlp"']
    if not cri:
        disabled.append('"io.containerd.grpc.v1.cri"')
    lines.insert(1, f"disabled_plugins = [{', '.join(disabled)}]")
    if cri:
        runtime = f'[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{CRI_RUNTIME}]'
        lines += [
            '[plugins."io.containerd.grpc.v1.cri"]',
            f"  sandbox_image = {_toml_str(sandbox_image)}",
            "  enable_selinux = false",
            "  disable_apparmor = true",
            "  restrict_oom_score_adj = true",
            '[plugins."io.containerd.grpc.v1.cri".cni]',
            f"  bin_dir = {_toml_str(str(base / 'cni-bin'))}",
            f"  conf_dir = {_toml_str(str(base / 'cni-conf'))}",
            '[plugins."io.containerd.grpc.v1.cri".containerd]',
            '  snapshotter = "overlayfs"',
            f"  default_runtime_name = {_toml_str(CRI_RUNTIME)}",
            runtime,
            '  runtime_type = "io.containerd.runc.v2"',
            runtime[:-1] + ".options]",
            f"  BinaryName = {_toml_str(pyrunc)}",
            f"  Root = {_toml_str(str(base / 'runc-root'))}",
        ]
    path = base / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Containerd:
    """One running private containerd; ``ctr(...)`` talks to it."""

    def __init__(self, base: Path, *, cri: bool = False, pyrunc: str = "",
                 sandbox_image: str = "") -> None:
        self.base = base
        self.socket = base / "containerd.sock"
        self.config = write_config(base, cri=cri, pyrunc=pyrunc, sandbox_image=sandbox_image)
        self.log_path = base / "containerd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(self.config)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited {self.proc.returncode}:\n{self.log()}")
            if self.socket.exists() and self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"containerd did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def ctr(self, *args: str, check: bool = True, timeout: float = 120,
            namespace: str = "default", **kwargs: object) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", str(self.socket), "--namespace", namespace, *args]
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                **kwargs)  # type: ignore[call-overload]
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}\n"
                                 f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def shim_pids(self) -> list[int]:
        """Pids of the shims this daemon started (their argv names our socket)."""
        needle = str(self.socket).encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and needle in argv:
                pids.append(int(entry))
        return pids

    def stop(self) -> list[str]:
        """Stop the daemon and its shims, unmount their leftovers; say what had to be forced."""
        forced: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                forced.append("containerd needed SIGKILL")
        for pid in self.shim_pids():
            forced.append(f"shim {pid} still running")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if forced:
            time.sleep(0.2)   # let the killed shims exit before they are reaped
        reap_children()
        for mount in mounts_under(self.base):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
            forced.append(f"mount {mount} left behind")
        return forced

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def mounts_under(base: Path) -> list[str]:
    """Mount points below ``base`` in this mount namespace, deepest first."""
    prefix = str(base).rstrip("/") + "/"
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)
