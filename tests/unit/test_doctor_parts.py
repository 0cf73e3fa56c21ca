"""The parts of `pyrunc doctor` that need no root: the child runner and the config readers."""

from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path

import pytest

from pyrunc.doctor import DOES_NOT, WORKS, child, engines
from pyrunc.linux.syscalls import KernelError


def test_a_child_reports_its_line():
    outcome = child.in_child(lambda: f"pid {os.getpid()}")
    assert outcome.ok and outcome.text.startswith("pid ") and outcome.text != f"pid {os.getpid()}"


def test_a_failed_step_comes_back_with_its_errno_and_name():
    def probe() -> str:
        raise KernelError(errno.EPERM, "unshare(CLONE_NEWNS)")
    outcome = child.in_child(probe)
    assert not outcome.ok and outcome.errno == errno.EPERM
    assert outcome.failure() == "unshare(CLONE_NEWNS): EPERM (Operation not permitted)"


def test_other_failures_and_signals_are_not_mistaken_for_errnos():
    def broken() -> str:
        raise RuntimeError("the overlay shows nothing")
    outcome = child.in_child(broken)
    assert not outcome.ok and outcome.errno == 0
    assert outcome.failure() == "RuntimeError: the overlay shows nothing"

    def killed() -> str:
        os.kill(os.getpid(), signal.SIGKILL)
        return ""
    outcome = child.in_child(killed)
    assert not outcome.ok and outcome.signal == signal.SIGKILL
    assert "SIGKILL" in outcome.failure()


def test_the_child_is_reaped():
    pid = int(child.in_child(lambda: str(os.getpid())).text)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_containerd_config_version_3_and_a_missing_binary(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text(
        'version = 3\n[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.fast]\n'
        'runtime_type = "io.containerd.runc.v2"\n'
        '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.fast.options]\n'
        f'BinaryName = "{tmp_path}/pyrunc"\n')
    found = engines.containerd(str(config))
    assert found.status == DOES_NOT and "not executable" in found.why
    (tmp_path / "pyrunc").write_text("#!/bin/sh\n")
    (tmp_path / "pyrunc").chmod(0o755)
    found = engines.containerd(str(config))
    assert found.status == WORKS and found.data["pyrunc"] == ["fast"]
    config.write_text("version = [\n")
    assert engines.containerd(str(config)).status == DOES_NOT


def test_podman_reads_only_containers_conf_when_set(tmp_path: Path, monkeypatch):
    conf = tmp_path / "c.conf"
    conf.write_text(f'[engine.runtimes]\nmine = ["{sys.prefix}/bin/pyrunc"]\n')
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    assert engines.podman_configs() == [str(conf)]
    found = engines.podman()
    assert found.status == WORKS and "podman --runtime mine" in found.why


_MOUNTINFO = (
    "30 24 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755\n"
    "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate{v2}\n"
    "32 30 0:28 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu{v1}\n"
)


@pytest.mark.parametrize("v2, v1, where", [
    ("", "", None),
    (",favordynmods", "", "/sys/fs/cgroup/unified"),
    ("", ",favordynmods", "/sys/fs/cgroup/cpu"),
])
def test_the_cgroup_migration_wait_follows_favordynmods(tmp_path: Path, v2, v1, where):
    from pyrunc.doctor.cgroup_layout import migration_wait

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(_MOUNTINFO.format(v2=v2, v1=v1))
    result = migration_wait(str(mountinfo))
    assert result.check == "cgroup.migration" and result.works
    assert result.data["favordynmods"] is (where is not None)
    if where:
        assert f"{where} is mounted with favordynmods" in result.why
    else:
        assert "waits for an RCU grace period" in result.why
