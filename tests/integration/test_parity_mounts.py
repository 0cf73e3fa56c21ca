"""Mounts and the rootfs compared with runc: recursive attributes, order, locked flags,
propagation, rootfs shapes runc refuses.

The container prints its /proc/self/mountinfo; the test compares what the kernel shows for the
same bundle under both runtimes (or, where Debian's runc 1.1.5 lacks the behaviour, with what
runc 1.5's source does, as the docstring says). Host-side mounts a test needs are made under
its tmp_path and removed before it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runc_compare import both, needs_runc, runc  # noqa: F401 - runc is a fixture
from test_rootfs import mount_at, parse_mountinfo

from pyrunc_testing import host_mounts_mentioning, make_bundle, needs_root

pytestmark = [needs_root, needs_runc, pytest.mark.integration]

ATIME_WORDS = ("noatime", "relatime", "nodiratime")


@contextlib.contextmanager
def host_mount(*args: str) -> Iterator[None]:
    """`mount ARGS…` on the host for the test's duration (the last argument is the target)."""
    subprocess.run(["mount", *args], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", args[-1]], check=True)


def bind_tree(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/src with a noatime tmpfs at src/sub: a bind source with a submount."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    with host_mount("-t", "tmpfs", "-o", "noatime,size=1m", "tmpfs", str(src / "sub")):
        yield src


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    yield from bind_tree(tmp_path)


def run_mountinfo(rt: Any, b: Path, cid: str) -> list[Any]:
    return parse_mountinfo(rt("run", "-b", str(b), cid).stdout)


def atime_of(mount: Any) -> tuple[str, ...]:
    return tuple(w for w in ATIME_WORDS if w in mount.options)


# --- recursive atime options ------------------------------------------------------------------------

#: What runc 1.5's mapping gives the bind and its submount (every atime option replaces the whole
#: access-time field; clearing one leaves relatime, the kernel's value 0).
RECURSIVE_ATIME = {
    "rnoatime": ("noatime",),
    "rrelatime": ("relatime",),
    "rstrictatime": (),
    "ratime": ("relatime",),
    "rnostrictatime": ("relatime",),
    "rnorelatime": ("relatime",),
    "rnodiratime": ("noatime", "nodiratime"),
}


@pytest.mark.parametrize("option", sorted(RECURSIVE_ATIME))
def test_recursive_atime_options_on_rbind(runtime, runc, bundle, cgroup_path, tree, option):
    """runc 1.1.5 fails on the clearing forms (EINVAL) and ignores `rnorelatime`, so the
    expected words follow runc 1.5 (libcontainer/specconv); where 1.1.5's mapping is the same,
    its result must agree."""
    def edit(config: dict[str, Any]) -> None:
        config["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(tree),
                                 "options": ["rbind", option]})

    ours, theirs = both(runtime, runc, bundle, cgroup_path, "cat", "/proc/self/mountinfo",
                        edit=edit)
    mounts = run_mountinfo(runtime, ours, "at")
    expected = RECURSIVE_ATIME[option]
    assert atime_of(mount_at(mounts, "/mnt/sub")) == expected
    if option != "rnodiratime":   # the source itself is relatime, not noatime
        assert atime_of(mount_at(mounts, "/mnt")) == expected
    result = runc("run", "-b", str(theirs), "at", check=False)
    if option in ("ratime", "rnostrictatime"):
        assert result.returncode != 0   # 1.1.5: mount_setattr EINVAL
    elif option != "rnorelatime":
        assert atime_of(mount_at(parse_mountinfo(result.stdout), "/mnt/sub")) == expected


# --- rootfs shapes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["proc", "sys"])
def test_rootfs_whose_proc_or_sys_is_a_symlink_is_refused(runtime, runc, bundle, cgroup_path,
                                                          where):
    """runc: `filesystem "proc" must be mounted on ordinary directory` (the CVE-2019-19921
    class: a symlink would move the mount elsewhere); nothing is left behind, nothing hangs."""
    ours, theirs = both(runtime, runc, bundle, cgroup_path, "true")
    for b in (ours, theirs):
        target = b / "rootfs" / where
        target.rmdir()
        target.symlink_to("/tmp")
    fstype = "proc" if where == "proc" else "sysfs"
    words = f'filesystem "{fstype}" must be mounted on ordinary directory'
    for rt, b in ((runtime, ours), (runc, theirs)):
        result = rt("run", "-b", str(b), "ln", check=False, timeout=20)
        assert result.returncode != 0 and words in result.stderr.replace('\\"', '"'), \
            result.stderr
    assert not (runtime.root / "ln").exists()
    assert not any((ours / "rootfs" / "tmp").iterdir())


def test_terminal_without_a_mount_namespace_gets_a_pty(runtime, bundle, tmp_path):
    """runc 1.1.5 and 1.5 both fail here (`open /dev/ptmx` / `open /dev/pts/ptmx`: ENOENT): a
    chrooted rootfs has no devpts. pyrunc allocates the pty from the host's devpts (which the
    container shares, having no mount namespace) and mounts nothing on the host."""
    from test_terminal_run import create_with_console, read_until_eof, wait_stopped

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                         if ns["type"] != "mount"]
        for key in ("maskedPaths", "readonlyPaths"):
            config["linux"].pop(key, None)
        config["root"]["readonly"] = False

    b = bundle("sh", "-c", "test -t 0 && test -t 1 && echo on-a-tty", tty=True, edit=edit)
    _, master = create_with_console(runtime, b, "nomnt", tmp_path)
    try:
        runtime("start", "nomnt")
        out = read_until_eof(master).decode()
    finally:
        os.close(master)
    assert out.split() == ["on-a-tty"]
    wait_stopped(runtime, "nomnt")
    runtime("delete", "nomnt")
    # Nothing mounted on the host: no mount of a devpts or of anything in the bundle.
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(b) not in mounts


