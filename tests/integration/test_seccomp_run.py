"""config.json `linux.seccomp`, as the container's own program sees it (root, real containers).

The whole module is skipped until the init loads filters (pyrunc/process/child.py uses
pyrunc.seccomp); before that a profile is refused at create time.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest
from pyrunc_testing import needs_root, status_fields

_CHILD = Path(__file__).resolve().parents[2] / "pyrunc" / "process" / "child.py"
if not re.search(r"pyrunc\.seccomp|from pyrunc import [^\n]*\bseccomp\b|seccomp\.load_filter",
                 _CHILD.read_text()):
    pytest.skip("the container init does not load seccomp filters yet", allow_module_level=True)

pytestmark = [needs_root, pytest.mark.integration]

DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                  "errnoRet": errno.EPERM}],
}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and "warning" not in line]


def with_seccomp(profile: dict, **process: object):
    def edit(config: dict) -> None:
        config["linux"]["seccomp"] = profile
        config["root"]["readonly"] = False
        config["process"].update(process)
    return edit


def run(runtime, bundle, *args: str, edit, cid: str = "sc"):
    b = bundle(*args, edit=edit)
    return runtime("run", "-b", str(b), cid, check=False)


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_the_program_runs_under_exactly_one_filter(runtime, bundle, no_new_privileges):
    # Without no_new_privs the filter is loaded while the init still has CAP_SYS_ADMIN.
    result = run(runtime, bundle, "cat", "/proc/self/status",
                 edit=with_seccomp(DENY_MKDIR, noNewPrivileges=no_new_privileges))
    assert result.returncode == 0, result.stderr
    fields = status_fields(result.stdout)
    assert fields["Seccomp"] == "2"
    assert fields["Seccomp_filters"] == "1"
    assert fields["NoNewPrivs"] == ("1" if no_new_privileges else "0")


def test_denied_mkdir_fails_with_eperm_inside(runtime, bundle):
    script = "mkdir /tmp/x; echo rc=$?; test -d /tmp/x && echo made || echo absent; touch /tmp/f " \
             "&& echo touched"
    result = run(runtime, bundle, "sh", "-c", script, edit=with_seccomp(DENY_MKDIR))
    assert result.returncode == 0, result.stderr
    assert "Operation not permitted" in result.stdout + result.stderr
    assert "rc=1" in result.stdout
    assert "absent" in result.stdout and "touched" in result.stdout


def test_errno_ret_and_unknown_names_inside(runtime, bundle):
    # mkdir gets the errnoRet asked for; a name this libseccomp does not know is skipped.
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSPC},
            {"names": ["no_such_syscall_at_all"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    result = run(runtime, bundle, "sh", "-c", "mkdir /tmp/x", edit=with_seccomp(profile))
    assert result.returncode != 0
    assert "No space left on device" in result.stdout + result.stderr


def test_unknown_action_fails_create_naming_the_field(runtime, bundle):
    profile = dict(DENY_MKDIR, syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_FOO"}])
    b = bundle("true", edit=with_seccomp(profile))
    result = runtime("create", "-b", str(b), "bad", check=False)
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "/linux/seccomp/syscalls/0/action" in line and "SCMP_ACT_FOO" in line
    assert not (runtime.root / "bad").exists()


def test_notify_without_a_listener_is_refused_at_create_naming_the_field(runtime, bundle):
    profile = dict(DENY_MKDIR, syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}])
    b = bundle("true", edit=with_seccomp(profile))
    result = runtime("create", "-b", str(b), "bad", check=False)
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "/linux/seccomp/listenerPath" in line
    assert not (runtime.root / "bad").exists()


#: Enough for busybox `sh -c`, `cat` and the runtime's last steps before execve; the rest fails.
ALLOW_LIST = [
    "read", "write", "readv", "writev", "open", "openat", "close", "fstat", "newfstatat",
    "stat", "lstat", "statx", "mmap", "munmap", "mprotect", "brk", "madvise", "rt_sigaction",
    "rt_sigprocmask", "rt_sigreturn", "ioctl", "getpid", "getppid", "gettid", "getuid",
    "geteuid", "getgid", "getegid", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
    "futex", "exit", "exit_group", "wait4", "clone", "clone3", "fork", "vfork", "execve",
    "uname", "fcntl", "dup", "dup2", "dup3", "access", "faccessat", "faccessat2", "getcwd",
    "chdir", "lseek", "readlink", "pipe", "pipe2", "prlimit64", "getrandom", "sysinfo",
    "getdents64", "sendfile", "setgroups", "setresuid", "setresgid", "setuid", "setgid",
    "capget", "capset", "prctl", "close_range", "sendmsg", "recvmsg", "sendto", "recvfrom",
    "poll", "ppoll", "select", "pselect6", "umask", "kill", "tgkill", "socketpair", "getpgrp",
    "setsid",
]


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_deny_by_default_with_an_allow_list(runtime, bundle, no_new_privileges):
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ALLOW_LIST, "action": "SCMP_ACT_ALLOW"}],
    }
    script = "grep -e '^Seccomp:' /proc/self/status; mkdir /tmp/x; echo rc=$?"
    result = run(runtime, bundle, "sh", "-c", script,
                 edit=with_seccomp(profile, noNewPrivileges=no_new_privileges))
    assert result.returncode == 0, result.stderr
    assert "Seccomp:\t2" in result.stdout
    assert "rc=1" in result.stdout
    assert "Operation not permitted" in result.stderr + result.stdout


def test_a_profile_that_denies_close_range_still_starts(runtime, bundle):
    """Profiles older than close_range(2) deny it; without no_new_privs the filter is loaded
    before the init's own last steps, which must not depend on it."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]}
    result = run(runtime, bundle, "echo", "started",
                 edit=with_seccomp(profile, noNewPrivileges=False))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "started\n"
