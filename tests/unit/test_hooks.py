"""Lifecycle hooks run as small shell scripts: what they receive, and how their failures read."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyrunc.hooks import HookError, run_hooks
from pyrunc.spec.model import Hook

STATE = {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": 4242,
         "bundle": "/tmp/bundle", "annotations": {"a": "b"}}


@pytest.fixture
def script(tmp_path: Path) -> Callable[[str, str], str]:
    """Write an executable /bin/sh script named `name` with `body`; returns its path."""
    def make(name: str, body: str) -> str:
        path = tmp_path / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
        return str(path)
    return make


def test_hook_gets_state_on_stdin_and_exactly_its_env(
        tmp_path: Path, script: Callable[[str, str], str]) -> None:
    out = tmp_path / "out"
    hook = script("h", f'/bin/cat > {out}.stdin\n/bin/cat /proc/$$/environ > {out}.env\n')
    run_hooks("prestart", [Hook(hook, env=("FOO=bar", "EMPTY=", "PATH=/nowhere"))], STATE)
    assert json.loads(Path(f"{out}.stdin").read_text()) == STATE
    assert Path(f"{out}.env").read_bytes().split(b"\0")[:-1] == [b"FOO=bar", b"EMPTY=",
                                                                   b"PATH=/nowhere"]


def test_args_zero_is_argv0(tmp_path: Path) -> None:
    out = tmp_path / "cmdline"
    hook = Hook("/bin/sh", args=("my-argv0", "-c", f"cat /proc/$$/cmdline > {out}", "x"))
    run_hooks("poststart", [hook], STATE)
    assert out.read_bytes().split(b"\0")[:2] == [b"my-argv0", b"-c"]


def test_empty_args_mean_the_path_alone(tmp_path: Path,
                                        script: Callable[[str, str], str]) -> None:
    out = tmp_path / "argv"
    hook = script("h", f'printf "%s|%s" "$0" "$#" > {out}\n')
    run_hooks("createRuntime", [Hook(hook)], STATE)
    assert out.read_text() == f"{hook}|0"


def test_nonzero_exit_reports_status_and_first_stderr_line(
        script: Callable[[str, str], str]) -> None:
    hook = script("fail", 'echo "to stdout"\necho "" >&2\necho "boom: bad thing" >&2\n'
                          'echo "second line" >&2\nexit 3\n')
    with pytest.raises(HookError) as info:
        run_hooks("prestart", [Hook(hook)], STATE)
    assert str(info.value) == ("error running prestart hook #0: exit status 3, stdout: to stdout, "
                               "stderr: boom: bad thing second line")
    assert (info.value.phase, info.value.path) == ("prestart", hook)


def test_exit_status_without_stderr(script: Callable[[str, str], str]) -> None:
    hook = script("quiet", "exit 1\n")
    with pytest.raises(HookError, match=r"^error running poststop hook #0: exit status 1, "
                                        r"stdout: , stderr: $"):
        run_hooks("poststop", [Hook(hook)], STATE)


def test_missing_hook_is_not_found(tmp_path: Path) -> None:
    path = str(tmp_path / "absent")
    with pytest.raises(HookError) as info:
        run_hooks("createContainer", [Hook(path)], STATE)
    assert str(info.value) == (f"error running createContainer hook #0: fork/exec {path}: "
                               "no such file or directory")


def test_non_executable_hook_is_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "noexec"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o644)  # no x bit at all: execve refuses even root
    with pytest.raises(HookError, match="permission denied"):
        run_hooks("prestart", [Hook(str(path))], STATE)


def test_timeout_kills_the_hook_and_what_it_started(
        tmp_path: Path, script: Callable[[str, str], str]) -> None:
    pidfile = tmp_path / "child"
    hook = script("slow", f"sleep 30 &\necho $! > {pidfile}\nwait\n")
    started = time.monotonic()
    with pytest.raises(HookError) as info:
        run_hooks("prestart", [Hook(hook, timeout=1)], STATE)
    assert time.monotonic() - started < 10
    assert str(info.value) == ("error running prestart hook #0: "
                               "hook ran past specified timeout of 1.0s")
    child = int(pidfile.read_text())
    time.sleep(0.1)
    assert _gone_or_zombie(child)


def test_hooks_run_in_order_and_stop_at_first_failure(
        tmp_path: Path, script: Callable[[str, str], str]) -> None:
    log = tmp_path / "log"
    first = script("one", f"echo one >> {log}\n")
    failing = script("two", f"echo two >> {log}\nexit 2\n")
    third = script("three", f"echo three >> {log}\n")
    with pytest.raises(HookError, match="^error running prestart hook #1: exit status 2"):
        run_hooks("prestart", [Hook(first), Hook(failing), Hook(third)], STATE)
    assert log.read_text().split() == ["one", "two"]


def test_hook_output_never_reaches_the_runtimes_stdout(
        script: Callable[[str, str], str], capfd: pytest.CaptureFixture[str]) -> None:
    hook = script("chatty", "echo hello from the hook\necho warn >&2\n")
    run_hooks("poststart", [Hook(hook)], STATE)
    captured = capfd.readouterr()
    assert captured.out == ""
    assert "hello" not in captured.err


def test_a_daemon_left_holding_the_hooks_output_does_not_block(
        tmp_path: Path, script: Callable[[str, str], str]) -> None:
    pidfile = tmp_path / "daemon"
    hook = script("forks", f"sleep 30 &\necho $! > {pidfile}\nexit 0\n")
    started = time.monotonic()
    try:
        run_hooks("poststart", [Hook(hook, timeout=20)], STATE)
        assert time.monotonic() - started < 5
    finally:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_timeout_zero_means_no_timeout(script: Callable[[str, str], str]) -> None:
    run_hooks("prestart", [Hook(script("ok", "sleep 0.2\n"), timeout=0)], STATE)


def test_signalled_hook_says_which_signal(script: Callable[[str, str], str]) -> None:
    hook = script("killed", "kill -TERM $$\n")
    with pytest.raises(HookError, match=r"#0: signal: terminated, stdout"):
        run_hooks("prestart", [Hook(hook)], STATE)


def test_no_hooks_is_a_no_op() -> None:
    run_hooks("prestart", [], STATE)


def _gone_or_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_hook_without_env_inherits_the_runtimes_environment(
        tmp_path: Path, script: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """runc runs hooks through Go's exec.Cmd, where a nil Env means the parent's environment;
    an explicit empty list is an empty environment."""
    monkeypatch.setenv("FROM_RUNTIME", "yes")
    out = tmp_path / "env"
    hook = script("h", f"/bin/cat /proc/$$/environ > {out}\n")
    run_hooks("prestart", [Hook.from_json({"path": hook})], STATE)
    assert b"FROM_RUNTIME=yes" in out.read_bytes().split(b"\0")
    run_hooks("prestart", [Hook.from_json({"path": hook, "env": None})], STATE)
    assert b"FROM_RUNTIME=yes" in out.read_bytes().split(b"\0")
    run_hooks("prestart", [Hook.from_json({"path": hook, "env": []})], STATE)
    assert out.read_bytes() == b""


def test_start_container_hook_without_env_gets_the_default_env(
        tmp_path: Path, script: Callable[[str, str], str]) -> None:
    """runc 1.5 standard_init: startContainer hooks with no env get the container's env."""
    out = tmp_path / "env"
    hook = script("h", f"/bin/cat /proc/$$/environ > {out}\n")
    container_env = ["PATH=/bin", "HOME=/root"]
    for entry in ({"path": hook}, {"path": hook, "env": []}):
        run_hooks("startContainer", [Hook.from_json(entry)], STATE, default_env=container_env)
        assert out.read_bytes().split(b"\0")[:-1] == [b"PATH=/bin", b"HOME=/root"]
    run_hooks("startContainer", [Hook.from_json({"path": hook, "env": ["A=1"]})], STATE,
              default_env=container_env)
    assert out.read_bytes().split(b"\0")[:-1] == [b"A=1"]
