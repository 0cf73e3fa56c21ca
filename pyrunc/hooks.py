"""OCI lifecycle hooks: run each configured program with the container's state on its stdin.

Per the runtime-spec a hook is execve(path, args, env) — `args[0]` is argv[0], and the environment
is exactly `env`, nothing inherited — and it is given the spec's state JSON on stdin. A hook that
exits non-zero, cannot be started, or outlives its `timeout` fails its phase; the hooks of a phase
run in order and the first failure stops them.

The hook's stdin, stdout and stderr are anonymous memory files rather than the runtime's own:
containerd and podman read the runtime's stdout to EOF, so a hook (or a daemon it leaves behind)
holding it would hang them; and, unlike pipes, files cannot fill up or keep us waiting for an EOF
that a leftover grandchild prevents. What the hook wrote is read back after it exits: the first
line of stderr goes into the error, the rest is logged at debug level.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyrunc.spec.model import Hook

#: How much of a hook's output is read back for the error message and the debug log.
_OUTPUT_LIMIT = 64 * 1024


class HookError(RuntimeError):
    """A hook that failed; `str()` is one line, `<phase> hook <path> failed: <reason>`."""

    def __init__(self, phase: str, path: str, reason: str) -> None:
        super().__init__(f"{phase} hook {path} failed: {reason}")
        self.phase = phase
        self.path = path
        self.reason = reason


def preload() -> None:
    """Import what running a hook needs, for callers about to pivot_root away from the host's
    Python library (startContainer hooks run inside the container's root)."""
    import json  # noqa: F401
    import subprocess  # noqa: F401


def run_hooks(phase: str, hooks: Sequence[Hook], state: dict[str, Any]) -> None:
    """Run `hooks` of lifecycle `phase` in order, each with `state` as JSON on stdin.

    Raises HookError for the first hook that fails; the later ones are not run.
    """
    if not hooks:
        return
    import json
    payload = json.dumps(state, separators=(",", ":")).encode()
    for hook in hooks:
        run_hook(phase, hook, payload)


def run_hook(phase: str, hook: Hook, payload: bytes) -> None:
    """Start one hook, wait for it (killing it after `hook.timeout` seconds), check its status."""
    import subprocess

    stdin = _memfd("hook-stdin", payload)
    stdout = _memfd("hook-stdout")
    stderr = _memfd("hook-stderr")
    try:
        try:
            proc = subprocess.Popen(
                list(hook.args) or [hook.path], executable=hook.path, env=_environment(hook.env),
                stdin=stdin, stdout=stdout, stderr=stderr, close_fds=True,
                # Its own process group, so a timeout also kills what the hook started.
                process_group=0)
        except OSError as exc:
            raise HookError(phase, hook.path, _start_failure(exc)) from exc
        timed_out = _wait(proc, hook.timeout)
        out, err = _read_back(stdout), _read_back(stderr)
    finally:
        for fd in (stdin, stdout, stderr):
            os.close(fd)
    _log_output(phase, hook.path, out, err)
    if timed_out:
        raise HookError(phase, hook.path, f"timed out after {hook.timeout} s")
    if proc.returncode != 0:
        raise HookError(phase, hook.path, _exit_reason(proc.returncode, err))


def _environment(env: Sequence[str]) -> dict[str, str]:
    """`KEY=value` entries as a mapping (a later entry for the same key wins, as with execve)."""
    result: dict[str, str] = {}
    for entry in env:
        key, sep, value = entry.partition("=")
        if sep:
            result[key] = value
    return result


def _memfd(name: str, content: bytes = b"") -> int:
    """An anonymous file with `content`, positioned at its start."""
    fd = os.memfd_create(f"pyrunc-{name}", os.MFD_CLOEXEC)
    if content:
        os.write(fd, content)
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_back(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, _OUTPUT_LIMIT).decode(errors="replace")


def _wait(proc: Any, timeout: int | None) -> bool:
    """Wait for the hook; True when it ran out of time and was killed (with its process group)."""
    import signal
    import subprocess

    try:
        proc.wait(timeout=timeout or None)
        return False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        return True


def _start_failure(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or str(exc)).lower()


def _exit_reason(returncode: int, stderr: str) -> str:
    if returncode < 0:
        import signal
        try:
            reason = f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            reason = f"killed by signal {-returncode}"
    else:
        reason = f"exit status {returncode}"
    first = next((line.strip() for line in stderr.splitlines() if line.strip()), "")
    return f"{reason}: {first}" if first else reason


def _log_output(phase: str, path: str, out: str, err: str) -> None:
    if not out and not err:
        return
    from pyrunc import log
    if out:
        log.debug(f"{phase} hook {path} stdout: {out.rstrip()}")
    if err:
        log.debug(f"{phase} hook {path} stderr: {err.rstrip()}")
