"""secure_join resolves a container path inside the rootfs as chroot would, never outside it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pyrunc.linux.syscalls import KernelError
from pyrunc.rootfs import secure_join


@pytest.fixture()
def root(tmp_path: Path) -> str:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "usr" / "lib").mkdir(parents=True)
    (r / "etc" / "hosts").write_text("")
    return str(r)


def test_plain_paths_are_joined(root: str) -> None:
    assert secure_join(root, "/etc/hosts") == root + "/etc/hosts"
    assert secure_join(root, "etc/hosts") == root + "/etc/hosts"
    assert secure_join(root, "/") == root
    assert secure_join(root, "") == root


def test_dot_dot_is_clamped_at_the_root(root: str) -> None:
    assert secure_join(root, "/../../../etc") == root + "/etc"
    assert secure_join(root, "/usr/../../../lib") == root + "/lib"
    assert secure_join(root, "/./usr/./lib/") == root + "/usr/lib"


def test_missing_components_are_appended_lexically(root: str) -> None:
    assert secure_join(root, "/no/such/dir") == root + "/no/such/dir"
    assert secure_join(root, "/no/such/../dir") == root + "/no/dir"


def test_absolute_symlink_is_resolved_inside_the_root(root: str) -> None:
    os.symlink("/etc", os.path.join(root, "lnk"))
    assert secure_join(root, "/lnk/hosts") == root + "/etc/hosts"


def test_symlink_to_host_path_does_not_escape(root: str) -> None:
    os.symlink("/tmp", os.path.join(root, "escape"))
    assert secure_join(root, "/escape/x") == root + "/tmp/x"


def test_relative_symlink_climbing_out_is_clamped(root: str) -> None:
    os.symlink("../../../../../../usr", os.path.join(root, "etc", "up"))
    assert secure_join(root, "/etc/up/lib") == root + "/usr/lib"


def test_relative_symlink_is_relative_to_its_directory(root: str) -> None:
    os.symlink("lib", os.path.join(root, "usr", "lib64"))
    assert secure_join(root, "/usr/lib64/x.so") == root + "/usr/lib/x.so"


def test_final_symlink_is_followed(root: str) -> None:
    os.symlink("../etc/hosts", os.path.join(root, "usr", "hosts"))
    assert secure_join(root, "/usr/hosts") == root + "/etc/hosts"


def test_chain_of_symlinks(root: str) -> None:
    os.symlink("/b", os.path.join(root, "a"))
    os.symlink("/c/", os.path.join(root, "b"))
    os.symlink("usr", os.path.join(root, "c"))
    assert secure_join(root, "/a/lib") == root + "/usr/lib"


def test_dangling_symlink_resolves_to_its_target_inside_root(root: str) -> None:
    os.symlink("/var/run", os.path.join(root, "run"))
    assert secure_join(root, "/run/x") == root + "/var/run/x"


def test_symlink_loop_is_an_eloop_error(root: str) -> None:
    os.symlink("loop2", os.path.join(root, "loop1"))
    os.symlink("loop1", os.path.join(root, "loop2"))
    with pytest.raises(KernelError) as info:
        secure_join(root, "/loop1/x")
    assert info.value.errno == errno.ELOOP


def test_path_through_a_file_is_appended(root: str) -> None:
    assert secure_join(root, "/etc/hosts/x") == root + "/etc/hosts/x"


def test_root_itself_may_be_slash() -> None:
    assert secure_join("/", "/proc/../sys") == "/sys"
    assert secure_join("/", "..") == "/"


def test_root_with_trailing_slash_is_normalised(root: str) -> None:
    assert secure_join(root + "/", "/etc") == root + "/etc"
