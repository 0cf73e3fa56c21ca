"""The container's filesystem view, read from inside: its mountinfo, its /dev, its files.

Each test runs a busybox container whose program prints /proc/self/mountinfo (or looks at files),
and checks the mounts the process really has: flags, filesystem types, propagation, device nodes.
Nothing here mounts anything on the host; the host side is only checked to be untouched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyrunc_testing import host_mounts_mentioning, needs_root

pytestmark = [needs_root, pytest.mark.integration]


@dataclass(frozen=True)
class Mount:
    mount_point: str
    root: str
    options: frozenset[str]       # per-mount options (ro, nosuid, ...)
    optional: tuple[str, ...]     # propagation: shared:N, master:N, ...
    fstype: str
    super_options: frozenset[str]


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        mounts.append(Mount(
            mount_point=fields[4].replace("\\040", " "), root=fields[3],
            options=frozenset(fields[5].split(",")), optional=tuple(fields[6:sep]),
            fstype=fields[sep + 1], super_options=frozenset(fields[sep + 3].split(","))))
    return mounts


def mount_at(mounts: list[Mount], point: str) -> Mount:
    """The top mount at `point` (the last one listed there)."""
    found = [m for m in mounts if m.mount_point == point]
    assert found, f"nothing mounted at {point}: {[m.mount_point for m in mounts]}"
    return found[-1]


def run_out(runtime, bundle, *args: str, edit=None, cid: str = "r",
            run_args: tuple[str, ...] = ()) -> str:
    b = bundle(*args, edit=edit)
    return runtime("run", *run_args, "-b", str(b), cid).stdout


def container_mounts(runtime, bundle, edit=None, run_args: tuple[str, ...] = ()) -> list[Mount]:
    return parse_mountinfo(run_out(runtime, bundle, "cat", "/proc/self/mountinfo", edit=edit,
                                   run_args=run_args))


def add_mounts(*mounts: dict, **root):
    def edit(config: dict) -> None:
        config["mounts"].extend(mounts)
        config["root"].update(root)
    return edit


# --- root, maskedPaths, readonlyPaths ------------------------------------------------------------

def test_root_is_read_only_when_root_readonly(runtime, bundle):
    out = run_out(runtime, bundle, "sh", "-c",
                  "cat /proc/self/mountinfo; touch /x 2>/dev/null && echo WROTE || echo REFUSED")
    assert "ro" in mount_at(parse_mountinfo(out), "/").options
    assert out.splitlines()[-1] == "REFUSED"


def test_root_is_writable_when_not_readonly(runtime, bundle):
    b = bundle("sh", "-c", "cat /proc/self/mountinfo; touch /x && echo WROTE",
               edit=lambda c: c["root"].update(readonly=False))
    out = runtime("run", "-b", str(b), "rw").stdout
    assert "rw" in mount_at(parse_mountinfo(out), "/").options
    assert out.splitlines()[-1] == "WROTE"
    assert (b / "rootfs/x").exists()


def _existing_proc_file() -> str:
    """A /proc file masked by default that exists here (/proc/kcore needs CONFIG_PROC_KCORE)."""
    for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"):
        if Path(path).is_file():
            return path
    pytest.skip("none of the default masked /proc files exists here")


def test_masked_file_is_dev_null_and_masked_directory_is_an_empty_read_only_tmpfs(
        runtime, bundle):
    proc_file = _existing_proc_file()

    def edit(config: dict) -> None:
        config["linux"]["maskedPaths"] = [proc_file, "/proc/acpi", "/etc/hostname", "/secret",
                                          "/does-not-exist"]

    b = bundle("sh", "-c", f"cat /proc/self/mountinfo; echo ==; stat -c '%F %t:%T' {proc_file} "
                           "/etc/hostname; cat /etc/hostname | wc -c; ls -A /secret | wc -l; "
                           "touch /secret/x 2>/dev/null || echo REFUSED",
               edit=edit)
    (b / "rootfs/secret").mkdir()
    (b / "rootfs/secret/file").write_text("hidden")
    out = runtime("run", "-b", str(b), "mask").stdout
    info, rest = out.split("==\n")
    mounts = parse_mountinfo(info)
    for masked_file in (proc_file, "/etc/hostname"):
        # A bind of the container's /dev/null: the root of the mount is the node on /dev's tmpfs.
        assert mount_at(mounts, masked_file).root == "/null", masked_file
    secret = mount_at(mounts, "/secret")
    assert secret.fstype == "tmpfs" and "ro" in secret.options
    assert rest.splitlines() == ["character special file 1:3", "character special file 1:3",
                                 "0", "0", "REFUSED"]
    if Path("/proc/acpi").is_dir():
        acpi = mount_at(mounts, "/proc/acpi")
        assert acpi.fstype == "tmpfs" and "ro" in acpi.options
    assert not any(m.mount_point == "/does-not-exist" for m in mounts)
    assert (b / "rootfs/secret/file").read_text() == "hidden"


def test_readonly_paths_are_read_only_bind_mounts(runtime, bundle):
    def edit(config: dict) -> None:
        config["root"]["readonly"] = False
        config["linux"]["readonlyPaths"] = ["/proc/sys", "/data"]

    b = bundle("sh", "-c", "cat /proc/self/mountinfo; echo ==; cat /data/f; "
                           "echo 1 >/data/f 2>/dev/null || echo REFUSED-DATA; "
                           "echo 1 >/proc/sys/kernel/shmmax 2>/dev/null || echo REFUSED-SYS",
               edit=edit)
    (b / "rootfs/data").mkdir()
    (b / "rootfs/data/f").write_text("kept\n")
    out = runtime("run", "-b", str(b), "ro").stdout
    info, rest = out.split("==\n")
    mounts = parse_mountinfo(info)
    assert "ro" in mount_at(mounts, "/proc/sys").options
    assert "ro" in mount_at(mounts, "/data").options
    assert "rw" in mount_at(mounts, "/").options
    assert rest.splitlines() == ["kept", "REFUSED-DATA", "REFUSED-SYS"]


# --- bind mounts and tmpfs -----------------------------------------------------------------------

def test_bind_mount_with_ro_and_nosuid(runtime, bundle, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("from the host\n")
    edit = add_mounts({"destination": "/mnt/b", "type": "bind", "source": str(src),
                       "options": ["bind", "ro", "nosuid"]})
    out = run_out(runtime, bundle, "sh", "-c",
                  "cat /proc/self/mountinfo; echo ==; cat /mnt/b/hello; "
                  "touch /mnt/b/new 2>/dev/null || echo REFUSED", edit=edit)
    info, rest = out.split("==\n")
    b = mount_at(parse_mountinfo(info), "/mnt/b")
    assert {"ro", "nosuid"} <= b.options
    assert rest.splitlines() == ["from the host", "REFUSED"]
    assert sorted(os.listdir(src)) == ["hello"]


def test_file_bind_mount_onto_a_missing_file_creates_it_inside_the_rootfs(runtime, bundle,
                                                                           tmp_path):
    src = tmp_path / "single"
    src.write_text("one file\n")
    edit = add_mounts({"destination": "/etc/single.conf", "type": "bind", "source": str(src),
                       "options": ["bind", "ro"]})
    assert run_out(runtime, bundle, "cat", "/etc/single.conf", edit=edit) == "one file\n"


def test_rbind_with_rro_makes_submounts_read_only_too(runtime, bundle, tmp_path):
    # The submount is a tmpfs the config itself puts under the first bind mount; the rbind's
    # source is that directory as the container's mount namespace sees it before pivot_root.
    src = tmp_path / "src"
    src.mkdir()
    (src / "sub").mkdir()

    def edit(config: dict) -> None:
        config["mounts"] += [
            {"destination": "/a", "type": "bind", "source": str(src), "options": ["bind"]},
            {"destination": "/a/sub", "type": "tmpfs", "source": "tmpfs", "options": []},
        ]

    b = bundle("sh", "-c", "cat /proc/self/mountinfo; echo ==; "
                           "touch /a/sub/ok && echo A-SUB-WRITABLE; "
                           "touch /r/x 2>/dev/null || echo R-REFUSED; "
                           "touch /r/sub/x 2>/dev/null || echo R-SUB-REFUSED",
               edit=edit)
    config_path = b / "config.json"
    config = json.loads(config_path.read_text())
    config["mounts"].append({"destination": "/r", "type": "bind", "source": str(b / "rootfs/a"),
                             "options": ["rbind", "rro"]})
    config_path.write_text(json.dumps(config))
    out = runtime("run", "-b", str(b), "rro").stdout
    info, rest = out.split("==\n")
    mounts = parse_mountinfo(info)
    assert "rw" in mount_at(mounts, "/a/sub").options
    assert "ro" in mount_at(mounts, "/r").options
    sub = mount_at(mounts, "/r/sub")
    assert sub.fstype == "tmpfs" and "ro" in sub.options
    assert rest.splitlines() == ["A-SUB-WRITABLE", "R-REFUSED", "R-SUB-REFUSED"]
    assert os.listdir(src / "sub") == []


def test_tmpfs_with_mode_and_size(runtime, bundle):
    edit = add_mounts({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "mode=1750", "size=1m"]})
    out = run_out(runtime, bundle, "sh", "-c",
                  "cat /proc/self/mountinfo; echo ==; stat -c %a /scratch", edit=edit)
    info, rest = out.split("==\n")
    scratch = mount_at(parse_mountinfo(info), "/scratch")
    assert scratch.fstype == "tmpfs"
    assert {"nosuid", "nodev"} <= scratch.options
    assert {"size=1024k", "mode=1750"} <= scratch.super_options
    assert rest.strip() == "1750"


def test_tmpfs_ro_is_read_only_after_setup(runtime, bundle):
    edit = add_mounts({"destination": "/ro-tmp", "type": "tmpfs", "source": "tmpfs",
                       "options": ["ro"]})
    out = run_out(runtime, bundle, "sh", "-c",
                  "cat /proc/self/mountinfo; touch /ro-tmp/x 2>/dev/null || echo REFUSED",
                  edit=edit)
    assert "ro" in mount_at(parse_mountinfo(out), "/ro-tmp").options
    assert out.splitlines()[-1] == "REFUSED"


# --- pivot_root, propagation ---------------------------------------------------------------------

def test_no_pivot_runs_the_container_in_its_rootfs(runtime, bundle):
    b = bundle("sh", "-c", "cat /marker; cat /proc/self/mountinfo")
    (b / "rootfs/marker").write_text("inside the rootfs\n")
    out = runtime("run", "--no-pivot", "-b", str(b), "np").stdout
    assert out.splitlines()[0] == "inside the rootfs"
    mounts = parse_mountinfo(out)
    assert "ro" in mount_at(mounts, "/").options
    assert mount_at(mounts, "/proc").fstype == "proc"
    # The host's tree is not reachable: nothing in mountinfo names the bundle's host path.
    assert not any(str(b) in m.mount_point for m in mounts)


def _propagation(mount: Mount) -> set[str]:
    return {f.split(":")[0] for f in mount.optional}


def test_rootfs_propagation_private_shows_no_peer_group(runtime, bundle):
    mounts = container_mounts(runtime, bundle,
                              edit=lambda c: c["linux"].update(rootfsPropagation="private"))
    assert _propagation(mount_at(mounts, "/")) == set()


def test_rootfs_propagation_shared_makes_root_a_peer_group(runtime, bundle):
    mounts = container_mounts(runtime, bundle,
                              edit=lambda c: c["linux"].update(rootfsPropagation="shared"))
    assert "shared" in _propagation(mount_at(mounts, "/"))


def _host_mount_of(path: Path) -> Mount:
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    best = None
    for m in mounts:
        if str(path) == m.mount_point or str(path).startswith(m.mount_point.rstrip("/") + "/"):
            if best is None or len(m.mount_point) >= len(best.mount_point):
                best = m
    assert best is not None
    return best


def test_rootfs_propagation_rslave_is_never_shared_and_follows_a_shared_host(runtime, bundle,
                                                                            tmp_path):
    mounts = container_mounts(runtime, bundle,
                              edit=lambda c: c["linux"].update(rootfsPropagation="rslave"))
    root = _propagation(mount_at(mounts, "/"))
    assert "shared" not in root
    # A slave needs a master: only when the host's mount holding the bundle is shared.
    host_shared = "shared" in _propagation(_host_mount_of(tmp_path))
    assert ("master" in root) == host_shared


# --- devices -------------------------------------------------------------------------------------

def test_linux_devices_are_created_with_major_minor_mode_and_owner(runtime, bundle):
    def edit(config: dict) -> None:
        config["linux"]["devices"] = [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666},
            {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
             "uid": 1000, "gid": 1000},
            {"path": "/dev/sub/dir/mynull2", "type": "c", "major": 1, "minor": 3},
        ]

    out = run_out(runtime, bundle, "stat", "-c", "%n %F %t:%T %a %u:%g",
                  "/dev/fuse", "/dev/mynull", "/dev/sub/dir/mynull2", edit=edit)
    lines = out.splitlines()
    assert lines[0] == "/dev/fuse character special file a:e5 666 0:0"
    assert lines[1] == "/dev/mynull character special file 1:3 640 1000:1000"
    assert lines[2].startswith("/dev/sub/dir/mynull2 character special file 1:3 ")


def test_dev_has_the_default_devices_and_symlinks(runtime, bundle):
    script = ("for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; "
              "done; for l in fd stdin stdout stderr ptmx; do echo /dev/$l $(readlink /dev/$l); "
              "done; test -d /dev/pts && test -d /dev/shm && test -d /dev/mqueue && echo DIRS")
    lines = run_out(runtime, bundle, "sh", "-c", script).splitlines()
    assert lines[:6] == [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
    ]
    assert lines[6:11] == ["/dev/fd /proc/self/fd", "/dev/stdin /proc/self/fd/0",
                           "/dev/stdout /proc/self/fd/1", "/dev/stderr /proc/self/fd/2",
                           "/dev/ptmx pts/ptmx"]
    assert lines[11] == "DIRS"


# --- sysctl --------------------------------------------------------------------------------------

def test_sysctls_are_written_in_the_containers_namespaces_only(runtime, bundle):
    host_shmmax = Path("/proc/sys/kernel/shmmax").read_text()
    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    wanted_forward = "0" if host_forward.strip() == "1" else "1"

    def edit(config: dict) -> None:
        config["linux"]["sysctl"] = {"kernel.shmmax": "65536",
                                     "net.ipv4.ip_forward": wanted_forward}

    out = run_out(runtime, bundle, "cat", "/proc/sys/kernel/shmmax",
                  "/proc/sys/net/ipv4/ip_forward", edit=edit)
    assert out.splitlines() == ["65536", wanted_forward]
    assert Path("/proc/sys/kernel/shmmax").read_text() == host_shmmax
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward


def _without_namespace(ns_type: str):
    def edit(config: dict) -> None:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                         if ns["type"] != ns_type]
    return edit


# Each value is the host's current one, so a runtime that wrongly writes it changes nothing.
@pytest.mark.parametrize("key,without", [("kernel.shmmax", "ipc"),
                                         ("vm.overcommit_memory", None)])
def test_sysctl_that_would_change_the_host_is_refused(runtime, bundle, key, without):
    path = Path("/proc/sys") / key.replace(".", "/")
    host_value = path.read_text()

    def edit(config: dict) -> None:
        if without is not None:
            _without_namespace(without)(config)
        config["linux"]["sysctl"] = {key: host_value.strip()}

    result = runtime("create", "-b", str(bundle("true", edit=edit)), "sx", check=False)
    assert path.read_text() == host_value
    if result.returncode == 0:
        runtime("delete", "--force", "sx")
    assert result.returncode == 1 and key in result.stderr, result.stderr
    assert not (runtime.root / "sx").exists()


def test_net_sysctl_without_a_network_namespace_is_refused(runtime, bundle):
    host_value = Path("/proc/sys/net/ipv4/ip_forward").read_text()

    def edit(config: dict) -> None:
        _without_namespace("network")(config)
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": host_value.strip()}

    result = runtime("create", "-b", str(bundle("true", edit=edit)), "sn", check=False)
    assert result.returncode == 1 and "net.ipv4.ip_forward" in result.stderr
    assert not (runtime.root / "sn").exists()


# --- symlinks in the image -----------------------------------------------------------------------

def test_mount_through_a_symlink_pointing_outside_lands_inside_the_rootfs(runtime, bundle,
                                                                          tmp_path):
    host_dir = tmp_path / "host-dir"
    host_dir2 = tmp_path / "host-dir2"
    for d in (host_dir, host_dir2):
        d.mkdir()
        (d / "untouched").write_text("host\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "payload").write_text("mounted\n")
    edit = add_mounts(
        {"destination": "/evil", "type": "bind", "source": str(src), "options": ["bind"]},
        {"destination": "/evil2/t", "type": "tmpfs", "source": "tmpfs", "options": []},
        readonly=False)
    b = bundle("sh", "-c", "cat /evil/payload; ls /evil2/t | wc -l", edit=edit)
    os.symlink(str(host_dir), b / "rootfs/evil")
    os.symlink("../../../../../../../../.." + str(host_dir2), b / "rootfs/evil2")
    out = runtime("run", "-b", str(b), "sym").stdout
    assert out.splitlines() == ["mounted", "0"]
    # The host directories were never mounted on nor written to...
    for d in (host_dir, host_dir2):
        assert sorted(os.listdir(d)) == ["untouched"]
        assert not host_mounts_mentioning(str(d))
    # ...the mount points were made under the rootfs, at the symlink targets' paths.
    assert (b / "rootfs" / str(host_dir).lstrip("/")).is_dir()
    assert (b / "rootfs" / str(host_dir2).lstrip("/") / "t").is_dir()
    assert sorted(os.listdir(src)) == ["payload"]


def test_proc_destination_other_than_allowed_files_is_refused(runtime, bundle, tmp_path):
    src = tmp_path / "f"
    src.write_text("x")
    edit = add_mounts({"destination": "/proc/self/attr/current", "type": "bind",
                       "source": str(src), "options": ["bind"]})
    result = runtime("create", "-b", str(bundle("true", edit=edit)), "px", check=False)
    assert result.returncode == 1 and "/proc" in result.stderr
    assert not (runtime.root / "px").exists()


def test_all_masked_directories_share_one_read_only_empty_tmpfs(runtime, bundle):
    """One tmpfs per container for every masked directory (binds of the first), each empty and
    read-only; masked files are still the null device."""
    def edit(config: dict) -> None:
        config["linux"]["maskedPaths"] = ["/proc/acpi", "/sys/firmware", "/proc/scsi-missing",
                                          "/proc/keys"]
    out = runtime("run", "-b", str(bundle("sh", "-c",
        "stat -c '%d %a' /proc/acpi /sys/firmware; cat /proc/acpi/* /sys/firmware/* 2>/dev/null | wc -c; "
        "touch /sys/firmware/x 2>/dev/null && echo writable || echo read-only; "
        "stat -c '%t:%T' /proc/keys", edit=edit)), "masks").stdout.split("\n")
    acpi, firmware = out[0].split(), out[1].split()
    assert acpi[0] == firmware[0], out      # one superblock
    assert out[2].strip() == "0" and out[3] == "read-only", out
    assert out[4] == "1:3", out