# --- bind-mount flags on a source with flags of its own ---------------------------------------------

USER_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's tmp_path is 0700): for user namespaces."""
    top = Path(tempfile.mkdtemp(prefix="pyrunc-parity-"))
    top.chmod(0o755)
    yield top
    leaked = host_mounts_mentioning(str(top))
    for line in leaked:
        subprocess.run(["umount", "-l", line.split()[4]], check=False)
    shutil.rmtree(top, ignore_errors=True)
    assert not leaked, leaked


@pytest.fixture
def locked_source(open_dir: Path) -> Iterator[Path]:
    """A tmpfs mounted ro,nosuid,nodev,noexec: in a user namespace all four are locked."""
    src = open_dir / "locked"
    src.mkdir()
    with host_mount("-t", "tmpfs", "-o", "ro,nosuid,nodev,noexec,size=1m", "tmpfs", str(src)):
        yield src


def userns_bundle(open_dir: Path, cgroup_path: str, name: str, *args: str,
                  mounts: list[dict[str, Any]], userns: bool) -> Path:
    b = make_bundle(open_dir / name, list(args), cgroups_path=cgroup_path)
    for m in mounts:   # the mapped root may not create them in a rootfs owned by the host's root
        (b / "rootfs" / m["destination"].lstrip("/")).mkdir(exist_ok=True)
    config = json.loads((b / "config.json").read_text())
    config["mounts"].extend(mounts)
    if userns:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = USER_MAP
        config["linux"]["gidMappings"] = USER_MAP
    (b / "config.json").write_text(json.dumps(config))
    return b


FLAG_WORDS = ("ro", "nosuid", "nodev", "noexec")


def flags_of(mount: Any) -> set[str]:
    return {w for w in FLAG_WORDS if w in mount.options}


