"""seccomp actions and filter flags as runc 1.5 handles them, observed in real containers.

SCMP_ACT_KILL is KILL_THREAD (as in runc); telling it from KILL_PROCESS needs a program with two
threads, which busybox is not: a small static C program is built with the host's compiler.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pyrunc_testing import needs_root

pytestmark = [needs_root, pytest.mark.integration]

_THREADS_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static void *worker(void *arg) { (void)arg; syscall(SYS_getppid); return NULL; }
int main(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) return 2;
    sleep(1);
    printf("main-alive\n");
    fflush(stdout);
    return 0;
}
"""

_SIGSYS = 31


@pytest.fixture(scope="module")
def threads_program(tmp_path_factory) -> Path:
    """A static binary whose second thread calls getppid while the first one waits."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build a two-thread test program")
    d = tmp_path_factory.mktemp("threads")
    (d / "threads.c").write_text(_THREADS_C)
    built = subprocess.run(["gcc", "-static", "-O1", "-pthread", "-o", str(d / "threads"),
                            str(d / "threads.c")], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"cannot build a static pthread program: {built.stderr.strip()[:200]}")
    return d / "threads"


def _profile(action: str, names: list[str], **rule: object) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": names, "action": action, **rule}]}


def _bundle_with(bundle, profile: dict, *args: str, program: Path | None = None) -> Path:
    def edit(config: dict) -> None:
        config["linux"]["seccomp"] = profile
        config["root"]["readonly"] = False
    b = bundle(*args, edit=edit)
    if program is not None:
        shutil.copy(program, b / "rootfs/threads")
    return b


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL"])
def test_kill_thread_kills_only_the_calling_thread(runtime, bundle, threads_program, action):
    b = _bundle_with(bundle, _profile(action, ["getppid"]), "/threads", program=threads_program)
    result = runtime("run", "-b", str(b), "killthread", check=False)
    assert result.returncode == 0, result
    assert result.stdout.strip() == "main-alive"


def test_kill_process_kills_every_thread_with_sigsys(runtime, bundle, threads_program):
    b = _bundle_with(bundle, _profile("SCMP_ACT_KILL_PROCESS", ["getppid"]), "/threads",
                     program=threads_program)
    result = runtime("run", "-b", str(b), "killprocess", check=False)
    assert "main-alive" not in result.stdout
    assert result.returncode == 128 + _SIGSYS, result


def test_log_lets_the_call_through(runtime, bundle):
    b = _bundle_with(bundle, _profile("SCMP_ACT_LOG", ["mkdir", "mkdirat"]),
                     "sh", "-c", "mkdir /tmp/logged && test -d /tmp/logged && echo made")
    result = runtime("run", "-b", str(b), "log", check=False)
    assert result.returncode == 0, result
    assert result.stdout.strip() == "made"


def test_trace_without_a_tracer_fails_the_call_with_enosys(runtime, bundle):
    """With no tracer attached the kernel skips a SECCOMP_RET_TRACE call with ENOSYS; errnoRet
    is only the message a tracer would read (see the unit test of the program)."""
    b = _bundle_with(bundle, _profile("SCMP_ACT_TRACE", ["mkdir", "mkdirat"], errnoRet=42),
                     "sh", "-c", "mkdir /tmp/traced; echo rc=$?; test -d /tmp/traced || "
                                 "echo absent")
    result = runtime("run", "-b", str(b), "trace", check=False)
    assert "rc=1" in result.stdout and "absent" in result.stdout, result
    assert os.strerror(errno.ENOSYS) in result.stdout + result.stderr


def test_features_lists_the_actions_the_kernel_has(runtime):
    """`features` names an action only when the kernel offers it (its own list in
    /proc/sys/kernel/seccomp/actions_avail) and libseccomp too."""
    kernel = set(Path("/proc/sys/kernel/seccomp/actions_avail").read_text().split())
    names = {"SCMP_ACT_KILL": "kill_thread", "SCMP_ACT_KILL_THREAD": "kill_thread",
             "SCMP_ACT_KILL_PROCESS": "kill_process", "SCMP_ACT_TRAP": "trap",
             "SCMP_ACT_ERRNO": "errno", "SCMP_ACT_TRACE": "trace", "SCMP_ACT_LOG": "log",
             "SCMP_ACT_ALLOW": "allow", "SCMP_ACT_NOTIFY": "user_notif"}
    seccomp = json.loads(runtime("features").stdout)["linux"]["seccomp"]
    assert seccomp["enabled"]
    assert set(seccomp["actions"]) <= {a for a, k in names.items() if k in kernel}
    assert {"SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG",
            "SCMP_ACT_TRACE"} <= set(seccomp["actions"])
    assert set(seccomp["supportedFlags"]) <= set(seccomp["knownFlags"]) == {
        "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}


@pytest.mark.parametrize("profile, pointer", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}, "/linux/seccomp/flags/0"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FOO"],
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}, "/linux/seccomp/flags/1"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
      "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]},
     "/linux/seccomp/syscalls/0/names/1"),
], ids=["wait-killable-without-notify", "unknown-flag", "notify-on-write"])
def test_refused_profiles_name_the_field_and_leave_nothing(runtime, bundle, profile, pointer):
    b = _bundle_with(bundle, profile, "true")
    result = runtime("create", "-b", str(b), "refused", check=False)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and pointer in lines[0], result.stderr
    assert not (runtime.root / "refused").exists()
