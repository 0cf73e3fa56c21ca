"""pyrunc.subid: which maps need newuidmap, and the one line that says why a map was refused."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from pyrunc.linux.syscalls import KernelError
from pyrunc.spec.model import IDMapping
from pyrunc.subid import explain_refusal, is_own_single_map, subordinate_ranges


def me() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def test_only_the_callers_own_single_id_is_writable_without_the_helper() -> None:
    assert is_own_single_map((IDMapping(0, 1000, 1),), 1000)
    assert not is_own_single_map((IDMapping(0, 1000, 2),), 1000)
    assert not is_own_single_map((IDMapping(0, 1001, 1),), 1000)
    assert not is_own_single_map((IDMapping(0, 1000, 1), IDMapping(1, 100000, 65536)), 1000)


def test_subordinate_ranges_match_the_name_or_the_uid(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("alice:100000:65536\n1000:300000:10\nbob:200000:65536\nbroken\n")
    assert subordinate_ranges(str(subuid), "alice", 1000) == [(100000, 65536), (300000, 10)]
    assert subordinate_ranges(str(subuid), "carol", 1002) == []
    assert subordinate_ranges(str(tmp_path / "missing"), "alice", 1000) == []


def test_a_user_without_an_entry_is_told_how_to_get_one(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("")
    line = explain_refusal("uid_map", (IDMapping(0, 1000, 1), IDMapping(1, 100000, 10)),
                           1000, str(subuid))
    assert line == (f"{subuid} has no entry for {me()}: root can add one (usermod "
                    f"--add-subuids=START-END {me()})")


def test_a_range_outside_the_entry_is_named_with_the_allowed_ranges(tmp_path: Path) -> None:
    subgid = tmp_path / "subgid"
    subgid.write_text(f"{me()}:100000:65536\n")
    line = explain_refusal("gid_map", (IDMapping(0, 1000, 1), IDMapping(1, 165530, 10)),
                           1000, str(subgid))
    assert line == (f"host gids 165530-165539 (container 1) are outside {me()}'s ranges in "
                    f"{subgid} (100000-165535)")


def test_a_kernel_error_with_a_hint_is_still_one_line() -> None:
    err = KernelError(28, "create user namespace", hint="raise user.max_user_namespaces")
    assert str(err) == ("create user namespace: ENOSPC (No space left on device): "
                        "raise user.max_user_namespaces")
    assert str(KernelError(1, "mount /x")) == "mount /x: EPERM (Operation not permitted)"