@pytest.mark.parametrize("options, userns, expected", [
    # No user namespace: nothing is locked; runc 1.5 sets exactly the asked flags (like
    # `mount --bind -o`), so clearing one clears every flag the source had.
    (["bind", "rw"], False, set()),
    (["bind", "dev", "exec", "suid"], False, set()),
    (["bind", "nosuid"], False, {"nosuid"}),
    # A user namespace: the source's four flags are locked and kept.
    (["bind", "nosuid"], True, {"ro", "nosuid", "nodev", "noexec"}),
    (["bind"], True, {"ro", "nosuid", "nodev", "noexec"}),
])
def test_bind_flags_on_a_source_with_flags_follow_runc_1_5(runtime, open_dir, cgroup_path,
                                                           locked_source, options, userns,
                                                           expected):
    """runc 1.5 (rootfs_linux.go, mountToRootfs "bind"): remount when any flag is set or
    cleared; on failure retry with the locked flags re-applied. runc 1.1.5 ignores cleared-only
    options, so it is not the reference here."""
    b = userns_bundle(open_dir, cgroup_path, "b", "cat", "/proc/self/mountinfo", userns=userns,
                      mounts=[{"destination": "/mnt", "type": "bind",
                               "source": str(locked_source), "options": options}])
    mounts = parse_mountinfo(runtime("run", "-b", str(b), "bf").stdout)
    assert flags_of(mount_at(mounts, "/mnt")) == expected


@pytest.mark.parametrize("options, locked", [(["bind", "rw"], "ro"), (["bind", "dev"], "nodev"),
                                             (["bind", "nosuid", "exec"], "noexec")])
def test_clearing_a_locked_flag_fails_naming_it(runtime, open_dir, cgroup_path, locked_source,
                                                options, locked):
    """runc 1.5: `cannot clear locked flags …` rather than a mount that is not what was asked."""
    b = userns_bundle(open_dir, cgroup_path, "b", "true", userns=True,
                      mounts=[{"destination": "/mnt", "type": "bind",
                               "source": str(locked_source), "options": options}])
    result = runtime("run", "-b", str(b), "cl", check=False)
    assert result.returncode != 0
    assert f"cannot clear locked flags {locked}" in result.stderr, result.stderr
    assert not (runtime.root / "cl").exists()


# --- rootfsPropagation --------------------------------------------------------------------------------

@pytest.fixture
def shared_bundle_dir(open_dir: Path) -> Iterator[Path]:
    """A directory on a host mount of its own that is shared (the host's / here is private)."""
    top = open_dir / "shared"
    top.mkdir()
    with host_mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(top)):
        subprocess.run(["mount", "--make-shared", str(top)], check=True)
        yield top


def _root_propagation(mounts: list[Any]) -> set[str]:
    return {f.split(":")[0] for f in mount_at(mounts, "/").optional}


#: runc 1.5 (prepareRoot, rootfsParentMountPropagation, and the step after pivot_root): the
#: mount holding the rootfs becomes a slave for (r)slave and private otherwise, before the
#: rootfs is bound; shared and unbindable are applied to the new "/" afterwards.
ROOT_PROPAGATION = {None: set(), "private": set(), "rprivate": set(), "slave": {"master"},
                    "rslave": {"master"}, "shared": {"shared"}, "rshared": {"shared"}}


@pytest.mark.parametrize("propagation", list(ROOT_PROPAGATION), ids=str)
def test_root_propagation_on_a_shared_host_mount_is_runc_1_5s(runtime, runc, cgroup_path,
                                                              shared_bundle_dir, propagation):
    """runc 1.1.5 agrees for rslave and (r)private; it makes the parent private only when it
    is shared and never applies `shared` after pivot_root, so it is not the reference for the
    others."""
    def bundle_for(name: str, cgroups: str) -> Path:
        b = make_bundle(shared_bundle_dir / name, ["cat", "/proc/self/mountinfo"],
                        cgroups_path=cgroups)
        config = json.loads((b / "config.json").read_text())
        if propagation:
            config["linux"]["rootfsPropagation"] = propagation
        (b / "config.json").write_text(json.dumps(config))
        return b

    ours = run_mountinfo(runtime, bundle_for("ours", cgroup_path), "rp")
    assert _root_propagation(ours) == ROOT_PROPAGATION[propagation]
    if propagation in ("rslave", "private", "rprivate"):
        theirs = run_mountinfo(runc, bundle_for("theirs", cgroup_path + "-runc"), "rp")
        assert _root_propagation(theirs) == _root_propagation(ours)
    # Nothing the containers mounted reached the host through the shared mount.
    assert not [line for line in host_mounts_mentioning(str(shared_bundle_dir))
                if line.split()[4] != str(shared_bundle_dir)]


