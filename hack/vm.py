#!/usr/bin/env python3
"""Run one command on a pure cgroup v2 Linux: a throw-away qemu guest that shares the host's files.

Some behaviour of pyrunc only exists on a host where cgroup2 is the only hierarchy (mounted at
/sys/fs/cgroup itself): the v2 cgroup driver, the cgroup2 mount inside containers, freezing through
cgroup.freeze, cgroup.kill. A development machine with a hybrid or v1 layout cannot show it. This
script boots the host's own kernel under qemu and runs a command there:

* the initramfs holds a static busybox, the kernel modules for virtio and 9p, and an /init script;
  it is built once per kernel (and per version of this script) and cached outside the repository,
  in ``$PYRUNC_VM_CACHE``, else ``$XDG_CACHE_HOME/pyrunc-vm``, else ``/var/tmp/pyrunc-vm``;
* the guest mounts the host's ``/`` read-only over 9p and, in a mount namespace of the job's own,
  moves that over ``/`` and chroots to it (as switch_root does), so the command sees the host's
  Python, virtual environment and repository exactly as they are, and nothing there is written;
  its root is its mount namespace's root, which the kernel requires of an unprivileged process
  that creates a user namespace (a plain chroot gets EPERM);
* /run, /tmp, /var/tmp and /root are fresh tmpfs, /proc, /sys and /dev are the guest's own, and
  cgroup2 is mounted at /sys/fs/cgroup (with ``nsdelegate``, as systemd mounts it) with every
  controller enabled in the root's cgroup.subtree_control; the command runs in the child cgroup
  ``/vm.scope``, not in the root cgroup;
* the command's output and exit status come back over the serial console between two marker lines
  that carry a random token; everything else on the console (the kernel, /init) is dropped unless
  the guest fails before the end marker.

The guest runs under TCG (``-accel tcg -cpu max``): no KVM needed, but code runs 10-50x slower than
on the host, so keep what runs here to the tests that need a real cgroup v2 host.

    hack/vm [--timeout SECONDS] [--repo DIR] -- COMMAND...

runs COMMAND (joined with spaces, interpreted by /bin/sh) in DIR (default: this repository) and
exits with its status; 124 when the timeout ran out, 125 when the guest failed before the command
ended. Library use: ``run_in_vm(command, repo=..., timeout=...) -> (status, output)`` and
``vm_available() -> reason | None``.
"""

from __future__ import annotations

import argparse
import ctypes
import gzip
import hashlib
import io
import os
import platform
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Bump when the initramfs layout or /init changes, so cached images are rebuilt.
IMAGE_FORMAT = 2

#: Modules the guest needs, loaded in this order after their dependencies (from modules.dep).
WANTED_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

#: Exit statuses for failures of the guest itself (as `timeout` and `env` use them).
EXIT_TIMEOUT = 124
EXIT_VM_FAILED = 125

DEFAULT_TIMEOUT = 600.0

BEGIN = "@@pyrunc-vm-begin"
END = "@@pyrunc-vm-exit"

