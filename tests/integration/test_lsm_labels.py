"""A label for an LSM this host does not run fails create (and exec) with one line, as runc's
validator does, and leaves nothing behind. Neither AppArmor nor SELinux is on here; the bytes
written where they are on are checked in tests/unit/test_lsm.py."""

from __future__ import annotations

import pytest

from pyrunc import lsm
from pyrunc_testing import needs_root

pytestmark = [needs_root, pytest.mark.integration]


@pytest.mark.parametrize("where, key, value, enabled", [
    ("process", "apparmorProfile", "docker-default", lsm.apparmor_enabled),
    ("process", "selinuxLabel", "system_u:system_r:container_t:s0", lsm.selinux_enabled),
    ("linux", "mountLabel", "system_u:object_r:container_file_t:s0", lsm.selinux_enabled),
])
def test_a_label_for_an_lsm_that_is_off_fails_create_naming_the_field(runtime, bundle, where,
                                                                      key, value, enabled):
    if enabled():
        pytest.skip("this host runs that LSM")

    def edit(config: dict) -> None:
        config[where][key] = value

    result = runtime("create", "-b", str(bundle("true", edit=edit)), "lsm", check=False)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"/{where}/{key}" in lines[0], result.stderr
    assert not (runtime.root / "lsm").exists()


def test_exec_with_an_apparmor_profile_when_apparmor_is_off_fails(runtime, bundle):
    if lsm.apparmor_enabled():
        pytest.skip("AppArmor is on here")
    runtime("run", "-d", "-b", str(bundle("sleep", "100")), "lsmexec")
    try:
        result = runtime("exec", "--apparmor", "docker-default", "lsmexec", "true", check=False)
        assert result.returncode == 255
        assert "/process/apparmorProfile" in result.stderr and "AppArmor" in result.stderr
    finally:
        runtime("delete", "--force", "lsmexec")
