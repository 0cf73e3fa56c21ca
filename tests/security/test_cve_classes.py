"""Regression tests named after the runc advisories whose class of attack they replay.

Each test plays the attack with a real container and asserts on what the attacker could reach,
not on what pyrunc says it did.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrunc_testing import needs_root, reap_children

pytestmark = [needs_root, pytest.mark.integration]


def _set_cwd(cwd: str):
    def edit(config: dict) -> None:
        config["process"]["cwd"] = cwd
    return edit


# --- CVE-2024-21626: leaked fds and a cwd through /proc/self/fd/N ------------------------------

@pytest.mark.parametrize("fd", range(3, 12))
def test_cve_2024_21626_cwd_through_proc_self_fd_never_reaches_a_host_directory(
        runtime, bundle, tmp_path, fd):
    """A host directory fd the caller leaked (fd 3..) and whatever the init holds itself: a cwd
    of /proc/self/fd/N must either fail create or leave the process inside the container."""
    secret_dir = tmp_path / "host-secret"
    secret_dir.mkdir()
    (secret_dir / "secret").write_text("host data\n")
    leaked = os.open(secret_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.set_inheritable(leaked, True)
        b = bundle("sh", "-c", "cat secret; ls; ls ..; pwd",
                   edit=_set_cwd(f"/proc/self/fd/{fd}"))
        # The leak itself: the caller's directory fd sits at fd 3 of pyrunc.
        result = runtime("run", "-b", str(b), f"cwd{fd}", check=False,
                         preexec_fn=lambda: os.dup2(leaked, 3))
    finally:
        os.close(leaked)
    assert "host data" not in result.stdout
    # Nor the state directory, nor any other host directory (the bundle, /tmp).
    for host_name in ("state.json", "exec.fifo", "host-secret", "bundle0", "config.json"):
        assert host_name not in result.stdout, result.stdout
    if result.returncode != 0:
        assert "cwd" in result.stderr, result.stderr


def test_cve_2024_21626_no_host_fd_reaches_the_container(runtime, bundle, tmp_path):
    leaked = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.set_inheritable(leaked, True)
        b = bundle("ls", "-l", "/proc/self/fd/")
        result = runtime("run", "-b", str(b), "fds", preexec_fn=lambda: os.dup2(leaked, 3))
    finally:
        os.close(leaked)
    import re

    fds = dict(re.findall(r" (\d+)(?: -> (.*))?$", result.stdout, re.M))
    # 0-2 are stdio; ls itself holds one more fd for the directory it lists (no target shown).
    extra = {fd: target for fd, target in fds.items() if fd not in ("0", "1", "2") and target}
    assert not extra, result.stdout


def test_cve_2024_21626_the_parked_init_holds_no_host_directory(runtime, bundle, tmp_path):
    """While a container waits in `created`, every fd of its init is stdio, a socket, a pipe,
    a fifo, or something inside the container: none is a directory of the host."""
    leaked = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.set_inheritable(leaked, True)
        b = bundle("true")
        runtime("create", "-b", str(b), "parked", preexec_fn=lambda: os.dup2(leaked, 3))
    finally:
        os.close(leaked)
    try:
        pid = runtime.state("parked")["pid"]
        host_devices = {os.stat(p).st_dev for p in ("/", "/proc", str(tmp_path),
                                                     str(runtime.root))}
        for entry in Path(f"/proc/{pid}/fd").iterdir():
            if os.path.isdir(entry):
                # The one directory it may hold is its private procfs instance (a new device).
                assert os.stat(entry).st_dev not in host_devices, \
                    f"fd {entry.name} of the parked init is a host directory: " \
                    f"{os.readlink(entry)}"
    finally:
        runtime("delete", "--force", "parked")


# --- CVE-2019-5736: the container reaching the runtime through /proc/<pid>/exe -----------------

def _writable_root(config: dict) -> None:
    config["root"]["readonly"] = False


def _wait_for_file(path: Path, timeout: float = 20.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("done\n"):
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never completed")


def _pid_in_namespace_of(host_pid: int) -> int:
    for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError("no NSpid line")


ATTACKER = """
while [ ! -s /tmp/target ]; do sleep 0.05; done
p=$(cat /tmp/target)
{
  echo "exe-link:$(readlink /proc/$p/exe 2>&1)"
  if cat /proc/$p/exe >/dev/null 2>&1; then echo exe-read:yes; else echo exe-read:no; fi
  if [ -n "$(readlink /proc/$p/fd/* 2>/dev/null)" ]; then echo fd-open:yes; else echo fd-open:no; fi
  if ls /proc/$p/root/ >/dev/null 2>&1; then echo root-list:yes; else echo root-list:no; fi
  if cat /proc/$p/maps >/dev/null 2>&1 && [ -n "$(cat /proc/$p/maps 2>/dev/null)" ]; then
    echo maps:yes; else echo maps:no; fi
  echo done
} > /tmp/result.tmp 2>&1
mv /tmp/result.tmp /tmp/result
sleep 100
"""


def test_cve_2019_5736_a_container_cannot_reach_the_parked_init_through_proc(
        runtime, bundle, cgroup_path):
    """A second container shares the first one's pid namespace (joined by path), so the first
    one's processes can see its init while it waits in `created`. The init is non-dumpable: its
    /proc/<pid>/exe (the runtime's interpreter), fds, root and memory map are out of reach."""
    attacker = bundle("sh", "-c", ATTACKER, edit=_writable_root)
    runtime("run", "-d", "-b", str(attacker), "attacker")
    victim_cgroup = f"{cgroup_path}-victim"
    try:
        attacker_pid = runtime.state("attacker")["pid"]

        def join_pid_ns(config: dict) -> None:
            config["linux"]["cgroupsPath"] = victim_cgroup
            for ns in config["linux"]["namespaces"]:
                if ns["type"] == "pid":
                    ns["path"] = f"/proc/{attacker_pid}/ns/pid"

        runtime("create", "-b", str(bundle("true", edit=join_pid_ns)), "victim")
        victim_pid = runtime.state("victim")["pid"]
        (attacker / "rootfs/tmp/target").write_text(f"{_pid_in_namespace_of(victim_pid)}\n")
        result = _wait_for_file(attacker / "rootfs/tmp/result")
        assert "exe-read:no" in result and "fd-open:no" in result, result
        assert "root-list:no" in result and "maps:no" in result, result
        assert "python" not in result.split("exe-link:")[1].splitlines()[0], result
    finally:
        runtime("delete", "--force", "victim", check=False)
        # The attacker's init cannot finish exiting while a zombie of its pid namespace (the
        # victim's init, our child) is unreaped.
        reap_children()
        runtime("delete", "--force", "attacker", check=False)
        for hierarchy in os.listdir("/sys/fs/cgroup"):
            leftover = f"/sys/fs/cgroup/{hierarchy}{victim_cgroup}"
            if os.path.isdir(leftover):
                os.rmdir(leftover)


# --- Python's own trap: imports resolved against the container's files ------------------------

def _planted_module_paths(rootfs: Path) -> list[Path]:
    """Where an image could plant modules that a careless runtime would import after pivot:
    the runtime's own package directory and every sys.path entry, as seen inside the rootfs."""
    import sys

    import pyrunc

    dirs = {Path(p) for p in sys.path if p and os.path.isdir(p)}
    package = Path(pyrunc.__file__).parent
    targets = [rootfs / str(package).lstrip("/") / path.relative_to(package)
               for path in package.rglob("*.py")]
    for directory in dirs:
        for name in ("json", "shutil", "subprocess", "tempfile", "selectors", "threading",
                     "typing", "random", "hashlib", "base64", "string", "locale", "glob"):
            targets.append(rootfs / str(directory).lstrip("/") / f"{name}.py")
    return targets


def test_modules_planted_in_the_image_are_never_imported_by_the_runtime(runtime, bundle):
    """Every module of pyrunc and a set of stdlib names are planted in the rootfs at the paths the
    runtime's interpreter would search after pivot_root. A container with hooks of every
    in-container phase, a seccomp profile and a user namespace runs, and no planted code runs."""
    script = "import os\nopen('/planted-module-ran-' + __name__, 'w').close()\n"

    def edit(config: dict) -> None:
        _writable_root(config)
        config["hooks"] = {"createContainer": [{"path": "/bin/true"}],
                           "startContainer": [{"path": "/bin/true"}]}
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                      "syscalls": [{"names": ["reboot"],
                                                    "action": "SCMP_ACT_ERRNO"}]}

    b = bundle("sh", "-c", "echo ran", edit=edit)
    rootfs = b / "rootfs"
    for path in _planted_module_paths(rootfs):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script)
    assert runtime("run", "-b", str(b), "planted").stdout == "ran\n"
    ran = sorted(p.name for p in rootfs.iterdir() if p.name.startswith("planted-module-ran"))
    assert not ran, f"the runtime imported modules from the image: {ran}"


