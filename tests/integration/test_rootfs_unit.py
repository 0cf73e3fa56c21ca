"""pyrunc.rootfs and pyrunc.devices against the real kernel, as root.

Each test forks a child that unshares a private mount namespace (and, where a test says so, a user
or cgroup namespace) and runs the rootfs steps there; the child reports what it saw as JSON through
a pipe and exits. Mounts therefore never exist in the host's namespace, and the temporary bundle is
removed after the module.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pyrunc import rootfs as rootfs_mod
from pyrunc.linux.consts import (
    CLONE_NEWCGROUP,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    MS_PRIVATE,
    MS_REC,
    MS_SHARED,
)
from pyrunc.linux.syscalls import KernelError, mount, unshare
from pyrunc.rootfs import (
    enter_rootfs,
    finish_rootfs,
    mount_entry,
    parse_mountinfo,
    prepare_rootfs,
)
from pyrunc.spec.model import Config, Mount

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount namespaces)"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="needs busybox-static"),
]

HOST_CGROUP_V1 = os.path.isdir("/sys/fs/cgroup/memory") and \
    not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


# --- harness ----------------------------------------------------------------------------------------

def _run_in_child(fn: Callable[[], Any], *, flags: int = CLONE_NEWNS, userns: bool = False,
                  cwd: str | None = None) -> Any:
    """Run `fn` in a forked child inside fresh namespaces; return its JSON result or re-raise."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        result: dict[str, Any]
        try:
            os.close(r)
            if userns:
                unshare(flags | CLONE_NEWUSER)
                _map_root_to_root()
            else:
                unshare(flags)
            # Nothing done below may reach the host, even where "/" is a shared mount.
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            if cwd:
                os.chdir(cwd)
            result = {"ok": True, "value": fn()}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = {"ok": False, "type": type(exc).__name__, "message": str(exc),
                      "errno": getattr(exc, "errno", None), "trace": traceback.format_exc()}
        try:
            data = json.dumps(result, default=str).encode()
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        chunks.append(f.read())
    os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b'{"ok": false, "type": "", "message": "no result"}')
    if not result["ok"]:
        raise ChildFailed(result)
    return result["value"]


class ChildFailed(AssertionError):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(f"{result.get('type')}: {result.get('message')}\n{result.get('trace', '')}")
        self.errno = result.get("errno")
        self.message = result.get("message", "")