# The guest's PID 1. The job share holds `token`, `repo` and `job.sh`; the host's root is /newroot.
INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /newroot /job /lower /rw
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "vm-init: $*"; echo 1 > /proc/sys/kernel/sysrq; reboot -f; sleep 5; echo o > /proc/sysrq-trigger; }
for m in $(cat /modules.order); do insmod "/modules/$m" || fail "insmod $m"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 host /lower || fail "mount host"
mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir /rw/upper /rw/work || fail "mount /rw"
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || fail "mount overlay"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 job /job || fail "mount job"
R=/newroot
mount -t proc proc $R/proc || fail "mount proc"
mount -t sysfs sysfs $R/sys || fail "mount sysfs"
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 $R/sys/fs/cgroup || fail "mount cgroup2"
mount -t devtmpfs devtmpfs $R/dev || fail "mount dev"
mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t mqueue mqueue $R/dev/mqueue
mount -t tmpfs -o mode=0755 tmpfs $R/run || fail "mount /run"
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || fail "mount /tmp"
mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp || fail "mount /var/tmp"
mkdir -p $R/run/pyrunc-vm
mount --bind /job $R/run/pyrunc-vm
# The repository may live under one of the fresh tmpfs mounts (a CI clone in /tmp): bring the
# host's copy back, read-only, at the same path.
REPO=$(cat /job/repo)
mkdir -p "$R$REPO" && mount --bind "/lower$REPO" "$R$REPO" || fail "bind the repository"
CG=$R/sys/fs/cgroup
for c in $(cat $CG/cgroup.controllers); do echo "+$c" > $CG/cgroup.subtree_control; done
mkdir $CG/vm.scope && echo $$ > $CG/vm.scope/cgroup.procs
echo 1 > /proc/sys/kernel/printk
T=$(cat /job/token)
echo "@@pyrunc-vm-begin $T@@"
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
    LANG=C.UTF-8 PY_COLORS=0 NO_COLOR=1 PYTHONDONTWRITEBYTECODE=1 PYRUNC_VM=1 \
    unshare -m /bin/sh -c 'cd "$0" && mount --move . / && exec chroot . /bin/sh /run/pyrunc-vm/job.sh' \
    $R < /dev/null 2>&1
rc=$?
echo "@@pyrunc-vm-exit $T $rc@@"
reboot -f
sleep 5
echo 1 > /proc/sys/kernel/sysrq; echo o > /proc/sysrq-trigger
"""


class VMUnavailable(RuntimeError):
    """This machine cannot boot the guest; the message says what is missing."""


# --- what the host provides ----------------------------------------------------------------------

def _version_key(version: str) -> list[tuple[int, str]]:
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"[.\-+~]", version)]


def kernel_root() -> Path:
    """Where the lane keeps a kernel unpacked from Debian's package (nothing is installed)."""
    return cache_dir() / "kernel"


def modules_dir(version: str) -> Path:
    """The /lib/modules/<version> of a kernel: the unpacked package's, else the host's."""
    unpacked = kernel_root() / "lib/modules" / version
    return unpacked if unpacked.is_dir() else Path("/lib/modules") / version


def find_kernel() -> tuple[Path, str] | None:
    """The newest vmlinuz-<version> with its modules: the unpacked package's or /boot's."""
    found = []
    for boot in (kernel_root() / "boot", Path("/boot")):
        for image in boot.glob("vmlinuz-*"):
            version = image.name[len("vmlinuz-"):]
            if (modules_dir(version) / "modules.dep").is_file() and os.access(image, os.R_OK):
                found.append((image, version))
    if not found:
        return None
    return max(found, key=lambda item: _version_key(item[1]))


def fetch_kernel() -> str | None:
    """Unpack Debian's generic kernel package into the lane's cache, without installing it.

    `apt-get download` fetches the package that linux-image-amd64 points at, and `dpkg-deb -x`
    unpacks it: /boot and the machine's package database stay untouched. Returns None on
    success, else why it could not (no apt, no network, not root).
    """
    if not all(shutil.which(tool) for tool in ("apt-get", "dpkg-deb", "depmod")):
        return "no apt-get, dpkg-deb or depmod to fetch and unpack a kernel package"
    depends = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True,
                             text=True)
    names = re.findall(r"Depends: (linux-image-[^\s]+)", depends.stdout)
    if depends.returncode != 0 or not names:
        return "apt-cache knows no linux-image-amd64 (run apt-get update)"
    import tempfile

    root = kernel_root()
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        got = subprocess.run(["apt-get", "download", "-q", names[0]], cwd=tmp,
                             capture_output=True, text=True)
        debs = list(Path(tmp).glob("*.deb"))
        if got.returncode != 0 or not debs:
            return f"apt-get download {names[0]} failed: {got.stderr.strip()[-300:]}"
        unpacked = Path(tmp) / "kernel"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True)
        # The package's postinst would run depmod; modules.dep is what the initramfs needs.
        for modules in (unpacked / "lib/modules").iterdir():
            subprocess.run(["depmod", "-b", str(unpacked), modules.name], check=True,
                           capture_output=True)
        if root.exists():
            shutil.rmtree(root)
        os.rename(unpacked, root)
    return None