# --- CVE-2025-31133: masking with a /dev/null the image replaced -------------------------------

@pytest.mark.parametrize("fake", ["symlink", "file"])
def test_cve_2025_31133_masked_paths_never_bind_a_fake_dev_null(runtime, bundle, fake):
    """Without a /dev tmpfs the image's own /dev is used; its /dev/null is a symlink to (or is)
    an ordinary file. Masking must bind the real null device or fail, never that file: here a
    sentinel in the rootfs stands for what an attacker would point at (core_pattern, ...)."""
    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
        config["linux"]["maskedPaths"] = ["/proc/version"]
        config["linux"].pop("devices", None)

    b = bundle("sh", "-c", "echo overwritten > /proc/version; stat -c %t:%T /proc/version",
               edit=edit)
    dev = b / "rootfs/dev"
    dev.mkdir(exist_ok=True)
    sentinel = b / "rootfs/etc/sentinel"
    sentinel.write_text("untouched\n")
    null = dev / "null"
    if null.exists() or null.is_symlink():
        null.unlink()
    if fake == "symlink":
        null.symlink_to("/etc/sentinel")
    else:
        null.write_text("")
    result = runtime("run", "-b", str(b), "fakenull", check=False)
    assert sentinel.read_text() == "untouched\n", result
    if result.returncode == 0:
        assert result.stdout.split()[-1] == "1:3", result.stdout
    else:
        assert "/dev/null" in result.stderr, result.stderr


