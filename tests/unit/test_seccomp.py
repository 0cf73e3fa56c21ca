"""pyrunc.seccomp: profile checks, the libseccomp tables, and filters loaded into a real kernel.

The filters are loaded in a forked child that first sets no_new_privs (so no root is needed);
the child reports what it saw through a pipe as JSON and exits without running pytest's cleanup.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from pyrunc import seccomp
from pyrunc.linux.syscalls import KernelError, prctl

PR_SET_NO_NEW_PRIVS = 38

try:
    seccomp.preload()
    HAVE_LIBSECCOMP = True
except KernelError:
    HAVE_LIBSECCOMP = False

needs_libseccomp = pytest.mark.skipif(not HAVE_LIBSECCOMP, reason="libseccomp.so.2 not installed")


def profile(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW"}
    out.update(fields)
    return out


def check_error(prof: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as info:
        seccomp.check_profile(prof)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- check_profile --------------------------------------------------------------------------------

@needs_libseccomp
def test_a_valid_profile_passes() -> None:
    seccomp.check_profile(profile(
        defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=38,
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        flags=["SECCOMP_FILTER_FLAG_LOG"],
        syscalls=[{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                  {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]}]))


def test_unknown_default_action_names_the_pointer() -> None:
    assert check_error(profile(defaultAction="SCMP_ACT_FOO")) == \
        '/linux/seccomp/defaultAction: unknown action "SCMP_ACT_FOO"'


def test_unknown_rule_action_names_the_pointer() -> None:
    rules = [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}] * 3 + \
        [{"names": ["mkdir"], "action": "SCMP_ACT_FOO"}]
    assert check_error(profile(syscalls=rules)) == \
        '/linux/seccomp/syscalls/3/action: unknown action "SCMP_ACT_FOO"'


def test_unknown_operator_names_the_pointer() -> None:
    rules = [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
              "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                       {"index": 1, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]
    assert check_error(profile(syscalls=rules)) == \
        '/linux/seccomp/syscalls/0/args/1/op: unknown operator "SCMP_CMP_ALMOST"'


def test_bad_argument_index_names_the_pointer() -> None:
    rules = [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
              "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
    assert check_error(profile(syscalls=rules)).startswith(
        "/linux/seccomp/syscalls/0/args/0/index: ")


@needs_libseccomp
def test_unknown_architecture_names_the_pointer() -> None:
    message = check_error(profile(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]))
    assert message == '/linux/seccomp/architectures/1: unknown architecture "SCMP_ARCH_VAX"'


@needs_libseccomp
def test_unknown_flag_names_the_pointer() -> None:
    assert check_error(profile(flags=["SECCOMP_FILTER_FLAG_FAST"])) == \
        '/linux/seccomp/flags/0: unknown flag "SECCOMP_FILTER_FLAG_FAST"'


def test_notify_needs_a_listener_and_is_never_the_default() -> None:
    message = check_error(profile(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]))
    assert message.startswith("/linux/seccomp/listenerPath: ")
    assert "must be set" in message
    message = check_error(profile(defaultAction="SCMP_ACT_NOTIFY",
                                  listenerPath="/run/listener.sock"))
    assert message.startswith("/linux/seccomp/defaultAction: ")
    message = check_error(profile(listenerPath="relative.sock"))
    assert message.startswith("/linux/seccomp/listenerPath: ")


def test_empty_names_are_refused() -> None:
    assert check_error(profile(syscalls=[{"names": [], "action": "SCMP_ACT_ERRNO"}])) \
        .startswith("/linux/seccomp/syscalls/0/names: ")


# --- tables ---------------------------------------------------------------------------------------

def test_action_encodings() -> None:
    assert seccomp.action_value("SCMP_ACT_KILL") == 0x00000000
    assert seccomp.action_value("SCMP_ACT_KILL_THREAD") == 0x00000000
    assert seccomp.action_value("SCMP_ACT_KILL_PROCESS") == 0x80000000
    assert seccomp.action_value("SCMP_ACT_TRAP") == 0x00030000
    assert seccomp.action_value("SCMP_ACT_ERRNO") == 0x00050000 | errno.EPERM
    assert seccomp.action_value("SCMP_ACT_ERRNO", 38) == 0x00050026
    assert seccomp.action_value("SCMP_ACT_TRACE") == 0x7FF00000 | errno.EPERM
    assert seccomp.action_value("SCMP_ACT_TRACE", 7) == 0x7FF00007
    assert seccomp.action_value("SCMP_ACT_LOG") == 0x7FFC0000
    assert seccomp.action_value("SCMP_ACT_ALLOW") == 0x7FFF0000


def test_operator_and_architecture_tables() -> None:
    assert seccomp.OPERATORS["SCMP_CMP_NE"] == 1
    assert seccomp.OPERATORS["SCMP_CMP_MASKED_EQ"] == 7
    assert sorted(seccomp.OPERATORS.values()) == list(range(1, 8))
    assert seccomp.ARCHITECTURES["SCMP_ARCH_X86_64"] == "x86_64"
    assert seccomp.ARCHITECTURES["SCMP_ARCH_AARCH64"] == "aarch64"
    assert seccomp.ARCHITECTURES["SCMP_ARCH_MIPSEL64N32"] == "mipsel64n32"


@needs_libseccomp
def test_architectures_resolve_to_audit_tokens() -> None:
    # AUDIT_ARCH_X86_64 and AUDIT_ARCH_I386 (linux/audit.h); libseccomp uses them as tokens.
    assert seccomp._resolve_arch("SCMP_ARCH_X86_64") == 0xC000003E
    assert seccomp._resolve_arch("SCMP_ARCH_X86") == 0x40000003
    assert seccomp._resolve_arch("SCMP_ARCH_AARCH64") == 0xC00000B7


@needs_libseccomp
def test_features_shape() -> None:
    feats = seccomp.features()
    assert feats["enabled"] is True
    assert set(feats) == {"enabled", "actions", "operators", "archs", "knownFlags",
                          "supportedFlags"}
    assert {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"} <= set(feats["actions"])
    assert "SCMP_ACT_NOTIFY" in feats["actions"]
    assert feats["operators"] == list(seccomp.OPERATORS)
    assert "SCMP_ARCH_X86_64" in feats["archs"]
    assert set(feats["supportedFlags"]) <= set(feats["knownFlags"])
    assert "SECCOMP_FILTER_FLAG_TSYNC" in feats["supportedFlags"]
    json.dumps(feats)


@needs_libseccomp
def test_library_version_is_at_least_2_5() -> None:
    assert seccomp.version() >= (2, 5, 0)
    assert seccomp.api_level() >= 1


# --- real filters ---------------------------------------------------------------------------------

def in_filtered_child(prof: dict[str, Any], probe: Callable[[], Any]) -> Any:
    """Fork; the child sets no_new_privs, loads `prof` and returns probe()'s JSON result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            seccomp.load_filter(prof)
            result = {"ok": probe()}
        except BaseException as exc:  # noqa: BLE001
            result = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write_fd, json.dumps(result).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result = json.loads(data)
    assert "error" not in result, result["error"]
    return result["ok"]