def find_qemu() -> str | None:
    return shutil.which("qemu-system-x86_64")


def find_busybox() -> Path | None:
    """A statically linked busybox (the initramfs has no libc)."""
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if os.access(path, os.X_OK) and not _has_interp(path):
            return path
    return None


def _has_interp(path: Path) -> bool:
    """True when the ELF file has a PT_INTERP program header (it is dynamically linked)."""
    import struct
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return True
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))


def _module_deps(version: str) -> dict[str, list[str]]:
    """Module name -> [its relative path, then the relative paths of its dependencies]."""
    deps: dict[str, list[str]] = {}
    text = (modules_dir(version) / "modules.dep").read_text()
    for line in text.splitlines():
        path, _, rest = line.partition(":")
        name = Path(path).name.split(".ko")[0].replace("-", "_")
        deps[name] = [path, *rest.split()]
    return deps


def _builtin_modules(version: str) -> set[str]:
    builtin = modules_dir(version) / "modules.builtin"
    if not builtin.is_file():
        return set()
    return {Path(line).name.split(".ko")[0].replace("-", "_") for line in builtin.read_text().split()}


def module_load_order(version: str) -> list[str]:
    """Relative paths of the module files to insmod, dependencies first; raises when one is missing."""
    deps = _module_deps(version)
    by_path = {entry[0]: name for name, entry in deps.items()}
    builtin = _builtin_modules(version)
    order: list[str] = []

    def load(name: str) -> None:
        if name in builtin:
            return
        if name not in deps:
            raise VMUnavailable(f"kernel {version} has no {name} module ({modules_dir(version)}); "
                                "the lane needs Debian's generic kernel (linux-image-amd64)")
        path, *requires = deps[name]
        for dep in requires:
            load(by_path.get(dep, Path(dep).name.split(".ko")[0]))
        if path not in order:
            order.append(path)

    for wanted in WANTED_MODULES:
        load(wanted)
    return order


def vm_available() -> str | None:
    """None when run_in_vm can work here, else the reason it cannot (for pytest.skip)."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return f"the cgroup v2 VM needs an x86_64 Linux host (this is {sys.platform} {platform.machine()})"
    if find_qemu() is None:
        return "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
    kernel = find_kernel()
    if kernel is None and os.geteuid() == 0:
        why = fetch_kernel()
        if why is not None:
            return f"no kernel for the guest: {why}"
        kernel = find_kernel()
    if kernel is None:
        return "no kernel for the guest (a vmlinuz with its modules in the lane's cache or /boot)"
    if find_busybox() is None:
        return "no static busybox (apt-get install busybox-static)"
    try:
        order = module_load_order(kernel[1])
    except (VMUnavailable, OSError) as exc:
        return str(exc)
    for rel in order:
        if not (modules_dir(kernel[1]) / rel).is_file():
            return f"kernel module file missing: {modules_dir(kernel[1])}/{rel}"
    return None


# --- the initramfs -------------------------------------------------------------------------------

def cache_dir() -> Path:
    explicit = os.environ.get("PYRUNC_VM_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "pyrunc-vm"
    return Path("/var/tmp/pyrunc-vm")


class _Cpio:
    """A writer for the "newc" cpio format the kernel unpacks an initramfs from."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        encoded = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        self.ino += 1
        self.out.write(b"070701" + b"".join(b"%08X" % v for v in fields) + encoded)
        self.out.write(b"\0" * (-(110 + len(encoded)) % 4))
        self.out.write(data + b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.out.getvalue()


def build_initramfs(version: str, busybox: Path) -> bytes:
    """The gzip-compressed initramfs: busybox, the modules (flat, in load order) and /init."""
    order = module_load_order(version)
    archive = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "newroot", "job", "modules"):
        archive.directory(d)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    names = []
    for rel in order:
        data = (modules_dir(version) / rel).read_bytes()
        name = Path(rel).name
        if name.endswith(".xz"):
            import lzma
            data, name = lzma.decompress(data), name[:-3]
        elif name.endswith(".zst"):
            data, name = subprocess.run(["zstd", "-dc"], input=data, capture_output=True,
                                        check=True).stdout, name[:-4]
        elif name.endswith(".gz"):
            data, name = gzip.decompress(data), name[:-3]
        archive.file(f"modules/{name}", data)
        names.append(name)
    archive.file("modules.order", ("\n".join(names) + "\n").encode())
    archive.file("init", INIT_SCRIPT.encode(), 0o755)
    return gzip.compress(archive.finish(), compresslevel=6, mtime=0)


