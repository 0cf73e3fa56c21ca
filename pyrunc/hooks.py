"""OCI lifecycle hooks: run each configured program with the container's state on its stdin.

Per the runtime-spec a hook is execve(path, args, env) — `args[0]` is argv[0] — and it is given the
spec's state JSON on stdin. A hook that exits non-zero, cannot be started, or outlives its
`timeout` fails its phase; the hooks of a phase run in order and the first failure stops them.

The environment follows runc (Go's exec.Cmd): a hook that names an `env` gets exactly that; one
without `env` (absent or null) gets the runtime's own environment; `"env": []` is an empty one.
startContainer hooks are the exception: with no or an empty `env` they get the environment the
container's program will get (runc calls that a de facto historical behaviour it keeps).
Failures read as runc 1.5 words them, `error running <phase> hook #<index>: <reason>`, since
callers and test suites match that text.

The hook's stdin, stdout and stderr are anonymous memory files rather than the runtime's own:
containerd and podman read the runtime's stdout to EOF, so a hook (or a daemon it leaves behind)
holding it would hang them; and, unlike pipes, files cannot fill up or keep us waiting for an EOF
that a leftover grandchild prevents. What the hook wrote is read back after it exits: the first
line of stderr goes into the error, the rest is logged at debug level.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from subprocess import Popen
    from typing import Any

    from pyrunc.spec.model import Hook

#: How much of a hook's output is read back for the error message and the debug log.
_OUTPUT_LIMIT = 64 * 1024


class HookError(RuntimeError):
    """A hook that failed; `str()` is one line, `error running <phase> hook #<index>: <reason>`
    (`index` counts from 0 within the phase, as runc counts)."""

    def __init__(self, phase: str, path: str, reason: str, index: int = 0) -> None:
        super().__init__(f"error running {phase} hook #{index}: {reason}")
        self.phase = phase
        self.path = path
        self.reason = reason
        self.index = index


def preload() -> None:
    """Import what running a hook needs, for callers about to pivot_root away from the host's
    Python library (startContainer hooks run inside the container's root)."""
    import json  # noqa: F401
    import subprocess  # noqa: F401


def run_hooks(phase: str, hooks: Sequence[Hook], state: dict[str, Any], *,
              default_env: Sequence[str] | None = None, first_index: int = 0) -> None:
    """Run `hooks` of lifecycle `phase` in order, each with `state` as JSON on stdin.

    `default_env` is what a hook without an `env` of its own gets (None: the runtime's
    environment); `first_index` numbers the first hook in errors, for callers that run a phase's
    hooks one at a time. Raises HookError for the first hook that fails; the later ones are not
    run.
    """
    if not hooks:
        return
    import json
    payload = json.dumps(state, separators=(",", ":")).encode()
    for index, hook in enumerate(hooks, first_index):
        run_hook(phase, hook, payload, index=index, default_env=default_env)


def hook_environment(phase: str, hook: Hook,
                     default_env: Sequence[str] | None = None) -> dict[str, str]:
    """The environment `hook` runs with (see the module docstring for runc's rules)."""
    if phase == "startContainer" and not hook.env and default_env is not None:
        return _environment(default_env)
    if hook.env is not None:
        return _environment(hook.env)
    if default_env is not None:
        return _environment(default_env)
    return dict(os.environ)


def run_hook(phase: str, hook: Hook, payload: bytes, *, index: int = 0,
             default_env: Sequence[str] | None = None) -> None:
    """Start one hook, wait for it (killing it after `hook.timeout` seconds), check its status."""
    from pyrunc import trace

    started = trace.now() if trace.on else None
    try:
        _run_hook(phase, hook, payload, index=index, default_env=default_env)
    except HookError as exc:
        if started is not None:
            trace.emit("hook", started, phase=phase, path=hook.path, index=index,
                       error=exc.reason)
        raise
    if started is not None:
        trace.emit("hook", started, phase=phase, path=hook.path, index=index, status=0)


def _run_hook(phase: str, hook: Hook, payload: bytes, *, index: int,
              default_env: Sequence[str] | None) -> None:
    import subprocess

    stdin = _memfd("hook-stdin", payload)
    stdout = _memfd("hook-stdout")
    stderr = _memfd("hook-stderr")
    try:
        try:
            proc = subprocess.Popen(
                list(hook.args) or [hook.path], executable=hook.path,
                env=hook_environment(phase, hook, default_env),
                stdin=stdin, stdout=stdout, stderr=stderr, close_fds=True,
                # Its own process group, so a timeout also kills what the hook started.
                process_group=0)
        except OSError as exc:
            raise HookError(phase, hook.path, _start_failure(hook.path, exc), index) from exc
        timed_out = _wait(proc, hook.timeout)
        out, err = _read_back(stdout), _read_back(stderr)
    finally:
        for fd in (stdin, stdout, stderr):
            os.close(fd)
    _log_output(phase, hook.path, out, err)
    if timed_out:
        limit = float(hook.timeout or 0)
        raise HookError(phase, hook.path, f"hook ran past specified timeout of {limit:.1f}s", index)
    if proc.returncode != 0:
        raise HookError(phase, hook.path, _exit_reason(proc.returncode, out, err), index)


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


def _wait(proc: Popen[bytes], timeout: int | None) -> bool:
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


def _start_failure(path: str, exc: OSError) -> str:
    """Go's wording for a failed start: ``fork/exec <path>: no such file or directory``."""
    reason = exc.strerror or str(exc)
    return f"fork/exec {path}: {reason[:1].lower()}{reason[1:]}"


def _one_line(text: str) -> str:
    return " ".join(text.strip().splitlines())


def _exit_reason(returncode: int, stdout: str, stderr: str) -> str:
    """``exit status 3, stdout: …, stderr: …`` (or ``signal: killed``), as runc reports it."""
    if returncode < 0:
        import signal
        try:
            name = (signal.strsignal(-returncode) or "").lower()
        except ValueError:
            name = ""
        reason = f"signal: {name or -returncode}"
    else:
        reason = f"exit status {returncode}"
    return f"{reason}, stdout: {_one_line(stdout)}, stderr: {_one_line(stderr)}"


def _log_output(phase: str, path: str, out: str, err: str) -> None:
    if not out and not err:
        return
    from pyrunc import log
    if out:
        log.debug(f"{phase} hook {path} stdout: {out.rstrip()}")
    if err:
        log.debug(f"{phase} hook {path} stderr: {err.rstrip()}")