def seccomp_status() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f)
                if k.startswith("Seccomp")}


def try_errno(fn: Callable[[], Any]) -> int:
    try:
        fn()
    except OSError as exc:
        return exc.errno or -1
    return 0


@needs_libseccomp
def test_errno_rule_denies_mkdir(tmp_path) -> None:
    prof = profile(syscalls=[{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                              "errnoRet": errno.EPERM}])

    def probe() -> Any:
        return {"mkdir": try_errno(lambda: os.mkdir(tmp_path / "x")),
                "status": seccomp_status()}

    seen = in_filtered_child(prof, probe)
    assert seen["mkdir"] == errno.EPERM
    assert seen["status"]["Seccomp"] == "2"
    assert seen["status"].get("Seccomp_filters", "1") == "1"
    assert not (tmp_path / "x").exists()


@needs_libseccomp
def test_errno_ret_is_returned_and_defaults_to_eperm(tmp_path) -> None:
    prof = profile(syscalls=[
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSPC},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}])
    (tmp_path / "d").mkdir()

    def probe() -> Any:
        return [try_errno(lambda: os.mkdir(tmp_path / "x")),
                try_errno(lambda: os.rmdir(tmp_path / "d"))]

    assert in_filtered_child(prof, probe) == [errno.ENOSPC, errno.EPERM]


@needs_libseccomp
def test_argument_rule_matches_only_the_given_value() -> None:
    # personality(0xffffffff) only queries the persona; anything else is denied.
    prof = profile(syscalls=[
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
         "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_NE"}]}])

    def probe() -> Any:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        query = libc.personality(ctypes.c_ulong(0xFFFFFFFF))
        set_linux = libc.personality(ctypes.c_ulong(0))
        return [query >= 0, set_linux, ctypes.get_errno()]

    query_ok, set_result, err = in_filtered_child(prof, probe)
    assert query_ok
    assert set_result == -1 and err == errno.EACCES


@needs_libseccomp
def test_masked_eq_uses_value_as_mask_and_value_two_as_datum(tmp_path) -> None:
    # Deny mkdir when (mode & 0o7) == 0o7, i.e. world-rwx directories.
    prof = profile(syscalls=[
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 1, "value": 0o7, "valueTwo": 0o7, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 2, "value": 0o7, "valueTwo": 0o7, "op": "SCMP_CMP_MASKED_EQ"}]}])

    def probe() -> Any:
        return [try_errno(lambda: os.mkdir(tmp_path / "open", 0o777)),
                try_errno(lambda: os.mkdir(tmp_path / "closed", 0o750))]

    assert in_filtered_child(prof, probe) == [errno.EPERM, 0]


