"""`pyrunc bundle create` from OCI image layouts built here with tarfile, run as real containers.

What the container sees is read from inside it (find + stat over its root filesystem) and
compared with the merged view the image spec defines for the three sample layers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from oci_image import APPLETS, Layer, sample_layers, write_layout
from pyrunc_testing import Runtime, host_mounts_mentioning, needs_root

pytestmark = needs_root

LISTING = ("find / -xdev | sort | while read -r p; do "
           "stat -c '%n|%F|%a|%u|%g|%h|%i|%t,%T' \"$p\"; done")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    layout = tmp_path / "image"
    write_layout(layout, sample_layers(), compress=(True, False, True))
    return layout


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def make(tmp_path: Path, runtime: Runtime, store: Path, cgroup_path: str
         ) -> Iterator[Callable[..., Path]]:
    """Factory: make(image_ref, *args, copy=False) -> bundle dir (with our cgroupsPath)."""
    made: list[Path] = []

    def factory(ref: str | Path, *args: str, copy: bool = False, name: str = "",
                log: Path | None = None) -> Path:
        bundle = tmp_path / (name or f"b-{uuid.uuid4().hex[:8]}")
        flags = ["--copy"] if copy else []
        command = ["bundle", "create", "--store", str(store), "--image", str(ref), *flags,
                   str(bundle), *(("--", *args) if args else ())]
        runtime(*command, global_args=("--log", str(log)) if log else ())
        made.append(bundle)
        config = json.loads((bundle / "config.json").read_text())
        config["linux"]["cgroupsPath"] = cgroup_path
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    yield factory
    for bundle in made:
        if (bundle / "image.json").exists():
            runtime("bundle", "rm", str(bundle), check=False)


def run_in(runtime: Runtime, bundle: Path) -> str:
    return runtime("run", "--bundle", str(bundle), f"img-{uuid.uuid4().hex[:8]}").stdout


def parse_listing(text: str) -> dict[str, dict[str, str]]:
    entries = {}
    for line in text.splitlines():
        name, kind, mode, uid, gid, nlink, ino, dev = line.split("|")
        entries[name] = {"kind": kind, "mode": mode, "owner": f"{uid}:{gid}",
                         "nlink": nlink, "ino": ino, "dev": dev}
    return entries


def expected_view() -> dict[str, tuple[str, str, str]]:
    """path -> (kind, mode, owner) of the merged view of sample_layers()."""
    d, f, s = "directory", "regular file", "symbolic link"
    view = {
        # /proc, /dev and /sys: the mounts on top, as stat sees them.
        "/": (d, "755", "0:0"), "/proc": (d, "555", "0:0"), "/dev": (d, "755", "0:0"),
        "/sys": (d, "555", "0:0"),
        "/bin": (d, "755", "0:0"), "/bin/busybox": (f, "755", "0:0"),
        "/bin/suid": (f, "4755", "0:0"), "/bin/sgid": (f, "2755", "0:50"),
        "/etc": (d, "755", "0:0"), "/etc/passwd": (f, "644", "0:0"),
        "/etc/group": (f, "644", "0:0"),
        "/data": (d, "755", "0:0"), "/data/keep": (f, "644", "0:0"),
        "/data/added": (f, "644", "1000:1000"),
        "/opq": (d, "755", "0:0"), "/opq/new": (f, "644", "0:0"),
        "/hl": (d, "755", "0:0"), "/hl/a": (f, "644", "0:0"), "/hl/b": (f, "644", "0:0"),
        "/hl/c": (f, "644", "1000:1000"),
        "/devs": (d, "755", "0:0"), "/devs/null": ("character special file", "666", "0:0"),
        "/devs/loop": ("block special file", "660", "0:0"),
        "/links": (d, "755", "0:0"), "/links/abs": (s, "777", "0:0"),
        "/links/rel": (s, "777", "0:0"),
    }
    view.update({f"/bin/{a}": (s, "777", "0:0") for a in APPLETS})
    return view


@pytest.mark.parametrize("copy", [False, True], ids=["overlay", "copy"])
def test_container_sees_exactly_the_merged_view(runtime: Runtime, image: Path, make: Callable,
                                                copy: bool) -> None:
    bundle = make(f"{image}:latest", "sh", "-c",
                  LISTING + "; echo ---; cat /data/keep /opq/new; echo;"
                  " readlink /links/abs; readlink /links/rel", copy=copy)
    assert json.loads((bundle / "image.json").read_text())["mode"] == \
        ("copy" if copy else "overlay")
    listing, _, rest = run_in(runtime, bundle).partition("---\n")
    seen = parse_listing(listing)
    assert {p: (e["kind"], e["mode"], e["owner"]) for p, e in seen.items()} == expected_view()
    # Deleted by a whiteout, hidden by an opaque dir: absent (the equality above says so too).
    assert "/data/gone" not in seen and "/opq/old1" not in seen and "/opq/sub" not in seen
    assert seen["/hl/a"]["ino"] == seen["/hl/b"]["ino"] and seen["/hl/a"]["nlink"] == "2"
    assert seen["/hl/c"]["ino"] == seen["/data/added"]["ino"]
    assert seen["/devs/null"]["dev"] == "1,3" and seen["/devs/loop"]["dev"] == "7,0"
    assert rest.split() == ["keep-v2new", "/data/keep", "../data/keep"]


@pytest.mark.parametrize("copy", [False, True], ids=["overlay", "copy"])
def test_the_root_directory_has_the_top_layers_owner_and_mode(
        runtime: Runtime, tmp_path: Path, make: Callable, copy: bool) -> None:
    image = tmp_path / "rootmode"
    write_layout(image, [Layer().busybox(), Layer().dir(".", 0o711, uid=7, gid=8)])
    bundle = make(image, "stat", "-c", "%a %u %g", "/", copy=copy)
    assert run_in(runtime, bundle) == "711 7 8\n"


def test_writes_land_in_the_upper_dir_only(runtime: Runtime, image: Path, make: Callable,
                                           store: Path) -> None:
    bundle = make(image, "sh", "-c", "echo w > /new && echo v3 > /data/keep && rm /etc/group")
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    run_in(runtime, bundle)
    upper = bundle / "upper"
    assert (upper / "new").read_text() == "w\n"
    assert (upper / "data" / "keep").read_text() == "v3\n"
    whiteout = os.lstat(upper / "etc" / "group")
    assert os.major(whiteout.st_rdev) == 0 and os.minor(whiteout.st_rdev) == 0
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before


def _lowerdirs(rootfs: Path) -> list[str]:
    for line in host_mounts_mentioning(str(rootfs)):
        options = line.split(" - ")[1].split()[2]
        return [o for o in options.split(",") if o.startswith("lowerdir=")][0][9:].split(":")
    raise AssertionError(f"{rootfs} is not mounted")


def test_two_bundles_share_the_layer_dirs_and_gc_keeps_them_while_used(
        runtime: Runtime, image: Path, make: Callable, store: Path) -> None:
    one, two = make(image, "cat", "/data/keep"), make(image, "cat", "/data/keep")
    layers = sorted((store / "sha256").iterdir())
    assert len(layers) == 3
    assert _lowerdirs(one / "rootfs") == _lowerdirs(two / "rootfs")
    assert sorted(_lowerdirs(one / "rootfs")) == [str(p) for p in layers]
    ino = {os.stat(b / "rootfs" / "bin" / "busybox").st_ino for b in (one, two)}
    stored = [p / "bin" / "busybox" for p in layers if (p / "bin" / "busybox").exists()]
    assert ino == {os.stat(stored[0]).st_ino}
    runtime("bundle", "rm", str(one))
    assert not one.exists()
    assert runtime("bundle", "gc", "--store", str(store)).stdout == ""
    assert run_in(runtime, two) == "keep-v2"
    runtime("bundle", "rm", str(two))
    removed = runtime("bundle", "gc", "--store", str(store)).stdout.split()
    assert sorted(removed[1::2]) == [f"sha256:{p.name}" for p in layers]
    assert list((store / "sha256").iterdir()) == []


def _corrupt_layer(image: Path, index: int) -> str:
    manifest_digest = json.loads((image / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((image / "blobs/sha256" / manifest_digest[7:]).read_text())
    digest = manifest["layers"][index]["digest"]
    blob = image / "blobs/sha256" / digest[7:]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    return str(digest)


def test_a_corrupted_layer_is_refused_and_nothing_is_unpacked(
        runtime: Runtime, image: Path, store: Path, tmp_path: Path) -> None:
    digest = _corrupt_layer(image, 1)
    bundle = tmp_path / "bad"
    result = runtime("bundle", "create", "--store", str(store), "--image", str(image),
                     str(bundle), check=False)
    assert result.returncode != 0
    assert digest in result.stderr and "corrupted" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not bundle.exists()
    # Layer 0 was verified and unpacked before layer 1 was found bad: it is complete and
    # shareable, and gc removes it; layer 1 left nothing at all.
    assert not (store / "sha256" / digest[7:]).exists()
    assert list((store / "tmp").iterdir()) == []
    runtime("bundle", "gc", "--store", str(store))
    assert list((store / "sha256").iterdir()) == []


ESCAPES = {
    "dotdot": lambda outside: Layer().file("../" + outside.name + "/evil", "x"),
    "absolute": lambda outside: Layer().file(str(outside / "evil"), "x"),
    "symlink": lambda outside: Layer().symlink("esc", str(outside)).file("esc/evil", "x"),
    "relative-symlink": lambda outside: Layer().symlink("esc", "../../" + outside.name)
    .file("esc/evil", "x"),
    "hardlink": lambda outside: Layer().hardlink("evil", str(outside / "secret")),
    "hardlink-dotdot": lambda outside: Layer().hardlink("evil", "../" + outside.name + "/secret"),
    "hardlink-via-symlink": lambda outside: Layer().symlink("esc", str(outside))
    .hardlink("evil", "esc/secret"),
}


@pytest.mark.parametrize("attack", sorted(ESCAPES))
def test_a_tar_escape_is_refused(runtime: Runtime, tmp_path: Path, store: Path,
                                 attack: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    image = tmp_path / "evil-image"
    write_layout(image, [Layer().busybox(), ESCAPES[attack](outside)])
    bundle = tmp_path / "evil"
    result = runtime("bundle", "create", "--store", str(store), "--image", str(image),
                     str(bundle), check=False)
    assert result.returncode != 0
    assert "refusing" in result.stderr or "not in this layer" in result.stderr, result.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert os.stat(outside / "secret").st_nlink == 1
    assert not bundle.exists()
    assert list((store / "tmp").iterdir()) == []
    runtime("bundle", "gc", "--store", str(store))


def test_image_config_sets_user_env_cwd_and_entrypoint(runtime: Runtime, tmp_path: Path,
                                                       make: Callable) -> None:
    layers = sample_layers()
    layers[0].dir("home").dir("home/app", uid=1000, gid=1000)
    image = tmp_path / "configured"
    write_layout(image, layers, {
        "User": "app", "Env": ["GREETING=hi", "PATH=/bin"], "WorkingDir": "/home/app",
        "Entrypoint": ["sh", "-c"], "Cmd": ["echo default"],
        "Labels": {"org.example.team": "images"}, "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "StopSignal": "SIGQUIT"})
    default = make(image)
    assert run_in(runtime, default) == "default\n"
    config = json.loads((default / "config.json").read_text())
    assert config["annotations"]["org.example.team"] == "images"
    assert config["annotations"]["org.opencontainers.image.exposedPorts"] == "53/udp,80/tcp"
    assert config["annotations"]["org.opencontainers.image.stopSignal"] == "SIGQUIT"
    assert config["root"] == {"path": "rootfs", "readonly": False}
    override = make(image, 'id -u; id -g; id -G; pwd; echo "$GREETING $PATH"')
    assert run_in(runtime, override).split("\n")[:5] == \
        ["1000", "1000", "1000 2000", "/home/app", "hi /bin"]


def test_runc_runs_the_bundle_too(image: Path, make: Callable, tmp_path: Path) -> None:
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed")
    bundle = make(image, "cat", "/data/keep")
    root = tmp_path / "runc-state"
    out = subprocess.run([runc, "--root", str(root), "run", "--bundle", str(bundle),
                          f"img-{uuid.uuid4().hex[:8]}"], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    shutil.rmtree(root, ignore_errors=True)
    assert (out.returncode, out.stdout) == (0, "keep-v2"), out.stderr


def test_bundle_rm_refuses_while_a_container_uses_it(runtime: Runtime, image: Path,
                                                     make: Callable) -> None:
    bundle = make(image, "cat", "/data/keep")
    runtime("create", "--bundle", str(bundle), "img-busy")
    try:
        result = runtime("bundle", "rm", str(bundle), check=False)
        assert result.returncode != 0 and "img-busy" in result.stderr
        assert os.path.ismount(bundle / "rootfs")
    finally:
        runtime("delete", "--force", "img-busy")
    runtime("bundle", "rm", str(bundle))
    assert not bundle.exists() and not host_mounts_mentioning(str(bundle))


def test_bundle_mount_restores_the_overlay(runtime: Runtime, image: Path,
                                           make: Callable) -> None:
    bundle = make(image, "sh", "-c", "cat /data/keep; cat /kept")
    (bundle / "rootfs" / "kept").write_text("-again")
    subprocess.run(["umount", str(bundle / "rootfs")], check=True)
    assert not (bundle / "rootfs" / "kept").exists()
    runtime("bundle", "mount", str(bundle))
    assert run_in(runtime, bundle) == "keep-v2-again"


def test_where_overlay_cannot_be_used_the_rootfs_is_a_copy_and_it_says_so(
        runtime: Runtime, image: Path, make: Callable, tmp_path: Path) -> None:
    # A ',' in the upper dir's path cannot be written in overlay's mount options.
    log = tmp_path / "log"
    bundle = make(image, "cat", "/data/keep", name="comma,bundle", log=log)
    record = json.loads((bundle / "image.json").read_text())
    assert record["mode"] == "copy" and "contains ','" in record["fallback"]
    assert "plain copy, not an overlay" in log.read_text()
    assert not os.path.ismount(bundle / "rootfs") and not (bundle / "upper").exists()
    assert run_in(runtime, bundle) == "keep-v2"
    assert record["layers"] == []  # the copy needs no layer: gc may take them
    assert len(runtime("bundle", "gc", "--store", str(record["store"])).stdout.split()) == 6


def test_bundle_create_fails_cleanly_without_a_command(runtime: Runtime, tmp_path: Path,
                                                       store: Path) -> None:
    image = tmp_path / "nocmd"
    write_layout(image, [Layer().busybox()], {})
    bundle = tmp_path / "nocmd-bundle"
    result = runtime("bundle", "create", "--store", str(store), "--image", str(image),
                     str(bundle), check=False)
    assert result.returncode != 0 and "no Entrypoint or Cmd" in result.stderr
    assert not bundle.exists() and not host_mounts_mentioning(str(bundle))
    runtime("bundle", "gc", "--store", str(store))


def test_podman_saved_busybox_runs(runtime: Runtime, tmp_path: Path, make: Callable) -> None:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed")
    # A private storage (vfs: no overlay mounts of podman's own); runroot must be short.
    runroot = tempfile.mkdtemp(prefix="pyrunc-pm-", dir="/tmp")
    storage = ["--root", str(tmp_path / "podman-root"), "--runroot", runroot,
               "--storage-driver", "vfs", "--cgroup-manager=cgroupfs"]
    rootfs = tmp_path / "bb-rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    os.symlink("busybox", rootfs / "bin" / "sh")
    os.symlink("busybox", rootfs / "bin" / "echo")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tmp_path / "bb.tar"), "."], check=True)
    def podman_run(*args: str) -> None:
        done = subprocess.run([podman, *storage, *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)
        assert done.returncode == 0, f"podman {args[0]}: {done.stderr}"

    try:
        podman_run("import", str(tmp_path / "bb.tar"), "localhost/bb:latest")
        podman_run("save", "--format", "oci-dir", "-o", str(tmp_path / "bb-oci"),
                   "localhost/bb:latest")
    finally:
        subprocess.run([podman, *storage, "system", "reset", "--force"], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(runroot, ignore_errors=True)
    bundle = make(tmp_path / "bb-oci", "echo", "from podman")
    assert run_in(runtime, bundle) == "from podman\n"