# --- CVE-2025-52881: sysctl writes redirected through the container's /proc --------------------

def test_cve_2025_52881_sysctls_are_written_to_procfs_not_to_a_bind_over_proc_sys(
        runtime, bundle, tmp_path):
    """A config bind-mounts a directory of the host over /proc/sys/net/ipv4 (after /proc is
    mounted, as mounts are in order): a sysctl for that path must not land in the host file.
    pyrunc refuses mounts inside /proc (as runc does); and its sysctl writes go through its own
    procfs instance, checked with fstatfs, so even a redirect that got in would be missed."""
    fake = tmp_path / "fake-sys"
    fake.mkdir()
    (fake / "ip_forward").write_text("0\n")

    def edit(config: dict) -> None:
        config["mounts"].append({"destination": "/proc/sys/net/ipv4", "type": "bind",
                                 "source": str(fake), "options": ["rbind", "rw"]})
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}

    b = bundle("true", edit=edit)
    result = runtime("run", "-b", str(b), "sysctl", check=False)
    assert (fake / "ip_forward").read_text() == "0\n", result
    assert result.returncode == 0 or "inside /proc is not allowed" in result.stderr, result


# --- CVE-2024-45310 / CVE-2021-30465: a racing symlink on the way to a mount destination -------

def test_cve_2024_45310_a_racing_symlink_never_makes_the_runtime_create_or_mount_outside(
        runtime, bundle, tmp_path):
    """While containers are created, a thread of the test flips a directory of the rootfs on
    the way to a mount destination between a real directory and a symlink to a host directory.
    Whatever the timing, nothing is ever created in (or mounted on) that host directory."""
    import threading

    outside = tmp_path / "outside"
    outside.mkdir()

    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["mounts"].append({"destination": "/flip/deeper/mnt", "type": "tmpfs",
                                 "source": "tmpfs"})

    b = bundle("true", edit=edit)
    flip = b / "rootfs/flip"
    stop = threading.Event()

    def flipper() -> None:
        import shutil

        while not stop.is_set():
            try:
                if flip.is_symlink():
                    flip.unlink()
                    flip.mkdir()
                else:
                    shutil.rmtree(flip, ignore_errors=True)
                    flip.symlink_to(outside)
            except OSError:
                pass

    thread = threading.Thread(target=flipper)
    thread.start()
    try:
        for i in range(15):
            runtime("run", "-b", str(b), f"race{i}", check=False)
    finally:
        stop.set()
        thread.join()
    assert list(outside.iterdir()) == [], "the runtime created files outside the rootfs"


# --- a /dev (or a /dev entry) that is a symlink in the image -----------------------------------

@pytest.mark.parametrize("link", ["absolute", "relative-climbing"])
def test_a_dev_symlink_in_the_image_never_makes_the_runtime_write_outside(runtime, bundle,
                                                                         tmp_path, link):
    """The image's /dev points at a host directory (absolutely, or climbing with ..): the /dev
    tmpfs, the device nodes and the /dev/pts, /dev/shm, /dev/mqueue mounts all land inside the
    rootfs (symlinks resolve inside it), never in the host directory."""
    host_dir = tmp_path / "host-dev"
    host_dir.mkdir()
    b = bundle("sh", "-c", "ls /dev/null /dev/pts /dev/shm >/dev/null && echo ok")
    dev = b / "rootfs/dev"
    if dev.exists() and not dev.is_symlink():
        import shutil

        shutil.rmtree(dev)
    target = str(host_dir) if link == "absolute" else "../../../../../../../.." + str(host_dir)
    dev.symlink_to(target)
    result = runtime("run", "-b", str(b), f"devlink-{link}", check=False)
    assert list(host_dir.iterdir()) == [], result
    assert result.returncode == 0 or result.stderr.count("\n") == 1, result
