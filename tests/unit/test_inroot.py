"""pyrunc.linux.inroot opens and creates paths inside a root, never outside it: with openat2 and
with the hand walk used where the kernel lacks it (both run here)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pyrunc.linux import inroot


@pytest.fixture(params=["openat2", "walk"])
def mode(request, monkeypatch):
    monkeypatch.setattr(inroot, "have_openat2", None if request.param == "openat2" else False)
    return request.param


@pytest.fixture
def tree(tmp_path: Path):
    """root/ with hostile symlinks, and outside/ next to it standing for the host."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_text("inside\n")
    outside.mkdir()
    (outside / "hosts").write_text("outside\n")
    (root / "abs").symlink_to(str(outside))                       # absolute, to the "host"
    (root / "climb").symlink_to("../../../../../../" + str(outside))
    (root / "etclink").symlink_to("/etc")
    (root / "dangling").symlink_to("/made/by/link")
    fd = inroot.open_root(str(root))
    yield root, outside, fd
    os.close(fd)


def _where(fd: int) -> str:
    try:
        return os.readlink(inroot.fd_path(fd))
    finally:
        os.close(fd)


def test_absolute_and_climbing_symlinks_resolve_inside_the_root(tree, mode):
    root, outside, fd = tree
    (root / str(outside).lstrip("/")).mkdir(parents=True)
    assert _where(inroot.open_in_root(fd, "/abs")) == str(root / str(outside).lstrip("/"))
    for path in ("/etclink/hosts", "/../../etc/hosts", "/etc/../../etc/hosts",
                 "etc/./../etc/hosts"):
        opened = inroot.open_in_root(fd, path, os.O_RDONLY)
        with os.fdopen(opened) as f:
            assert f.read() == "inside\n", path
    with pytest.raises(OSError) as info:
        inroot.open_in_root(fd, "/abs/hosts", os.O_RDONLY)
    assert info.value.errno == errno.ENOENT


def test_follow_false_opens_the_symlink_itself(tree, mode):
    root, _, fd = tree
    assert _where(inroot.open_in_root(fd, "/abs", follow=False)) == str(root / "abs")


def test_mkdir_through_symlinks_creates_inside_the_root(tree, mode):
    root, outside, fd = tree
    for path in ("/abs/a/b", "/climb/c", "/dangling/x"):
        os.close(inroot.mkdir_in_root(fd, path))
    assert sorted(os.listdir(outside)) == ["hosts"]
    inner_outside = root / str(outside).lstrip("/")
    assert (inner_outside / "a/b").is_dir() and (inner_outside / "c").is_dir()
    assert (root / "made/by/link/x").is_dir()


def test_create_in_root_makes_an_empty_file_once(tree, mode):
    root, _, fd = tree
    os.close(inroot.create_in_root(fd, "/new/dir/file", 0o600))
    assert (root / "new/dir/file").read_bytes() == b""
    (root / "new/dir/file").write_text("kept\n")
    os.close(inroot.create_in_root(fd, "/new/dir/file"))
    assert (root / "new/dir/file").read_text() == "kept\n"


def test_a_file_on_the_way_is_not_a_directory(tree, mode):
    _, _, fd = tree
    with pytest.raises(OSError) as info:
        inroot.mkdir_in_root(fd, "/etc/hosts/sub")
    assert info.value.errno == errno.ENOTDIR


def test_magic_links_are_not_jumped_through(mode):
    """openat2 refuses /proc's magic links (ELOOP); the walk only reads their text ("/") and
    resolves that inside the root, as any symlink."""
    fd = inroot.open_root("/")
    try:
        if mode == "openat2":
            with pytest.raises(OSError) as info:
                inroot.open_in_root(fd, "/proc/self/root/etc")
            assert info.value.errno == errno.ELOOP
        else:
            assert _where(inroot.open_in_root(fd, "/proc/self/root/etc")) == "/etc"
    finally:
        os.close(fd)


def test_symlink_loops_end_with_eloop(tree, mode):
    root, _, fd = tree
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    with pytest.raises(OSError) as info:
        inroot.open_in_root(fd, "/loop1/x")
    assert info.value.errno == errno.ELOOP
