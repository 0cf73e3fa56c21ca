"""config.json `linux.seccomp`: build a filter with libseccomp (through ctypes) and load it.

This is the only place pyrunc talks to libseccomp. The library is a thin binding: it turns the
profile's syscall names into numbers for every architecture listed and compiles the rules to BPF.
Its functions return negative errno values on failure; those are raised as `KernelError` naming
the step. pyrunc then loads the program itself, as runc does: it exports libseccomp's BPF, puts
runc's -ENOSYS stub in front (`pyrunc.seccomp_enosys`, which says why a stub and not extra
rules) and calls seccomp(2) with the profile's SECCOMP_FILTER_FLAG_* bits, which --debug logs
as runc does (`seccomp filter flags: N`). Without `flags` SPEC_ALLOW is used where supported.

Three moments in a container's life use it:

* `check_profile` at create time, in the runtime: every name in the profile is known (the JSON
  pointer of the first bad one is in the error);
* `preload` in the init before pivot_root, while the host's copy of the library is reachable;
* `load_filter` in the init as late as possible: right before execve when no_new_privs is set,
  else before the capabilities are dropped (loading without no_new_privs needs CAP_SYS_ADMIN).
"""

from __future__ import annotations

import ctypes
import errno
import os

from pyrunc import seccomp_enosys
from pyrunc.linux.syscalls import KernelError, seccomp_set_mode_filter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LIBRARY = "libseccomp.so.2"

# --- libseccomp's encodings (include/seccomp.h) ---------------------------------------------------

_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000      # | (errno & 0xffff)
_ACT_TRACE = 0x7FF00000      # | (message & 0xffff)
_ACT_LOG = 0x7FFC0000
_ACT_NOTIFY = 0x7FC00000
_ACT_ALLOW = 0x7FFF0000
_DATA_MASK = 0x0000FFFF

#: OCI action name -> (base action value, whether errnoRet goes into the low 16 bits,
#: the libseccomp API level the running kernel must offer for it).
ACTIONS: dict[str, tuple[int, bool, int]] = {
    "SCMP_ACT_KILL": (_ACT_KILL_THREAD, False, 1),
    "SCMP_ACT_KILL_THREAD": (_ACT_KILL_THREAD, False, 1),
    "SCMP_ACT_KILL_PROCESS": (_ACT_KILL_PROCESS, False, 3),
    "SCMP_ACT_TRAP": (_ACT_TRAP, False, 1),
    "SCMP_ACT_ERRNO": (_ACT_ERRNO, True, 1),
    "SCMP_ACT_TRACE": (_ACT_TRACE, True, 1),
    "SCMP_ACT_ALLOW": (_ACT_ALLOW, False, 1),
    "SCMP_ACT_LOG": (_ACT_LOG, False, 3),
    "SCMP_ACT_NOTIFY": (_ACT_NOTIFY, False, 6),  # runc 1.5 wants API level 6 for notify
}

#: OCI operator name -> enum scmp_compare.
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

#: OCI architecture name -> the name libseccomp resolves (seccomp_arch_resolve_name).
ARCHITECTURES: dict[str, str] = {
    f"SCMP_ARCH_{token.upper()}": token
    for token in ("x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32",
                  "mipsel", "mipsel64", "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390",
                  "s390x", "parisc", "parisc64", "riscv64", "loongarch64", "m68k", "sh", "sheb")
}

# enum scmp_filter_attr
_FLTATR_CTL_NNP = 3
_FLTATR_API_SYSRAWRC = 9

#: OCI flag -> the SECCOMP_FILTER_FLAG_* bit given to seccomp(2) (runc 1.5 knows the same four).
#: TSYNC is accepted but, as in runc, not passed (the init has one thread); these numbers are
#: what --debug logs. pyrunc loads the program itself, so whether a flag works is the kernel's
#: answer alone (runc also asks libseccomp, whose 2.5 does not know WAIT_KILLABLE_RECV).
KERNEL_FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 0,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}

#: SECCOMP_FILTER_FLAG_NEW_LISTENER: seccomp(2) returns a user-notification fd.
_FILTER_FLAG_NEW_LISTENER = 1 << 3
_WAIT_KILLABLE_RECV = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"

#: Default actions for which no -ENOSYS stub is added (runc: a good tracer handles new calls).
_PERMISSIVE = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")

#: libseccomp's token for x32 is not the kernel's AUDIT_ARCH (x32 shares x86_64's).
_X32_TOKEN = 0x4000003E