# --- mount order and bind sources the container's root cannot reach ---------------------------------

def test_bind_sources_are_looked_up_at_their_turn_in_config_order(runtime, runc, bundle,
                                                                  cgroup_path, tmp_path):
    """A source inside the rootfs sees what earlier entries mounted (a tmpfs, a bind)."""
    host_dir = tmp_path / "hostdir"
    (host_dir / "sub").mkdir(parents=True)
    (host_dir / "sub" / "from-host").write_text("")

    def edit_for(b: Path) -> None:
        config = json.loads((b / "config.json").read_text())
        rootfs = b / "rootfs"
        (rootfs / "data").mkdir()
        (rootfs / "data" / "hidden-by-tmpfs").write_text("")
        config["mounts"] += [
            {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
            {"destination": "/copy", "type": "bind", "source": str(rootfs / "data"),
             "options": ["rbind"]},
            {"destination": "/data", "type": "bind", "source": str(host_dir), "options": ["rbind"]},
            {"destination": "/sub", "type": "bind", "source": str(rootfs / "data" / "sub"),
             "options": ["rbind"]},
        ]
        (b / "config.json").write_text(json.dumps(config))

    ours, theirs = both(runtime, runc, bundle, cgroup_path, "sh", "-c", "ls -A /copy; ls /sub")
    outputs = []
    for rt, b in ((runtime, ours), (runc, theirs)):
        edit_for(b)
        outputs.append(rt("run", "-b", str(b), "order").stdout)
    assert outputs[0] == outputs[1] == "from-host\n"


@pytest.fixture
def unreachable_source(open_dir: Path) -> Iterator[Path]:
    """open_dir/private (0700, root's) / data: a user namespace's root cannot look it up."""
    private = open_dir / "private"
    (private / "data").mkdir(parents=True)
    (private / "data" / "file").write_text("content\n")
    private.chmod(0o700)
    yield private / "data"


@pytest.mark.parametrize("options", [["rbind"], ["bind", "ro"]])
def test_bind_source_the_mapped_root_cannot_reach_is_opened_by_the_runtime(
        runtime, runc, open_dir, cgroup_path, unreachable_source, options):
    """runc 1.5 (setupAndMountToRootfs → procMountPlease): the runtime opens the source in the
    container's mount namespace and the init mounts the fd. runc 1.1.5 opened such sources
    before joining the user namespace, with the same result."""
    mounts = [{"destination": "/mnt", "type": "bind", "source": str(unreachable_source),
               "options": options}]
    args = ("sh", "-c", "cat /mnt/file; touch /mnt/new 2>/dev/null && echo rw || echo ro")
    ours = userns_bundle(open_dir, cgroup_path, "ours", *args, mounts=mounts, userns=True)
    theirs = userns_bundle(open_dir, cgroup_path + "-runc", "theirs", *args, mounts=mounts,
                           userns=True)
    out = runtime("run", "-b", str(ours), "un").stdout
    assert out.splitlines()[0] == "content"
    assert runc("run", "-b", str(theirs), "un").stdout == out


def test_bind_source_missing_for_everyone_still_fails_naming_it(runtime, open_dir, cgroup_path,
                                                               unreachable_source):
    missing = unreachable_source / "absent"
    mounts = [{"destination": "/mnt", "type": "bind", "source": str(missing),
               "options": ["rbind"]}]
    b = userns_bundle(open_dir, cgroup_path, "b", "true", mounts=mounts, userns=True)
    result = runtime("run", "-b", str(b), "miss", check=False)
    assert result.returncode == 1
    assert str(missing) in result.stderr and "ENOENT" in result.stderr, result.stderr
    assert not (runtime.root / "miss").exists()
