"""An unprivileged user for the rootless tests: created, given subordinate ids, and removed.

The tests run pyrunc the way a user of the machine would: the every-user install that the
README's set-up commands make (`/usr/local/bin/pyrunc`, a virtual environment in /opt built with
Debian's /usr/bin/python3), started with `setpriv` as a fresh account with no capabilities, in a
clean environment. Everything the user touches lives under one directory made here (mode 0755,
so the user can reach its home inside; pytest's own tmp_path is under a 0700 directory of
root's). `RootlessUser.remove` kills what the user left running (by pid), deletes the account,
its /etc/subuid and /etc/subgid lines and every file, and reports what it had to clean.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrunc_testing import REPO, make_bundle, reap_children

#: The every-user pyrunc (README "Set up and go"); $PYRUNC_SYSTEM points the tests elsewhere.
SYSTEM_PYRUNC = os.environ.get("PYRUNC_SYSTEM", "/usr/local/bin/pyrunc")
#: Subordinate ids the test user gets (a range no account on this machine uses: checked).
SUBID_COUNT = 65536
SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))


def system_pyrunc() -> str:
    """The every-user pyrunc, after checking that it runs this checkout's code.

    Missing, the tests skip (outside CI) with what to run; an install of other code fails them,
    since its results would say nothing about this tree.
    """
    if not os.path.exists(SYSTEM_PYRUNC):
        message = (f"{SYSTEM_PYRUNC} is missing: run the README's install step "
                   f"(/usr/bin/python3 -m venv /opt/pyrunc && /opt/pyrunc/bin/pip install . && "
                   f"/opt/pyrunc/bin/python -I -m pyrunc.launcher /usr/local/bin/pyrunc)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    stale = stale_files(installed_package_dir())
    if stale:
        pytest.fail(f"{SYSTEM_PYRUNC} runs other code than this checkout ({len(stale)} files "
                    f"differ, e.g. {stale[0]}): rerun /opt/pyrunc/bin/pip install .")
    return SYSTEM_PYRUNC


def installed_package_dir() -> Path:
    """Where the interpreter of the every-user pyrunc imports `pyrunc` from."""
    script = Path(os.path.realpath(SYSTEM_PYRUNC))
    interpreter = script.read_text().splitlines()[0].removeprefix("#!").split()[0]
    out = subprocess.run([interpreter, "-c", "import pyrunc, os; "
                          "print(os.path.dirname(pyrunc.__file__))"],
                         capture_output=True, text=True, check=True, cwd="/")
    return Path(out.stdout.strip())


def stale_files(installed: Path) -> list[str]:
    """The checkout's pyrunc/*.py files whose installed copy is missing or different."""
    source = REPO / "pyrunc"
    stale = []
    for path in sorted(source.rglob("*.py")):
        relative = path.relative_to(source)
        copy = installed / relative
        if not copy.is_file() or copy.read_bytes() != path.read_bytes():
            stale.append(str(relative))
    return stale