_NR_SCMP_ERROR = -1
_MAX_ARGS = 6


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    """struct scmp_version."""

    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


# --- the library ----------------------------------------------------------------------------------

_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL(LIBRARY, use_errno=True)
    except OSError as exc:
        raise KernelError(errno.ENOENT, f"load {LIBRARY} for seccomp ({exc})") from None
    _declare(lib)
    _lib = lib
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    """Every prototype, looked up now: after pivot_root dlsym still works, but be explicit."""
    ctx = ctypes.c_void_p
    protos: list[tuple[str, Any, list[Any]]] = [
        ("seccomp_version", ctypes.POINTER(_Version), []),
        ("seccomp_api_get", ctypes.c_uint, []),
        ("seccomp_init", ctx, [ctypes.c_uint32]),
        ("seccomp_release", None, [ctx]),
        ("seccomp_arch_resolve_name", ctypes.c_uint32, [ctypes.c_char_p]),
        ("seccomp_arch_native", ctypes.c_uint32, []),
        ("seccomp_arch_add", ctypes.c_int, [ctx, ctypes.c_uint32]),
        ("seccomp_attr_set", ctypes.c_int, [ctx, ctypes.c_int, ctypes.c_uint32]),
        ("seccomp_attr_get", ctypes.c_int, [ctx, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32)]),
        ("seccomp_syscall_resolve_name", ctypes.c_int, [ctypes.c_char_p]),
        ("seccomp_rule_add_array", ctypes.c_int,
         [ctx, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)]),
        ("seccomp_load", ctypes.c_int, [ctx]),
        ("seccomp_export_bpf", ctypes.c_int, [ctx, ctypes.c_int]),
        ("seccomp_syscall_resolve_name_arch", ctypes.c_int, [ctypes.c_uint32, ctypes.c_char_p]),
    ]
    for name, restype, argtypes in protos:
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = argtypes


def preload() -> None:
    """dlopen libseccomp now (the init calls this before pivot_root hides the host's library)."""
    _library()


def version() -> tuple[int, int, int]:
    v = _library().seccomp_version().contents
    return (v.major, v.minor, v.micro)


def api_level() -> int:
    """What libseccomp found this kernel supports (1 = basic filters ... 6 and up)."""
    return int(_library().seccomp_api_get())


def _check(result: int, step: str) -> int:
    if result < 0:
        raise KernelError(-result, step)
    return result


def _resolve_arch(oci_name: str) -> int:
    """libseccomp's token for an OCI architecture name; 0 when this libseccomp lacks it."""
    token = ARCHITECTURES.get(oci_name)
    if token is None:
        return 0
    return int(_library().seccomp_arch_resolve_name(token.encode()))


def _supported_flags() -> list[str]:
    """The flags this kernel accepts, each probed with seccomp(2) (nothing is loaded)."""
    from pyrunc.linux.syscalls import seccomp_flags_available

    out = []
    for name, bit in KERNEL_FLAGS.items():
        if bit == 0:
            out.append(name)  # TSYNC: accepted, never passed
            continue
        # WAIT_KILLABLE_RECV is only valid together with a listener.
        if name == _WAIT_KILLABLE_RECV:
            bit |= _FILTER_FLAG_NEW_LISTENER
        if seccomp_flags_available(bit):
            out.append(name)
    return out


def _supported_actions(level: int | None = None) -> list[str]:
    """The actions both libseccomp (its API level) and the kernel (SECCOMP_GET_ACTION_AVAIL)
    offer."""
    from pyrunc.linux.syscalls import seccomp_action_available

    level = api_level() if level is None else level
    return [name for name, (value, _data, needs) in ACTIONS.items()
            if level >= needs and seccomp_action_available(value)]


# --- create-time validation -----------------------------------------------------------------------

_BASE = "/linux/seccomp"


