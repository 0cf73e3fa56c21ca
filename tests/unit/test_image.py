"""The image modules without containers: layout resolution, unpacking, the store, the config."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from oci_image import Layer, sample_layers, write_layout
from pyrunc.image import layout
from pyrunc.image.config import resolve_user, runtime_config
from pyrunc.image.layout import ImageError, resolve, split_reference
from pyrunc.image.merge import copy_layers, overlay_options
from pyrunc.image.store import LayerStore
from pyrunc.image.unpack import OPAQUE_XATTR, UnpackError, unpack_layer, zstd_available
from pyrunc_testing import needs_root


def _blob(tmp_path: Path, layer: Layer, gz: bool = False) -> tuple[Path, str]:
    raw = layer.tar()
    path = tmp_path / "layer.blob"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path, "sha256:" + hashlib.sha256(raw).hexdigest()


# --- references and layouts --------------------------------------------------------------------

def test_split_reference(tmp_path: Path) -> None:
    assert split_reference("/img:v1") == ("/img", "v1", None)
    assert split_reference("/img@sha256:ab") == ("/img", None, "sha256:ab")
    assert split_reference("/img") == ("/img", None, None)
    odd = tmp_path / "a:b"
    odd.mkdir()
    assert split_reference(str(odd)) == (str(odd), None, None)
    assert split_reference("rel/dir:tag") == ("rel/dir", "tag", None)


def test_resolve_by_tag_and_digest_and_refuse_ambiguity(tmp_path: Path) -> None:
    img = tmp_path / "img"
    one = write_layout(img, [Layer().file("a", "1")], tag="one")
    two = write_layout(img, [Layer().file("b", "2")], tag="two")
    assert resolve(f"{img}:one").manifest_digest == one["manifest"]
    assert resolve(f"{img}@{two['manifest']}").layers[0].digest == two["layers"][0]
    with pytest.raises(ImageError, match="2 manifests; name one.*tags: one, two"):
        resolve(str(img))
    with pytest.raises(ImageError, match="no manifest tagged 'three'"):
        resolve(f"{img}:three")


def test_a_corrupted_config_blob_is_refused(tmp_path: Path) -> None:
    img = tmp_path / "img"
    write_layout(img, [Layer().file("a", "1")], {"Cmd": ["x"]})
    manifest_digest = json.loads((img / "index.json").read_text())["manifests"][0]["digest"]
    config_digest = json.loads((img / "blobs/sha256" / manifest_digest[7:]).read_text()
                               )["config"]["digest"]
    (img / "blobs/sha256" / config_digest[7:]).write_text('{"tampered": true}')
    with pytest.raises(ImageError, match=f"{config_digest} has digest .*corrupted"):
        resolve(str(img))


def test_malformed_digests_cannot_name_paths() -> None:
    for bad in ("sha256:../../etc/passwd", "md5:abcd", "sha256:" + "A" * 64, "nocolon"):
        with pytest.raises(ImageError, match="malformed digest"):
            layout.parse_digest(bad, "test")


# --- unpacking ---------------------------------------------------------------------------------

@needs_root
def test_unpack_turns_oci_whiteouts_into_overlay_whiteouts(tmp_path: Path) -> None:
    blob, diff_id = _blob(tmp_path, sample_layers()[1])
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack_layer(str(blob), str(dest), diff_id, "layer")
    gone = os.lstat(dest / "data" / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert not (dest / "data" / ".wh.gone").exists()
    assert os.getxattr(dest / "opq", OPAQUE_XATTR) == b"y"
    assert not (dest / "opq" / ".wh..wh..opq").exists()
    assert (dest / "opq" / "new").read_text() == "new"


@needs_root
def test_unpack_keeps_setuid_devices_hard_links_symlinks_owners(tmp_path: Path) -> None:
    blob, diff_id = _blob(tmp_path, sample_layers()[0], gz=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack_layer(str(blob), str(dest), diff_id, "layer")
    assert stat.S_IMODE(os.stat(dest / "bin/suid").st_mode) == 0o4755
    sgid = os.stat(dest / "bin/sgid")
    assert (stat.S_IMODE(sgid.st_mode), sgid.st_gid) == (0o2755, 50)
    null = os.lstat(dest / "devs/null")
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_ISBLK(os.lstat(dest / "devs/loop").st_mode)
    assert os.stat(dest / "hl/a").st_ino == os.stat(dest / "hl/b").st_ino
    assert os.readlink(dest / "bin/sh") == "busybox"
    assert os.stat(dest / "data/keep").st_mtime == 1_700_000_000


@needs_root
def test_unpack_refuses_a_wrong_diff_id(tmp_path: Path) -> None:
    blob, _ = _blob(tmp_path, Layer().file("a", "1"))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnpackError, match="uncompressed content has digest"):
        unpack_layer(str(blob), str(dest), "sha256:" + "0" * 64, "layer")


@needs_root
@pytest.mark.parametrize("data", [b"", b"\0" * 1024, b"not a tar at all" * 64])
def test_an_empty_layer_is_empty_and_junk_is_refused(tmp_path: Path, data: bytes) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(gzip.compress(data))
    dest = tmp_path / "dest"
    dest.mkdir()
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    if data.startswith(b"not"):
        with pytest.raises(UnpackError, match="not a valid layer tar"):
            unpack_layer(str(blob), str(dest), diff_id, "layer")
    else:
        unpack_layer(str(blob), str(dest), diff_id, "layer")
        assert os.listdir(dest) == []


@needs_root
def test_unpack_drops_trusted_xattrs_from_the_tar(tmp_path: Path) -> None:
    layer = Layer().file("a", "1")
    layer.members[0][0].pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc",
                                       "SCHILY.xattr.user.note": "kept"}
    blob, diff_id = _blob(tmp_path, layer)
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack_layer(str(blob), str(dest), diff_id, "layer")
    assert os.listxattr(dest / "a") == ["user.note"]


@needs_root
@pytest.mark.parametrize("name", ["../x", "/x", "a/../../x", ".wh..", "d/.wh."])
def test_unpack_refuses_escaping_names(tmp_path: Path, name: str) -> None:
    info = tarfile.TarInfo(name)
    layer = Layer()
    layer.members.append((info, b""))
    blob, diff_id = _blob(tmp_path, layer)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnpackError, match="refusing"):
        unpack_layer(str(blob), str(dest), diff_id, "layer")
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(zstd_available(), reason="a zstd module is installed")
def test_zstd_without_a_module_says_so(tmp_path: Path) -> None:
    blob = tmp_path / "z"
    blob.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 16)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnpackError, match="zstd-compressed layer, but no Python zstd module"):
        unpack_layer(str(blob), str(dest), "sha256:" + "0" * 64, "layer")


# --- the store and the copy fallback -----------------------------------------------------------

@needs_root
def test_store_refuses_a_bad_blob_before_unpacking(tmp_path: Path) -> None:
    img = tmp_path / "img"
    digests = write_layout(img, [Layer().file("a", "1")])
    (img / "blobs/sha256" / digests["layers"][0][7:]).write_bytes(b"junk")
    store = LayerStore(str(tmp_path / "store"))
    image_layer = resolve(str(img)).layers[0]
    with store.locked(), pytest.raises(ImageError, match="corrupted"):
        store.ensure(str(img), image_layer, 0)
    assert store.layer_digests() == [] and os.listdir(tmp_path / "store" / "tmp") == []


@needs_root
def test_store_unpacks_a_layer_once(tmp_path: Path) -> None:
    img = tmp_path / "img"
    write_layout(img, [Layer().file("a", "1")])
    store = LayerStore(str(tmp_path / "store"))
    layer = resolve(str(img)).layers[0]
    with store.locked():
        first = store.ensure(str(img), layer, 0)
        ino = os.stat(first).st_ino
        assert store.ensure(str(img), layer, 0) == first and os.stat(first).st_ino == ino
    assert store.gc() == [layer.digest]


@needs_root
def test_copy_applies_layers_like_overlay(tmp_path: Path) -> None:
    dirs = []
    for i, layer in enumerate(sample_layers()):
        blob, diff_id = _blob(tmp_path, layer)
        dest = tmp_path / f"l{i}"
        dest.mkdir()
        unpack_layer(str(blob), str(dest), diff_id, "layer")
        dirs.append(str(dest))
    target = tmp_path / "root"
    target.mkdir()
    copy_layers(dirs, str(target))
    assert sorted(os.listdir(target / "data")) == ["added", "keep"]
    assert os.listdir(target / "opq") == ["new"]
    assert (target / "data/keep").read_text() == "keep-v2"
    assert os.stat(target / "hl/a").st_ino == os.stat(target / "hl/b").st_ino
    assert os.stat(target / "hl/c").st_ino == os.stat(target / "data/added").st_ino
    assert stat.S_IMODE(os.stat(target / "bin/suid").st_mode) == 0o4755
    assert OPAQUE_XATTR not in os.listxattr(target / "opq")


def test_overlay_options_refuse_separator_characters() -> None:
    assert overlay_options(["/a", "/b"], "/u", "/w") == "lowerdir=/a:/b,upperdir=/u,workdir=/w"
    with pytest.raises(ImageError, match="contains"):
        overlay_options(["/a:b"], "/u", "/w")
    with pytest.raises(ImageError, match="at most 4095"):
        overlay_options(["/" + "x" * 100] * 50, "/u", "/w")


# --- image config -> config.json ---------------------------------------------------------------

def _rootfs_with_users(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\napp:x:1001:\nwheel:x:10:app,other\nstaff:x:50:\n")
    return root


def test_resolve_user_forms(tmp_path: Path) -> None:
    root = str(_rootfs_with_users(tmp_path))
    assert resolve_user("", root) == {"uid": 0, "gid": 0}
    assert resolve_user("app", root) == {"uid": 1000, "gid": 1001, "additionalGids": [10]}
    assert resolve_user("1000", root) == {"uid": 1000, "gid": 1001, "additionalGids": [10]}
    assert resolve_user("app:staff", root) == {"uid": 1000, "gid": 50}
    assert resolve_user("4242:4343", root) == {"uid": 4242, "gid": 4343}
    with pytest.raises(ImageError, match="/config/User: user 'nobody' not found"):
        resolve_user("nobody", root)
    with pytest.raises(ImageError, match="group 'nogroup' not found"):
        resolve_user("app:nogroup", root)


def test_resolve_user_does_not_follow_a_symlinked_passwd(tmp_path: Path) -> None:
    root = _rootfs_with_users(tmp_path)
    (root / "etc/passwd").unlink()
    (root / "etc/passwd").symlink_to("/etc/passwd")  # the host's, which has root and more
    with pytest.raises(ImageError, match="not found"):
        resolve_user("root", str(root))


def test_args_replace_cmd_and_entrypoint_drops_cmd(tmp_path: Path) -> None:
    root = str(_rootfs_with_users(tmp_path))
    image = {"config": {"Entrypoint": ["/ep"], "Cmd": ["a"], "Env": ["X=1"]}}
    assert runtime_config(image, root, args=None, entrypoint=None, tty=False
                          )["process"]["args"] == ["/ep", "a"]
    assert runtime_config(image, root, args=["b"], entrypoint=None, tty=False
                          )["process"]["args"] == ["/ep", "b"]
    config = runtime_config(image, root, args=None, entrypoint=["/bin/sh"], tty=True)
    assert config["process"]["args"] == ["/bin/sh"]
    assert config["process"]["terminal"] is True
    assert config["process"]["env"][0].startswith("PATH=") and "X=1" in config["process"]["env"]
    with pytest.raises(ImageError, match="no Entrypoint or Cmd"):
        runtime_config({"config": {}}, root, args=None, entrypoint=None, tty=False)