@needs_libseccomp
def test_repeated_argument_index_makes_alternative_rules() -> None:
    # Two comparisons on arg 0: either matching denies (they cannot both hold).
    prof = profile(syscalls=[
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": 0x20008, "op": "SCMP_CMP_EQ"}]}])

    def probe() -> Any:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        out = []
        for persona in (8, 0x20008):
            res = libc.personality(ctypes.c_ulong(persona))
            out.append(ctypes.get_errno() if res == -1 else 0)
        return out

    assert in_filtered_child(prof, probe) == [errno.EPERM, errno.EPERM]


@needs_libseccomp
def test_unknown_syscall_names_are_skipped(tmp_path) -> None:
    prof = profile(syscalls=[{"names": ["no_such_syscall", "mkdir", "mkdirat"],
                              "action": "SCMP_ACT_ERRNO"}])

    def probe() -> Any:
        return try_errno(lambda: os.mkdir(tmp_path / "x"))

    assert in_filtered_child(prof, probe) == errno.EPERM


@needs_libseccomp
def test_deny_by_default_with_allow_list_and_default_errno_ret() -> None:
    # Everything not listed fails with ENOSYS; rules equal to the default are dropped.
    allowed = ["read", "write", "close", "exit", "exit_group", "getpid", "brk", "mmap",
               "munmap", "rt_sigreturn", "rt_sigaction", "rt_sigprocmask", "futex",
               "madvise", "mprotect"]
    prof = profile(defaultAction="SCMP_ACT_ERRNO", defaultErrnoRet=errno.ENOSYS,
                   architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                   syscalls=[{"names": allowed, "action": "SCMP_ACT_ALLOW"},
                             {"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
                              "errnoRet": errno.ENOSYS}])

    def probe() -> Any:
        return [os.getpid() > 0, try_errno(os.uname),
                try_errno(lambda: os.open("/", os.O_RDONLY))]

    # The probe runs before the result is encoded, so json/os.write must still work: they only
    # use allowed calls (write and memory management).
    assert in_filtered_child(prof, probe) == [True, errno.ENOSYS, errno.ENOSYS]


@needs_libseccomp
def test_flags_are_applied() -> None:
    prof = profile(flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"],
                   syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_LOG"}])

    def probe() -> Any:
        return [os.getppid() > 0, seccomp_status()["Seccomp"]]

    assert in_filtered_child(prof, probe) == [True, "2"]


@needs_libseccomp
def test_filter_does_not_set_no_new_privs_by_itself() -> None:
    """libseccomp sets no_new_privs on load by default; the config decides, so it must not."""
    if os.geteuid() != 0:
        pytest.skip("loading without no_new_privs needs CAP_SYS_ADMIN")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            seccomp.load_filter(profile(syscalls=[{"names": ["getppid"],
                                                   "action": "SCMP_ACT_ERRNO"}]))
            with open("/proc/self/status") as f:
                nnp = next(line.split()[1] for line in f if line.startswith("NoNewPrivs:"))
            os.write(write_fd, nnp.encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    assert data == b"0"


@needs_libseccomp
def test_a_built_filter_can_be_released_unloaded() -> None:
    def probe() -> Any:
        filt = seccomp.build_filter(profile(syscalls=[{"names": ["getppid"],
                                                       "action": "SCMP_ACT_ERRNO"}]))
        filt.release()
        filt.release()  # twice is harmless
        with pytest.raises(KernelError):
            filt.load()
        return seccomp_status().get("Seccomp_filters", "1")

    # in_filtered_child loads an allow-all filter first: that one only, not a second.
    assert in_filtered_child(profile(), probe) == "1"


@needs_libseccomp
def test_a_bad_rule_fails_while_building() -> None:
    # An argument number libseccomp rejects (the profile check catches it first in pyrunc).
    bad = profile(syscalls=[{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 9, "value": 0, "op": "SCMP_CMP_EQ"}]}])
    with pytest.raises(KernelError) as info:
        seccomp.build_filter(bad)
    assert "personality" in str(info.value) and "/linux/seccomp/syscalls/0" in str(info.value)


@needs_libseccomp
@pytest.mark.parametrize("errno_ret, message", [(42, 42), (None, errno.EPERM)])
def test_trace_errno_ret_is_the_tracers_message_in_the_program(errno_ret, message) -> None:
    """As runc: SCMP_ACT_TRACE carries errnoRet (EPERM when absent) as SECCOMP_RET_DATA, the
    value a tracer reads with PTRACE_GETEVENTMSG; it is in the program handed to seccomp(2)."""
    import struct

    rule: dict[str, Any] = {"names": ["mkdir"], "action": "SCMP_ACT_TRACE"}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    filt = seccomp.build_filter(profile(syscalls=[rule]))
    try:
        program = filt.program()
    finally:
        filt.release()
    returns = {k for code, _jt, _jf, k in struct.iter_unpack("<HBBI", program)
               if code == 0x06}  # BPF_RET | BPF_K
    assert 0x7FF00000 | message in returns


def test_a_flag_the_kernel_lacks_is_refused_naming_it(monkeypatch) -> None:
    from pyrunc.linux import syscalls

    monkeypatch.setattr(syscalls, "seccomp_flags_available", lambda flags: False)
    with pytest.raises(ValueError) as info:
        seccomp.check_profile(profile(flags=["SECCOMP_FILTER_FLAG_TSYNC",
                                             "SECCOMP_FILTER_FLAG_LOG"]))
    assert str(info.value).startswith("/linux/seccomp/flags/1: ")
    assert "not supported by this kernel" in str(info.value)
