"""LSM labels: the bytes pyrunc writes when an LSM is on, and the refusals when it is off."""

from __future__ import annotations

import pytest

from pyrunc import lsm


def test_apparmor_exec_attr_is_exec_and_the_profile():
    assert lsm.apparmor_exec_attr("docker-default") == b"exec docker-default"


def test_selinux_exec_attr_is_the_label_itself():
    label = "system_u:system_r:container_t:s0:c1,c2"
    assert lsm.selinux_exec_attr(label) == label.encode()


@pytest.mark.parametrize("fstype, data, expected", [
    ("tmpfs", "mode=755", 'mode=755,context="system_u:object_r:container_file_t:s0"'),
    ("devpts", None, 'context="system_u:object_r:container_file_t:s0"'),
    ("proc", None, None),
    ("sysfs", "ro", "ro"),
])
def test_mount_label_goes_into_the_data_of_filesystems_that_take_a_context(fstype, data,
                                                                            expected):
    assert lsm.with_mount_label(fstype, data, "system_u:object_r:container_file_t:s0") == expected
    assert lsm.with_mount_label(fstype, data, None) == data


def test_labels_for_an_lsm_that_is_off_are_refused_naming_the_field(monkeypatch):
    monkeypatch.setattr(lsm, "apparmor_enabled", lambda: False)
    monkeypatch.setattr(lsm, "selinux_enabled", lambda: False)
    for args, pointer in [(("p", None, None), "/process/apparmorProfile"),
                          ((None, "l", None), "/process/selinuxLabel"),
                          ((None, None, "m"), "/linux/mountLabel")]:
        with pytest.raises(lsm.LSMError, match=pointer):
            lsm.check(*args)
    lsm.check(None, None, None)
    monkeypatch.setattr(lsm, "apparmor_enabled", lambda: True)
    lsm.check("p", None, None)