def initramfs(version: str) -> Path:
    """The cached initramfs for kernel `version`, built on first use (atomically)."""
    busybox = find_busybox()
    if busybox is None:
        raise VMUnavailable("no static busybox (apt-get install busybox-static)")
    st = busybox.stat()
    key = hashlib.sha256(f"{IMAGE_FORMAT}\n{INIT_SCRIPT}\n{busybox}:{st.st_size}:{st.st_mtime_ns}"
                         .encode()).hexdigest()[:12]
    path = cache_dir() / f"initramfs-{version}-{key}.gz"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    data = build_initramfs(version, busybox)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".initramfs-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    for old in path.parent.glob(f"initramfs-{version}-*.gz"):
        if old != path:
            old.unlink(missing_ok=True)
    return path


# --- running the guest ---------------------------------------------------------------------------

def _die_with_parent() -> None:
    """In the qemu child: get SIGKILL when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def qemu_command(kernel: Path, initrd: Path, job_dir: Path, *, memory_mb: int, cpus: int) -> list[str]:
    qemu = find_qemu()
    if qemu is None:
        raise VMUnavailable("qemu-system-x86_64 not found")
    return [
        qemu, "-accel", "tcg", "-cpu", "max", "-m", str(memory_mb), "-smp", str(cpus),
        "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", "console=ttyS0 quiet loglevel=3 panic=-1",
        "-virtfs", "local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={job_dir},mount_tag=job,security_model=passthrough,readonly=on",
    ]


def parse_console(console: str, token: str) -> tuple[int, str] | None:
    """(status, output) from the text between the marker lines, or None when the end is missing."""
    begin = f"{BEGIN} {token}@@\n"
    end = re.compile(rf"^{re.escape(END)} {re.escape(token)} (\d+)@@$", re.MULTILINE)
    start = console.find(begin)
    if start < 0:
        return None
    body = console[start + len(begin):]
    match = None
    for match in end.finditer(body):
        pass
    if match is None:
        return None
    return int(match.group(1)), body[:match.start()]


class _GuestFailed(Exception):
    """The guest ended (or was killed) before the command's end marker."""

    def __init__(self, status: int, console: str) -> None:
        super().__init__(status, console)
        self.status, self.console = status, console


def run_in_vm(command: str, *, repo: Path = REPO, timeout: float = DEFAULT_TIMEOUT,
              memory_mb: int = 2048, cpus: int | None = None, echo: bool = False) -> tuple[int, str]:
    """Run `command` with /bin/sh in `repo` on a fresh cgroup v2 guest; return (status, output).

    `output` is the command's stdout and stderr together. Failures of the guest itself give status
    124 (the timeout ran out) or 125 (the guest stopped before the command ended); the output then
    is the whole console, for diagnosis. With `echo`, the command's output is also copied to this
    process's stdout as it arrives. qemu is killed whatever happens.
    """
    try:
        return _run_guest(command, repo=repo, timeout=timeout, memory_mb=memory_mb, cpus=cpus,
                          echo=echo)
    except _GuestFailed as failed:
        return failed.status, failed.console