def _map_root_to_root() -> None:
    """In a new user namespace, map uid/gid 0 to the host's 0 (we are root on the host)."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write("0 0 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write("0 0 1")


@pytest.fixture(scope="module")
def bundle() -> Iterator[str]:
    """A bundle directory with a busybox rootfs; removed afterwards."""
    path = tempfile.mkdtemp(prefix="pyrunc-rootfs-test-")
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture()
def rootfs(bundle: str) -> Iterator[str]:
    root = os.path.join(bundle, "rootfs")
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    with open(os.path.join(root, "etc", "hostname"), "w") as f:
        f.write("image\n")
    try:
        yield root
    finally:
        shutil.rmtree(root)


DEFAULT_MOUNTS: list[dict[str, Any]] = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
]


def make_config(bundle: str, *, mounts: list[dict[str, Any]] | None = None,
                namespaces: tuple[str, ...] = ("mount",), **linux: Any) -> Config:
    doc: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": linux.pop("root_readonly", False)},
        "process": {"args": ["/bin/busybox", "true"], "cwd": linux.pop("cwd", "/"),
                    "user": {"uid": 0, "gid": 0}},
        "mounts": DEFAULT_MOUNTS if mounts is None else mounts,
        "linux": {"namespaces": [{"type": t} for t in namespaces], **linux},
    }
    return Config.from_json(doc, bundle)


def _mounts_by_point(text: str) -> dict[str, Any]:
    return {mi.mount_point: mi for mi in parse_mountinfo(text)}


def _mountinfo_lines() -> dict[str, dict[str, Any]]:
    """The current mount table as {mount point: fields}, for returning through JSON."""
    with open("/proc/self/mountinfo") as f:
        return {mi.mount_point: {"root": mi.root, "fstype": mi.fstype, "source": mi.source,
                                 "options": mi_opts(line), "super": list(mi.super_options)}
                for line in f for mi in parse_mountinfo(line)}


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def mi_opts(line: str) -> list[str]:
    return line.split(" ")[5].split(",")


def _describe(path: str) -> dict[str, Any]:
    st = os.lstat(path)
    info: dict[str, Any] = {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                            "kind": stat.S_IFMT(st.st_mode)}
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info["dev"] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
    if stat.S_ISLNK(st.st_mode):
        info["target"] = os.readlink(path)
    return info


def _writable(path: str) -> str:
    """"ok", or the errno name a write under `path` fails with."""
    try:
        with open(os.path.join(path, ".pyrunc-probe"), "w"):
            pass
        os.unlink(os.path.join(path, ".pyrunc-probe"))
        return "ok"
    except OSError as exc:
        return errno.errorcode[exc.errno or 0]


# --- the whole sequence -------------------------------------------------------------------------------

def test_default_mounts_devices_and_pivot_give_the_container_its_own_tree(
        bundle: str, rootfs: str) -> None:
    config = make_config(
        bundle,
        maskedPaths=["/proc/kcore", "/proc/keys", "/proc/acpi", "/proc/does-not-exist"],
        readonlyPaths=["/proc/sys", "/proc/bus", "/proc/does-not-exist"],
        devices=[{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600,
                  "uid": 1000, "gid": 1000},
                 {"path": "/dev/myfifo", "type": "p"}],
    )

    def inside() -> dict[str, Any]:
        prepare_rootfs(config)
        enter_rootfs(config, no_pivot=False)
        finish_rootfs(config)
        return {
            "cwd": os.getcwd(),
            "mounts": _mountinfo_lines(),
            "dev": {name: _describe("/dev/" + name) for name in os.listdir("/dev")},
            "busybox": os.path.exists("/bin/busybox"),
            "bundle_visible": os.path.exists(bundle),
            "sys_writable": _writable("/sys/fs/cgroup"),
            "keys": _describe("/proc/keys"),
            "cgroup_dirs": sorted(os.listdir("/sys/fs/cgroup")),
        }

    seen = _run_in_child(inside)
    assert seen["cwd"] == "/"
    assert seen["busybox"] and not seen["bundle_visible"]
    mounts = seen["mounts"]
    # The old root is gone: "/" is the rootfs and nothing outside it is mounted.
    assert all(p == "/" or p.startswith("/") and not p.startswith(bundle) for p in mounts)
    assert mounts["/"]["root"].endswith("/rootfs")
    assert mounts["/proc"]["fstype"] == "proc"
    assert mounts["/dev"]["fstype"] == "tmpfs" and "nosuid" in mounts["/dev"]["options"]
    assert "mode=755" in mounts["/dev"]["super"] and "size=65536k" in mounts["/dev"]["super"]
    assert mounts["/dev/pts"]["fstype"] == "devpts" and "ptmxmode=666" in mounts["/dev/pts"]["super"]
    assert {"nosuid", "nodev", "noexec"} <= set(mounts["/dev/shm"]["options"])
    assert mounts["/dev/mqueue"]["fstype"] == "mqueue"
    assert mounts["/sys"]["fstype"] == "sysfs" and "ro" in mounts["/sys"]["options"]
    # readonlyPaths: bound onto themselves and read-only; missing ones ignored.
    assert "ro" in mounts["/proc/sys"]["options"] and mounts["/proc/sys"]["root"] == "/sys"
    # maskedPaths: a file gets /dev/null, a directory a read-only tmpfs.
    assert seen["keys"]["dev"] == [1, 3]
    assert mounts["/proc/keys"]["root"] == "/null"
    if os.path.isdir("/proc/acpi"):
        assert mounts["/proc/acpi"]["fstype"] == "tmpfs" and "ro" in mounts["/proc/acpi"]["options"]
    assert "/proc/does-not-exist" not in mounts
    # Devices: the defaults, the config's own with its mode and owner, the symlinks.
    dev = seen["dev"]
    for name, nums in {"null": [1, 3], "zero": [1, 5], "full": [1, 7], "random": [1, 8],
                       "urandom": [1, 9], "tty": [5, 0]}.items():
        assert dev[name]["dev"] == nums and dev[name]["mode"] == 0o666, name
    assert dev["mynull"]["mode"] == 0o600 and dev["mynull"]["uid"] == 1000
    assert dev["myfifo"]["kind"] == stat.S_IFIFO
    assert dev["ptmx"]["target"] == "pts/ptmx"
    assert dev["fd"]["target"] == "/proc/self/fd"
    assert dev["stdin"]["target"] == "/proc/self/fd/0"
    assert dev["stderr"]["target"] == "/proc/self/fd/2"
    assert ("core" in dev) == os.path.exists("/proc/kcore")
    # cgroup: read-only and holding the host's hierarchies.
    assert mounts["/sys/fs/cgroup"]["fstype"] in ("tmpfs", "cgroup2")
    assert "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert seen["sys_writable"] == "EROFS"
    if HOST_CGROUP_V1:
        assert "memory" in seen["cgroup_dirs"]
        mem = mounts["/sys/fs/cgroup/memory"]
        own = dict(line.split(":", 2)[1:] for line in _read("/proc/self/cgroup").split())
        assert mem["fstype"] == "cgroup" and mem["root"] == own["memory"]
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(mem["options"])
        if os.path.ismount("/sys/fs/cgroup/unified"):
            assert mounts["/sys/fs/cgroup/unified"]["fstype"] == "cgroup2"


def test_no_pivot_moves_the_rootfs_onto_slash_and_chroots(bundle: str, rootfs: str) -> None:
    config = make_config(bundle, mounts=[{"destination": "/proc", "type": "proc", "source": "proc"}])

    def inside() -> dict[str, Any]:
        prepare_rootfs(config)
        enter_rootfs(config, no_pivot=True)
        finish_rootfs(config)
        return {"cwd": os.getcwd(), "hostname": _read("/etc/hostname"),
                "mounts": _mountinfo_lines()}

    seen = _run_in_child(inside)
    assert seen["cwd"] == "/" and seen["hostname"] == "image\n"
    assert seen["mounts"]["/proc"]["fstype"] == "proc"


def test_readonly_root_keeps_its_other_flags(bundle: str, rootfs: str) -> None:
    config = make_config(bundle, root_readonly=True,
                         mounts=[{"destination": "/proc", "type": "proc", "source": "proc"},
                                 {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}])

    def inside() -> dict[str, Any]:
        prepare_rootfs(config)
        enter_rootfs(config, no_pivot=False)
        finish_rootfs(config)
        return {"root": _writable("/"), "tmp": _writable("/tmp"), "mounts": _mountinfo_lines()}

    seen = _run_in_child(inside)
    assert seen["root"] == "EROFS" and seen["tmp"] == "ok"
    assert "ro" in seen["mounts"]["/"]["options"]


# --- bind mounts ---------------------------------------------------------------------------------------

def test_bind_mounts_of_files_and_dirs_with_relative_sources_and_flags(
        bundle: str, rootfs: str) -> None:
    os.makedirs(os.path.join(bundle, "data"), exist_ok=True)
    with open(os.path.join(bundle, "data", "f"), "w") as f:
        f.write("hello")
    with open(os.path.join(bundle, "single"), "w") as f:
        f.write("one file")
    config = make_config(bundle, mounts=[
        {"destination": "/mnt/data", "type": "bind", "source": "data",
         "options": ["rbind", "ro", "nosuid", "nodev"]},
        {"destination": "/etc/single", "source": "single", "options": ["bind", "rprivate"]},
    ])

    def inside() -> dict[str, Any]:
        prepare_rootfs(config)
        enter_rootfs(config, no_pivot=False)
        return {"content": _read("/mnt/data/f"), "single": _read("/etc/single"),
                "data_writable": _writable("/mnt/data"), "is_file": os.path.isfile("/etc/single")}

    seen = _run_in_child(inside, cwd=bundle)
    assert seen == {"content": "hello", "single": "one file", "data_writable": "EROFS",
                    "is_file": True}
    # Mount points were created in the image, the host's files are untouched.
    assert os.path.isdir(os.path.join(rootfs, "mnt", "data"))
    assert os.path.isfile(os.path.join(rootfs, "etc", "single"))


def test_recursive_readonly_reaches_submounts(bundle: str, rootfs: str) -> None:
    src = os.path.join(bundle, "tree")
    os.makedirs(os.path.join(src, "sub"), exist_ok=True)

    def inside() -> dict[str, Any]:
        mount("tmpfs", os.path.join(src, "sub"), "tmpfs")  # in the child's namespace only
        config = make_config(bundle, mounts=[
            {"destination": "/tree", "type": "bind", "source": src, "options": ["rbind", "rro"]},
        ])
        prepare_rootfs(config)
        root = config.root_path
        return {"top": _writable(root + "/tree"), "sub": _writable(root + "/tree/sub")}

    assert _run_in_child(inside) == {"top": "EROFS", "sub": "EROFS"}


def test_symlink_in_the_image_cannot_send_a_mount_outside_the_rootfs(
        bundle: str, rootfs: str) -> None:
    outside = tempfile.mkdtemp(prefix="pyrunc-outside-")
    try:
        os.symlink(outside, os.path.join(rootfs, "evil"))
        os.symlink("../../../../../../../" + outside, os.path.join(rootfs, "evil2"))
        config = make_config(bundle, mounts=[
            {"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/evil2/y", "type": "tmpfs", "source": "tmpfs"},
        ])

        def inside() -> list[str]:
            prepare_rootfs(config)
            return sorted(os.listdir(outside))

        assert _run_in_child(inside) == []
        assert os.listdir(outside) == []
        assert os.path.isdir(os.path.join(rootfs, outside.lstrip("/"), "x"))
        assert os.path.isdir(os.path.join(rootfs, outside.lstrip("/"), "y"))
    finally:
        shutil.rmtree(outside)


# --- delayed read-only, copy-up ------------------------------------------------------------------------

def test_readonly_tmpfs_stays_writable_until_finish_so_mounts_below_it_work(
        bundle: str, rootfs: str) -> None:
    os.makedirs(os.path.join(bundle, "vol"), exist_ok=True)
    config = make_config(bundle, mounts=[
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "nosuid"]},
        {"destination": "/run/vol", "type": "bind", "source": os.path.join(bundle, "vol"),
         "options": ["bind"]},
    ])

    def inside() -> dict[str, Any]:
        prepare_rootfs(config)
        enter_rootfs(config, no_pivot=False)
        before = _writable("/run")
        finish_rootfs(config)
        return {"before": before, "after": _writable("/run"), "vol": _writable("/run/vol"),
                "options": _mountinfo_lines()["/run"]["options"]}

    seen = _run_in_child(inside)
    assert seen["before"] == "ok" and seen["after"] == "EROFS" and seen["vol"] == "ok"
    assert {"ro", "nosuid"} <= set(seen["options"])


def test_tmpfs_takes_the_mode_of_the_directory_it_covers_and_tmpcopyup_keeps_content(
        bundle: str, rootfs: str) -> None:
    os.makedirs(os.path.join(rootfs, "srv", "content"), exist_ok=True)
    os.chmod(os.path.join(rootfs, "srv"), 0o711)
    with open(os.path.join(rootfs, "srv", "content", "a"), "w") as f:
        f.write("kept")
    config = make_config(bundle, mounts=[
        {"destination": "/srv", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]},
    ])

    def inside() -> dict[str, Any]:
        prepare_rootfs(config)
        srv = os.path.join(config.root_path, "srv")
        return {"mode": stat.S_IMODE(os.stat(srv).st_mode),
                "a": _read(os.path.join(srv, "content", "a")),
                "fstype": _mountinfo_lines()[srv]["fstype"]}

    assert _run_in_child(inside) == {"mode": 0o711, "a": "kept", "fstype": "tmpfs"}


def test_tmpcopyup_works_when_propagation_is_shared(bundle: str, rootfs: str) -> None:
    """MS_MOVE refuses a mount under a shared parent: the staging tmpfs sits on a private bind."""
    os.makedirs(os.path.join(rootfs, "srv"), exist_ok=True)
    with open(os.path.join(rootfs, "srv", "a"), "w") as f:
        f.write("kept")
    config = make_config(bundle, rootfsPropagation="rshared", mounts=[
        {"destination": "/srv", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]},
    ])

    def inside() -> str:
        # As on a systemd host: the temporary directory is a shared mount of its own (all in
        # the child's private mount namespace).
        shared_tmp = tempfile.mkdtemp()
        mount("tmpfs", shared_tmp, "tmpfs")
        mount(None, shared_tmp, None, MS_SHARED)
        tempfile.tempdir = shared_tmp
        prepare_rootfs(config)
        return _read(os.path.join(config.root_path, "srv", "a"))

    assert _run_in_child(inside) == "kept"


# --- user and cgroup namespaces ------------------------------------------------------------------------

def test_in_a_user_namespace_devices_are_bound_from_the_host_and_sysfs_falls_back_to_rbind(
        bundle: str, rootfs: str) -> None:
    config = make_config(bundle, namespaces=("user", "mount"), mounts=[
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ])
    host_sys = _mounts_by_point(_read("/proc/self/mountinfo"))["/sys"]

    def inside() -> dict[str, Any]:
        prepare_rootfs(config)
        root = config.root_path
        mounts = _mountinfo_lines()
        null = os.path.join(root, "dev", "null")
        with open(null, "w") as f:
            f.write("discarded")
        return {"null": _describe(null), "null_mount": mounts.get(null),
                "sys": mounts[os.path.join(root, "sys")],
                "sys_dev": os.stat(os.path.join(root, "sys")).st_dev}

    seen = _run_in_child(inside, userns=True)
    assert seen["null"]["dev"] == [1, 3]
    assert seen["null_mount"] is not None  # a bind mount of the host's node, not a mknod
    assert seen["sys"]["fstype"] == "sysfs" and "ro" in seen["sys"]["options"]
    assert seen["sys_dev"] == os.stat("/sys").st_dev  # the host's sysfs, bound
    assert host_sys.fstype == "sysfs"


@pytest.mark.skipif(not HOST_CGROUP_V1, reason="v1/hybrid host layout")
def test_with_a_cgroup_namespace_v1_hierarchies_are_fresh_cgroup_mounts(
        bundle: str, rootfs: str) -> None:
    config = make_config(bundle, namespaces=("mount", "cgroup"), mounts=[
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime"]},
    ])

    def inside() -> dict[str, Any]:
        prepare_rootfs(config)
        base = os.path.join(config.root_path, "sys/fs/cgroup")
        mounts = _mountinfo_lines()
        return {name: mounts.get(os.path.join(base, name)) for name in os.listdir(base)}

    seen = _run_in_child(inside, flags=CLONE_NEWNS | CLONE_NEWCGROUP)
    assert seen["memory"]["fstype"] == "cgroup" and seen["memory"]["root"] == "/"
    assert "name=systemd" in seen["systemd"]["super"]
    assert "ro" not in seen["memory"]["options"]


# --- errors ----------------------------------------------------------------------------------------------

def test_a_kernel_failure_names_the_mount(bundle: str, rootfs: str) -> None:
    config = make_config(bundle, mounts=[
        {"destination": "/weird", "type": "no-such-fs", "source": "none"}])
    with pytest.raises(ChildFailed) as info:
        _run_in_child(lambda: prepare_rootfs(config))
    assert info.value.errno == errno.ENODEV
    assert "mount no-such-fs on /weird" in info.value.message


def test_idmapped_bind_without_a_runtime_builds_its_tree_itself(bundle: str, rootfs: str) -> None:
    # prepare_rootfs with no runtime to ask (no request_tree) makes the detached tree here.
    os.makedirs(os.path.join(bundle, "idsrc"))
    open(os.path.join(bundle, "idsrc", "f"), "w").close()
    os.chown(os.path.join(bundle, "idsrc", "f"), 3, 4)
    mapping = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config = make_config(bundle, mounts=[
        {"destination": "/data", "type": "bind", "source": "idsrc", "options": ["rbind", "idmap"],
         "uidMappings": mapping, "gidMappings": mapping}])

    def inside() -> list[int]:
        prepare_rootfs(config)
        st = os.stat(os.path.join(rootfs, "data", "f"))
        return [st.st_uid, st.st_gid]

    assert _run_in_child(inside, cwd=bundle) == [100003, 100004]
    assert os.stat(os.path.join(bundle, "idsrc", "f")).st_uid == 3


@pytest.mark.parametrize("dest", ["/proc/self", "/proc/sys/kernel", "/proc/../proc/1"])
def test_nothing_but_a_few_emulated_files_may_be_mounted_inside_proc(
        bundle: str, rootfs: str, dest: str) -> None:
    with pytest.raises(KernelError, match="inside /proc"):
        mount_entry(make_config(bundle), rootfs, Mount(dest, "tmpfs", "tmpfs"))


def test_proc_mount_over_a_file_is_refused(bundle: str, rootfs: str) -> None:
    os.rmdir(os.path.join(rootfs, "proc"))
    with open(os.path.join(rootfs, "proc"), "w"):
        pass
    with pytest.raises(KernelError, match="must be mounted on ordinary directory"):
        mount_entry(make_config(bundle), rootfs, Mount("/proc", "proc", "proc"))


def test_allowed_proc_file_bind_is_accepted(bundle: str, rootfs: str) -> None:
    with open(os.path.join(bundle, "fake-uptime"), "w") as f:
        f.write("1.0 1.0\n")
    config = make_config(bundle, mounts=[
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/proc/uptime", "type": "bind", "source": "fake-uptime",
         "options": ["bind", "ro"]},
    ])

    def inside() -> str:
        prepare_rootfs(config)
        return _read(os.path.join(config.root_path, "proc/uptime"))

    assert _run_in_child(inside, cwd=bundle) == "1.0 1.0\n"


def test_without_a_mount_namespace_nothing_is_mounted(bundle: str, rootfs: str) -> None:
    config = make_config(bundle, namespaces=("pid",))
    assert rootfs_mod.has_mount_namespace(config) is False

    def inside() -> bool:
        # Still in a private namespace of the test's own, in case the guard ever failed.
        before = _read("/proc/self/mountinfo")
        prepare_rootfs(config)
        after = _read("/proc/self/mountinfo")
        enter_rootfs(config, no_pivot=False)  # only chroots: the rootfs has no /proc
        return after == before and os.getcwd() == "/" and os.path.isfile("/bin/busybox")

    assert _run_in_child(inside, cwd=bundle) is True
    assert os.listdir(os.path.join(rootfs, "dev")) == []
