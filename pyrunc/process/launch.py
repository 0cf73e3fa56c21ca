"""The runtime (parent) side of container creation.

The runtime forks the intermediate, puts it in the container's cgroup, answers its requests
(uid/gid maps must be written from outside the new user namespace; prestart and createRuntime
hooks run in the runtime's namespaces) and returns once the init reports READY — parked on the
exec fifo, waiting for `start`.

The runtime makes itself a child subreaper while it works: when the intermediate exits the init
is re-parented to the runtime, so a failed creation can kill *and reap* it. When the runtime
exits, the init moves on to the caller's subreaper (containerd's shim, conmon), which is who
must collect its exit status.
"""

from __future__ import annotations

import os

from pyrunc.linux import syscalls
from pyrunc.linux.consts import PR_SET_CHILD_SUBREAPER
from pyrunc.process import sync
from pyrunc.process.launchspec import LaunchSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
else:
    import _signal as signal  # the C module: `signal` itself builds enums, ms of every create

if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cgroups import CgroupJoiner
    from pyrunc.rootfs.idmap import UsernsFds


class LaunchError(Exception):
    """Creation failed; str() is the child's or the runtime's one-line reason."""


class Launch:
    """One container creation in progress, owning the processes it forked until it succeeds."""

    def __init__(self, spec: LaunchSpec, cgroups: CgroupJoiner) -> None:
        self.spec = spec
        self.cgroups = cgroups
        self.intermediate_pid = 0
        self.init_pid = 0
        self._userns: UsernsFds | None = None   # for idmapped mounts, made on first use

    def run(self, on_init_pid: Callable[[int], None],
            run_runtime_hooks: Callable[[int], dict[str, Any]]) -> int:
        """Create the container's init; return its host pid once it is parked.

        on_init_pid(pid) is called as soon as the init exists (to record it for cleanup);
        run_runtime_hooks(pid) runs prestart/createRuntime and returns the state that the
        createContainer hooks receive.
        """
        from pyrunc import namespaces

        syscalls.prctl(PR_SET_CHILD_SUBREAPER, 1, step="become child subreaper")
        parent_chan, child_chan = sync.SyncChannel.pair()
        ns_fds = namespaces.open_namespace_paths(self.spec.config.linux)
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    parent_chan.close()
                    for fd in self.spec.close_in_child:
                        _close_quietly(fd)
                    # Imported here, not before the fork: the runtime itself never needs the
                    # child's code, and this child loads it while it is moved into the cgroup.
                    try:
                        from pyrunc.process.child import run_intermediate
                    except BaseException as exc:  # noqa: BLE001 - said, then os._exit below
                        child_chan.send(sync.ERROR, message=f"load the container process's "
                                        f"code: {exc}")
                        raise
                    run_intermediate(child_chan, self.spec, ns_fds)
                finally:
                    os._exit(1)  # a forked child never returns into the caller's code
            self.intermediate_pid = pid
            from pyrunc import trace

            if trace.on:
                trace.emit("fork intermediate", child=pid)
        finally:
            child_chan.close()
            for _, fd in ns_fds:
                os.close(fd)
        try:
            self._converse(parent_chan, on_init_pid, run_runtime_hooks)
        except BaseException:
            self.abort()
            raise
        finally:
            parent_chan.close()
            if self._userns is not None:
                self._userns.close()
        return self.init_pid

    def _converse(self, chan: sync.SyncChannel, on_init_pid: Callable[[int], None],
                  run_runtime_hooks: Callable[[int], dict[str, Any]]) -> None:
        from pyrunc import log, namespaces

        log.debug("runtime: move the intermediate into the container's cgroup",
                  pid=self.intermediate_pid)
        reason = sync.move_into_cgroup(chan, self.cgroups, self.intermediate_pid)
        if reason is not None:
            raise LaunchError(reason)
        # The intermediate's INIT_PID and the init's own messages share the channel, so the
        # init may speak first; what it says waits until we know its pid (and so its mount
        # namespace, which a mount source request needs).
        deferred: list[dict[str, Any]] = []
        while True:
            if deferred and self.init_pid:
                msg = deferred.pop(0)
            else:
                try:
                    msg = chan.recv()
                except sync.ChannelClosed:
                    raise LaunchError(self._death_reason()) from None
            kind = msg["type"]
            if kind == sync.ERROR:
                raise LaunchError(msg["message"])
            if kind in (sync.RUN_HOOKS, sync.READY, sync.MOUNT_SOURCE_REQUEST,
                        sync.IDMAPPED_MOUNT_REQUEST, sync.SECCOMP_LISTENER) \
                    and not self.init_pid:
                deferred.append(msg)
                continue
            log.debug(f"runtime: got {kind}")
            if kind in (sync.MOUNT_SOURCE_REQUEST, sync.IDMAPPED_MOUNT_REQUEST):
                from pyrunc.process import mountsource  # only these need it
            if kind == sync.IDMAP_REQUEST:
                namespaces.write_id_maps(self.intermediate_pid, self.spec.config.linux)
                chan.send(sync.IDMAP_DONE)
            elif kind == sync.TIMENS_REQUEST:
                namespaces.write_time_offsets(self.intermediate_pid, self.spec.config.linux)
                chan.send(sync.TIMENS_DONE)
            elif kind == sync.INIT_PID:
                self.init_pid = int(msg["pid"])
                _reap(self.intermediate_pid)
                self.intermediate_pid = 0
                on_init_pid(self.init_pid)
            elif kind == sync.SECCOMP_LISTENER:
                self._send_listener(msg)
                chan.send(sync.SECCOMP_LISTENER_DONE)
            elif kind == sync.MOUNT_SOURCE_REQUEST:
                mountsource.serve(chan, self.init_pid, str(msg["source"]))
            elif kind == sync.IDMAPPED_MOUNT_REQUEST:
                if self._userns is None:
                    from pyrunc.rootfs.idmap import UsernsFds

                    self._userns = UsernsFds(self.spec.config.linux, self.init_pid)
                mountsource.serve_idmapped(chan, self.init_pid, self.spec.config,
                                           int(msg["mount"]), self._userns)
            elif kind == sync.RUN_HOOKS:
                state = run_runtime_hooks(self.init_pid)
                chan.send(sync.HOOKS_DONE, state=state)
            elif kind == sync.READY:
                return
            else:
                raise LaunchError(f"protocol error: unexpected message {kind!r}")

    def _send_listener(self, msg: dict[str, Any]) -> None:
        """SCMP_ACT_NOTIFY: hand the init's notification fd to the agent at listenerPath."""
        from pyrunc import seccomp

        fds = msg.get("fds") or []
        try:
            profile = self.spec.config.raw["linux"]["seccomp"]
            config = self.spec.config
            state = {"ociVersion": config.oci_version, "id": self.spec.container_id,
                     "status": "creating", "pid": self.init_pid, "bundle": self.spec.bundle}
            if config.annotations:
                state["annotations"] = config.annotations
            if not fds:
                raise LaunchError("seccomp: the init sent no notification fd")
            seccomp.send_to_listener(profile["listenerPath"], fds[0], state,
                                     profile.get("listenerMetadata") or "")
        finally:
            for fd in fds:
                os.close(fd)

    def _death_reason(self) -> str:
        for pid in (self.intermediate_pid, self.init_pid):
            if pid:
                status = _reap(pid)
                if status is not None:
                    return f"container init exited unexpectedly ({_describe_status(status)})"
        return "container init exited unexpectedly"

    def abort(self) -> None:
        """Kill and reap whatever this creation forked (we are their subreaper)."""
        for pid in (self.init_pid, self.intermediate_pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _reap(pid)
        self.init_pid = self.intermediate_pid = 0


def _reap(pid: int) -> int | None:
    try:
        _, status = os.waitpid(pid, 0)
        return status
    except ChildProcessError:
        return None


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        import signal as names  # the error path only: the module with the enum of names

        return f"killed by signal {names.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