def check_profile(profile: dict[str, Any]) -> None:
    """Check every name in `profile` without loading anything.

    Raises ValueError with one line that starts with the JSON pointer of the offending field.
    """
    def fail(pointer: str, message: str) -> ValueError:
        return ValueError(f"{_BASE}{pointer}: {message}")

    if not isinstance(profile, dict):
        raise fail("", "must be an object")
    _check_action(profile.get("defaultAction"), "/defaultAction", fail, required=True)
    if profile.get("defaultAction") == "SCMP_ACT_NOTIFY":
        # Every syscall of the container (and of the runtime until execve) would wait on it.
        raise fail("/defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    if uses_notify(profile) and not profile.get("listenerPath"):
        raise fail("/listenerPath", "must be set when a rule uses SCMP_ACT_NOTIFY (the "
                   "notifications need an agent to answer them)")
    listener = profile.get("listenerPath")
    if listener is not None and (not isinstance(listener, str) or not listener.startswith("/")):
        raise fail("/listenerPath", f"{_q(listener)} must be an absolute path")
    _check_errno_ret(profile.get("defaultErrnoRet"), "/defaultErrnoRet", fail)

    for i, arch in enumerate(profile.get("architectures") or []):
        if arch not in ARCHITECTURES:
            raise fail(f"/architectures/{i}", f"unknown architecture {_q(arch)}")
        if _resolve_arch(arch) == 0:
            raise fail(f"/architectures/{i}",
                       f"architecture {_q(arch)} is not supported by libseccomp "
                       f"{'.'.join(map(str, version()))}")

    flags = profile.get("flags") or []
    if flags:
        supported = _supported_flags()
        for i, flag in enumerate(flags):
            if flag not in KERNEL_FLAGS:
                raise fail(f"/flags/{i}", f"unknown flag {_q(flag)}")
            if flag not in supported:
                raise fail(f"/flags/{i}", f"flag {_q(flag)} is not supported by this kernel "
                           f"({os.uname().release})")
            if flag == _WAIT_KILLABLE_RECV and not uses_notify(profile):
                raise fail(f"/flags/{i}", f"flag {_q(flag)} needs a rule with SCMP_ACT_NOTIFY "
                           "(the kernel refuses it without a listener)")

    for i, rule in enumerate(profile.get("syscalls") or []):
        where = f"/syscalls/{i}"
        if not isinstance(rule, dict):
            raise fail(where, "must be an object")
        names = rule.get("names")
        if not isinstance(names, list) or not names:
            raise fail(f"{where}/names", "must list at least one system call name")
        for j, name in enumerate(names):
            if not isinstance(name, str) or not name:
                raise fail(f"{where}/names/{j}", "must be a non-empty string")
        _check_action(rule.get("action"), f"{where}/action", fail, required=True)
        if rule.get("action") == "SCMP_ACT_NOTIFY" and "write" in names:
            # As runc: the runtime's own writes between loading the filter and execve would
            # wait on an agent that has not been given the fd yet.
            raise fail(f"{where}/names/{names.index('write')}",
                       "SCMP_ACT_NOTIFY cannot be used for the write syscall")
        _check_errno_ret(rule.get("errnoRet"), f"{where}/errnoRet", fail)
        args = rule.get("args") or []
        if len(args) > _MAX_ARGS:
            raise fail(f"{where}/args", f"at most {_MAX_ARGS} argument comparisons")
        for k, arg in enumerate(args):
            apath = f"{where}/args/{k}"
            if not isinstance(arg, dict):
                raise fail(apath, "must be an object")
            index = arg.get("index")
            if not isinstance(index, int) or isinstance(index, bool) or \
                    not 0 <= index < _MAX_ARGS:
                raise fail(f"{apath}/index", f"must be an argument number 0-{_MAX_ARGS - 1}")
            for key in ("value", "valueTwo"):
                value = arg.get(key, 0)
                if not isinstance(value, int) or isinstance(value, bool) or \
                        not 0 <= value < 1 << 64:
                    raise fail(f"{apath}/{key}", "must be an unsigned 64-bit integer")
            op = arg.get("op")
            if op not in OPERATORS:
                raise fail(f"{apath}/op", f"unknown operator {_q(op)}")


def _q(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _check_action(action: Any, pointer: str, fail: Any, *, required: bool) -> None:
    if action is None and not required:
        return
    if action not in ACTIONS:
        raise fail(pointer, f"unknown action {_q(action)}")
    if action not in _available_actions():
        raise fail(pointer, f"action {_q(action)} is not supported by libseccomp "
                   f"{'.'.join(map(str, version()))} (API level {api_level()}) on this kernel")


_actions_seen: tuple[str, ...] | None = None


def _available_actions() -> tuple[str, ...]:
    """`_supported_actions`, asked once per process (a profile names an action many times)."""
    global _actions_seen
    if _actions_seen is None:
        _actions_seen = tuple(_supported_actions())
    return _actions_seen


def _check_errno_ret(value: Any, pointer: str, fail: Any) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _DATA_MASK:
        raise fail(pointer, f"must be an errno number 0-{_DATA_MASK}")


# --- building and loading -------------------------------------------------------------------------

def action_value(name: str, errno_ret: int | None = None) -> int:
    """libseccomp's uint32 for an OCI action; ERRNO and TRACE default their data to EPERM."""
    base, takes_data, _level = ACTIONS[name]
    if takes_data:
        data = errno.EPERM if errno_ret is None else errno_ret
        return base | (data & _DATA_MASK)
    return base


def _conditions(args: list[dict[str, Any]]) -> list[list[_ArgCmp]]:
    """The argument comparisons of one rule, as the rules libseccomp gets.

    Comparisons on different arguments all have to hold (one rule). When an argument is compared
    more than once, libseccomp cannot AND them, so each comparison becomes a rule of its own and
    any of them matching applies the action (runc's reading of such profiles).
    """
    cmps = [_ArgCmp(arg=a["index"], op=OPERATORS[a["op"]], datum_a=a.get("value", 0),
                    datum_b=a.get("valueTwo", 0)) for a in args]
    indexes = [a["index"] for a in args]
    if len(set(indexes)) != len(indexes):
        return [[c] for c in cmps]
    return [cmps]


class Filter:
    """A filter built by libseccomp but not loaded yet (building is where a profile can fail).

    The init builds it while it can still report errors to `pyrunc create`, and loads it as late
    as it may: `load()` can be called once; `release()` frees libseccomp's copy either way.
    Loading exports libseccomp's BPF, puts runc's -ENOSYS stub in front of it (see
    `pyrunc.seccomp_enosys`) and hands it to the kernel with the profile's flags.
    """

    def __init__(self, ctx: int, last_syscalls: dict[int, dict[str, int]] | None = None,
                 kernel_flags: int = 0, notify: bool = False) -> None:
        self._ctx: int | None = ctx
        self.last_syscalls = last_syscalls or {}
        self.kernel_flags = kernel_flags
        self.notify = notify    # rules use SCMP_ACT_NOTIFY: loading yields a listener fd

    def program(self) -> bytes:
        """The whole program: the stub, then libseccomp's filter."""
        if self._ctx is None:
            raise KernelError(errno.EINVAL, "seccomp: export a released filter")
        fd = os.memfd_create("pyrunc-seccomp", os.MFD_CLOEXEC)
        try:
            _check(_library().seccomp_export_bpf(self._ctx, fd), "seccomp: export the filter")
            size = os.lseek(fd, 0, os.SEEK_END)
            raw = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        return seccomp_enosys.encode(seccomp_enosys.stub_program(self.last_syscalls)) + raw

    def load(self) -> int | None:
        """Load the filter; with SCMP_ACT_NOTIFY rules, return the listener fd (the agent's)."""
        from pyrunc import log

        if self._ctx is None:
            raise KernelError(errno.EINVAL, "seccomp: load a released filter")
        try:
            program = self.program()
            flags = self.kernel_flags | (_FILTER_FLAG_NEW_LISTENER if self.notify else 0)
            # runc logs the same line (its tests read it): the flags as one number.
            log.debug(f"seccomp filter flags: {flags}")
            fd = seccomp_set_mode_filter(program, flags)
            return fd if self.notify else None
        finally:
            self.release()

    def release(self) -> None:
        if self._ctx is not None:
            _library().seccomp_release(self._ctx)
            self._ctx = None


def _kernel_flags(profile: dict[str, Any]) -> int:
    """SECCOMP_FILTER_FLAG_* for seccomp(2). No `flags` at all (not even []) means
    SPEC_ALLOW where it is supported, as runc 1.5 does."""
    flags = profile.get("flags")
    if flags is None:
        flags = ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"] \
            if "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in _supported_flags() else []
    result = 0
    for flag in flags:
        result |= KERNEL_FLAGS[flag]
    return result


def _last_syscalls(profile: dict[str, Any]) -> dict[int, dict[str, int]]:
    """AUDIT_ARCH -> {"native" | "x32": the largest number the profile names} for the stub;
    empty when the default action needs no stub (permissive, or already ENOSYS)."""
    from pyrunc import log

    if profile["defaultAction"] in _PERMISSIVE:
        log.debug("seccomp: skipping -ENOSYS stub filter generation")
        return {}
    if profile["defaultAction"] == "SCMP_ACT_ERRNO" and \
            profile.get("defaultErrnoRet") == errno.ENOSYS:
        return {}
    lib = _library()
    tokens = {int(lib.seccomp_arch_native())}
    tokens |= {_resolve_arch(arch) for arch in profile.get("architectures") or []}
    names = {name.encode() for rule in profile.get("syscalls") or [] for name in rule["names"]}
    result: dict[int, dict[str, int]] = {}
    for token in sorted(tokens - {0}):
        largest = max((n for n in (lib.seccomp_syscall_resolve_name_arch(token, name)
                                   for name in names) if n >= 0), default=0)
        if largest == 0:
            log.warning(f"seccomp: could not find any syscalls for arch {token:#x}")
            continue
        audit = 0xC000003E if token == _X32_TOKEN else token
        result.setdefault(audit, {})["x32" if token == _X32_TOKEN else "native"] = largest
        log.debug(f"seccomp: largest syscall number for arch {token:#x} is {largest}")
    return result


def build_filter(profile: dict[str, Any]) -> Filter:
    """Turn `profile` into a libseccomp filter, ready for `Filter.load()`."""
    from pyrunc import log

    lib = _library()
    default = action_value(profile["defaultAction"], profile.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise KernelError(errno.EINVAL, f"seccomp: create filter with default action "
                          f"{profile['defaultAction']}")
    try:
        # no_new_privs is the config's business (process.noNewPrivileges), not libseccomp's.
        _check(lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0), "seccomp: clear the NNP attribute")
        # Report the kernel's own errno from seccomp_load rather than ECANCELED (2.5.0+).
        lib.seccomp_attr_set(ctx, _FLTATR_API_SYSRAWRC, 1)
        for arch in profile.get("architectures") or []:
            token = _resolve_arch(arch)
            if token == 0:
                raise KernelError(errno.EINVAL, f"seccomp: architecture {arch} unknown to "
                                  f"libseccomp")
            res = lib.seccomp_arch_add(ctx, token)
            if res < 0 and -res != errno.EEXIST:
                _check(res, f"seccomp: add architecture {arch}")
        for i, rule in enumerate(profile.get("syscalls") or []):
            action = action_value(rule["action"], rule.get("errnoRet"))
            if action == default:
                continue  # libseccomp refuses rules that do what the default does
            groups = _conditions(rule.get("args") or [])
            for name in rule["names"]:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == _NR_SCMP_ERROR:
                    log.debug(f"seccomp: unknown system call {name!r} skipped",
                              pointer=f"{_BASE}/syscalls/{i}")
                    continue
                for conds in groups:
                    array = (_ArgCmp * len(conds))(*conds) if conds else None
                    _check(lib.seccomp_rule_add_array(ctx, action, nr, len(conds), array),
                           f"seccomp: add rule for {name} ({_BASE}/syscalls/{i})")
        last = _last_syscalls(profile)
        kernel_flags = _kernel_flags(profile)
    except BaseException:
        lib.seccomp_release(ctx)
        raise
    return Filter(ctx, last, kernel_flags, notify=uses_notify(profile))


def uses_notify(profile: dict[str, Any]) -> bool:
    return any(rule.get("action") == "SCMP_ACT_NOTIFY" for rule in profile.get("syscalls") or [])




def send_to_listener(listener_path: str, listener_fd: int, state: dict[str, Any],
                     metadata: str = "") -> None:
    """Hand the agent at `listener_path` the notification fd, with the container process state.

    runtime-spec config-linux.md (seccomp): a JSON `containerProcessState` object in the same
    message as the fd (SCM_RIGHTS); its `fds` names the fd ("seccompFd").
    """
    import json
    import socket

    doc = {"ociVersion": state.get("ociVersion", ""), "fds": ["seccompFd"],
           "pid": state.get("pid", 0), "metadata": metadata, "state": state}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(listener_path)
            socket.send_fds(sock, [json.dumps(doc).encode()], [listener_fd])
        except OSError as exc:
            raise KernelError(exc.errno or errno.EIO, "seccomp: send the notification fd to "
                              f"the listener {listener_path}", listener_path) from None


def load_filter(profile: dict[str, Any]) -> None:
    """Build the filter described by `profile` and load it into the calling process."""
    build_filter(profile).load()


# --- features -------------------------------------------------------------------------------------

def features() -> dict[str, Any]:
    """`pyrunc features` linux.seccomp: what this libseccomp and kernel support."""
    try:
        level = api_level()
    except KernelError:
        return {"enabled": False}
    return {
        "enabled": True,
        "actions": _supported_actions(level),
        "operators": list(OPERATORS),
        "archs": [name for name in ARCHITECTURES if _resolve_arch(name) != 0],
        "knownFlags": list(KERNEL_FLAGS),
        "supportedFlags": _supported_flags(),
    }