def _free_subid_start() -> int:
    """A start id above every range in /etc/subuid and /etc/subgid, on a 65536 boundary."""
    highest = 100000
    for path in SUBID_FILES:
        if path.exists():
            for line in path.read_text().splitlines():
                fields = line.split(":")
                if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                    highest = max(highest, int(fields[1]) + int(fields[2]))
    return -(-highest // SUBID_COUNT) * SUBID_COUNT + SUBID_COUNT


class RootlessUser:
    """A throw-away account `pyrunc-rl-<random>` with a home, a runtime dir and subids."""

    def __init__(self, *, subids: bool = True) -> None:
        self.name = f"pyrunc-rl-{uuid.uuid4().hex[:8]}"
        self.base = Path(tempfile.mkdtemp(prefix="pyrunc-rootless-", dir="/tmp"))
        self.base.chmod(0o755)
        self.home = self.base / "home"
        self.runtime_dir = self.base / "run"
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(self.home),
                        "--shell", "/bin/sh", "--user-group", self.name], check=True)
        entry = pwd.getpwnam(self.name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        for directory in (self.home, self.runtime_dir):
            directory.mkdir(mode=0o700)
            os.chown(directory, self.uid, self.gid)
        # useradd may have granted automatic ranges (SUB_UID_MIN in login.defs): the tests
        # decide what the user has.
        self._drop_subid_lines()
        self.subid_start = 0
        if subids:
            self.add_subids()

    def _drop_subid_lines(self) -> None:
        for path in SUBID_FILES:
            if path.exists():
                lines = path.read_text().splitlines(keepends=True)
                kept = [line for line in lines if not line.startswith(self.name + ":")]
                if kept != lines:
                    path.write_text("".join(kept))

    def add_subids(self) -> None:
        """Give the user SUBID_COUNT subordinate uids and gids (what newuidmap checks)."""
        self.subid_start = _free_subid_start()
        line = f"{self.name}:{self.subid_start}:{SUBID_COUNT}"
        for path in SUBID_FILES:
            with path.open("a") as f:
                f.write(line + "\n")

    def remove_subids(self) -> None:
        """Take the user's /etc/subuid and /etc/subgid entries away again."""
        self._drop_subid_lines()

    def env(self, **extra: str) -> dict[str, str]:
        """A login-like environment: no variable of the test run leaks in."""
        env = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
               "PATH": "/usr/local/bin:/usr/bin:/bin", "XDG_RUNTIME_DIR": str(self.runtime_dir),
               "LANG": "C.UTF-8"}
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}

    def run(self, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 60, check: bool = False,
            wrap: Callable[[list[str]], list[str]] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run argv as the user: its uid, gid and groups, no capabilities, its environment.

        `wrap` turns the whole command (which starts as root, then drops to the user) into
        another one, e.g. to place it in a cgroup first."""
        command = [shutil.which("setpriv") or "setpriv", f"--reuid={self.uid}",
                   f"--regid={self.gid}", "--init-groups", "--inh-caps=-all", "--", *argv]
        if wrap is not None:
            command = wrap(command)
        # Files, not pipes: a detached container inherits pyrunc's stdio (as with runc), and a
        # pipe would see no EOF until the container exits.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(command, env=env or self.env(), cwd=cwd or self.home,
                                  stdout=out, stderr=err, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(command, proc.returncode, out.read(), err.read())
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} as {self.name} exited {result.returncode}\n"
                                 f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def bundle(self, name: str, args: list[str], **config_changes: Any) -> Path:
        """A busybox bundle the user owns, its config.json written by the user's
        `pyrunc spec --rootless`, with `process.args` set (and the top-level keys given)."""
        path = self.home / name
        make_bundle(path, args, rootfs_copy=True)
        (path / "config.json").unlink()
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(path)], check=True)
        self.run([system_pyrunc(), "spec", "--rootless", "--bundle", str(path)], check=True)
        config = json.loads((path / "config.json").read_text())
        config["process"]["args"] = args
        config["process"]["terminal"] = False
        for key, value in config_changes.items():
            config[key] = value
        self.write_config(path, config)
        return path

    def write_config(self, bundle: Path, config: dict[str, Any]) -> None:
        (bundle / "config.json").write_text(json.dumps(config, indent=2))
        os.chown(bundle / "config.json", self.uid, self.gid)

    def processes(self) -> list[int]:
        """Pids of every process running with one of the user's ids (its own or a subid)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            if "\nState:\tZ" in status:
                continue   # exited; reaped by reap_children
            for line in status.splitlines():
                if line.startswith("Uid:"):
                    uids = {int(v) for v in line.split()[1:]}
                    if self.uid in uids or (self.subid_start and any(
                            self.subid_start <= u < self.subid_start + SUBID_COUNT
                            for u in uids)):
                        found.append(int(entry))
                    break
        return found

    def remove(self) -> list[str]:
        """Delete everything the user had; return what had been left behind (for an assert)."""
        left = []
        state_root = self.runtime_dir / "pyrunc"
        if state_root.is_dir():
            for container in sorted(p.name for p in state_root.iterdir()):
                left.append(f"container {container}")
                self.run([SYSTEM_PYRUNC, "delete", "--force", container])
        for _ in range(50):
            reap_children()
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        else:
            left.append(f"processes {self.processes()}")
        reap_children()
        subprocess.run(["userdel", self.name], check=False, capture_output=True)
        self._drop_subid_lines()
        shutil.rmtree(self.base, ignore_errors=True)
        return left

