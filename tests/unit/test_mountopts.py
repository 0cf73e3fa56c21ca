"""Option strings of config.json mounts sorted into flags, propagation, attributes and data."""

from __future__ import annotations

import os

import pytest

from pyrunc.linux.consts import (
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_SLAVE,
    MS_UNBINDABLE,
)
from pyrunc.mountopts import (
    KNOWN_MOUNT_OPTIONS,
    MountOptions,
    ms_flags_from_statvfs,
    parse_mount_options,
    propagation_flags,
)


def test_default_dev_mount_options_split_into_flags_and_data() -> None:
    opts = parse_mount_options(["nosuid", "strictatime", "mode=755", "size=65536k"])
    assert opts.flags & MS_NOSUID
    assert opts.data == "mode=755,size=65536k"
    assert not opts.is_bind and opts.propagation == ()


def test_later_option_wins_over_earlier_one() -> None:
    assert parse_mount_options(["ro", "rw"]).flags & MS_RDONLY == 0
    assert parse_mount_options(["ro", "rw"]).clear_flags & MS_RDONLY
    assert parse_mount_options(["rw", "ro"]).flags & MS_RDONLY
    assert parse_mount_options(["rw", "ro"]).clear_flags & MS_RDONLY == 0


def test_bind_and_rbind_set_bind_and_recursion() -> None:
    assert parse_mount_options(["bind"]).flags == MS_BIND
    rbind = parse_mount_options(["rbind", "ro"])
    assert rbind.is_bind and rbind.is_recursive_bind and rbind.readonly
    assert rbind.behaviour_flags == MS_RDONLY


def test_propagation_options_keep_their_order_and_recursion() -> None:
    opts = parse_mount_options(["rprivate", "unbindable", "slave"])
    assert opts.propagation == (MS_PRIVATE | MS_REC, MS_UNBINDABLE, MS_SLAVE)
    assert opts.flags == 0


def test_recursive_attributes_go_to_mount_setattr() -> None:
    opts = parse_mount_options(["rbind", "rro", "rnosuid", "rexec"])
    assert opts.attr_set == MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID
    assert opts.has_recursive_attrs
    assert opts.flags & MS_RDONLY == 0  # rro is not the one-mount ro flag


def test_setting_an_access_time_attribute_clears_the_whole_access_time_field() -> None:
    opts = parse_mount_options(["rnoatime"])
    assert opts.attr_set == MOUNT_ATTR_NOATIME
    assert opts.attr_clr == 0x70


@pytest.mark.parametrize("options, idmap, recursive", [
    (["bind"], False, False),
    (["rbind", "idmap"], True, False),
    (["rbind", "ridmap"], True, True),
    (["rbind", "ridmap", "idmap"], True, False),   # the last one wins, as in runc
    (["rbind", "idmap", "ridmap"], True, True),
])
def test_idmap_options_ask_for_an_idmapped_mount_and_are_not_data(
        options: list[str], idmap: bool, recursive: bool) -> None:
    opts = parse_mount_options(options)
    assert (opts.idmap, opts.idmap_recursive) == (idmap, recursive)
    assert opts.data == ""


def test_unknown_words_and_key_values_are_filesystem_data() -> None:
    opts = parse_mount_options(["newinstance", "ptmxmode=0666", "mode=0620", "gid=5", "nosuid",
                                "noexec"])
    assert opts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    assert opts.flags == MS_NOSUID | MS_NOEXEC


def test_tmpcopyup_is_an_extension_not_data() -> None:
    opts = parse_mount_options(["tmpcopyup", "mode=755"])
    assert opts.copy_up and opts.data == "mode=755"


def test_empty_option_list_means_nothing_to_do() -> None:
    assert parse_mount_options([]) == MountOptions()


def test_known_options_list_every_documented_word() -> None:
    for word in ("ro", "rw", "nosuid", "rbind", "rprivate", "rro", "rnosymfollow", "strictatime",
                 "lazytime", "nosymfollow", "runbindable", "tmpcopyup"):
        assert word in KNOWN_MOUNT_OPTIONS
    assert "idmap" in KNOWN_MOUNT_OPTIONS and "ridmap" in KNOWN_MOUNT_OPTIONS
    assert list(KNOWN_MOUNT_OPTIONS) == sorted(set(KNOWN_MOUNT_OPTIONS))


def test_rootfs_propagation_names() -> None:
    assert propagation_flags("rslave") == MS_SLAVE | MS_REC
    assert propagation_flags("private") == MS_PRIVATE
    with pytest.raises(ValueError):
        propagation_flags("bogus")


def test_statvfs_flags_translate_relatime_to_the_mount_flag() -> None:
    f_flag = os.ST_NOSUID | os.ST_NODEV | os.ST_RELATIME
    assert ms_flags_from_statvfs(f_flag) == MS_NOSUID | MS_NODEV | MS_RELATIME