def _run_guest(command: str, *, repo: Path, timeout: float, memory_mb: int, cpus: int | None,
               echo: bool) -> tuple[int, str]:
    reason = vm_available()
    if reason is not None:
        raise VMUnavailable(reason)
    kernel, version = find_kernel()  # type: ignore[misc]
    initrd = initramfs(version)
    cpus = cpus or max(1, min(4, os.cpu_count() or 1))
    token = secrets.token_hex(8)
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix="job-") as job:
        job_dir = Path(job)
        (job_dir / "token").write_text(token + "\n")
        (job_dir / "repo").write_text(str(Path(repo).resolve()) + "\n")
        (job_dir / "job.sh").write_text(f"cd {_quote(str(Path(repo).resolve()))} || exit 126\n"
                                        f"{command}\n")
        argv = qemu_command(kernel, initrd, job_dir, memory_mb=memory_mb, cpus=cpus)
        # preexec_fn only calls prctl, which is safe even if the caller has threads.
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent)  # noqa: PLW1509
        chunks: list[bytes] = []
        timed_out = False
        try:
            markers = (f"{BEGIN} {token}@@\n".encode(), f"{END} {token} ".encode())
            timed_out = _collect(proc, chunks, time.monotonic() + timeout, markers if echo else None)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    console = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "")
    parsed = parse_console(console, token)
    if parsed is not None:
        return parsed
    if timed_out:
        raise _GuestFailed(EXIT_TIMEOUT, console + f"\n[hack/vm: timed out after {timeout:g} s]\n")
    raise _GuestFailed(EXIT_VM_FAILED,
                       console + f"\n[hack/vm: qemu exited {proc.returncode} before the command ended]\n")


def _collect(proc: subprocess.Popen[bytes], chunks: list[bytes], deadline: float,
             echo_markers: tuple[bytes, bytes] | None) -> bool:
    """Read qemu's output until it exits; True when the deadline passed first."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    echoing, seen = False, b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        if not sel.select(min(left, 1.0)):
            continue
        data = os.read(fd, 65536)
        if not data:
            return False
        chunks.append(data)
        if echo_markers is not None:
            seen, echoing = _echo(seen + data, echoing, echo_markers)


def _echo(pending: bytes, echoing: bool, markers: tuple[bytes, bytes]) -> tuple[bytes, bool]:
    """Copy complete lines between the markers to stdout; return the unfinished rest."""
    lines = pending.replace(b"\r", b"").split(b"\n")
    for line in lines[:-1]:
        if not echoing and line + b"\n" == markers[0]:
            echoing = True
        elif echoing and line.startswith(markers[1]):
            echoing = False
        elif echoing:
            sys.stdout.buffer.write(line + b"\n")
            sys.stdout.flush()
    return lines[-1], echoing


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    own, command = args, []
    if "--" in args:
        split = args.index("--")
        own, command = args[:split], args[split + 1:]
    parser = argparse.ArgumentParser(
        prog="hack/vm",
        description="Run a command on a pure cgroup v2 guest (qemu TCG, the host's kernel, the "
                    "host's files read-only over 9p).",
        epilog="Exit status: the command's; 124 on timeout; 125 when the guest failed; "
               "2 when this machine cannot run the guest.")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds before qemu is killed (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--repo", type=Path, default=REPO, help="directory the command runs in")
    parser.add_argument("--memory", type=int, default=2048, help="guest memory in MiB")
    parser.add_argument("--check", action="store_true",
                        help="only say whether this machine can run the guest")
    ns = parser.parse_args(own)
    reason = vm_available()
    if ns.check:
        print(reason or "ok")
        return 0 if reason is None else 2
    if not command:
        parser.error("nothing to run: give a command after --")
    if reason is not None:
        print(f"hack/vm: {reason}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        status, _ = _run_guest(" ".join(command), repo=ns.repo, timeout=ns.timeout,
                               memory_mb=ns.memory, cpus=None, echo=True)
    except _GuestFailed as failed:
        sys.stdout.write(failed.console)
        status = failed.status
    print(f"hack/vm: exit {status} after {time.monotonic() - started:.1f} s", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
