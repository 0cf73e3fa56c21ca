"""The container lifecycle of runtime-spec runtime.md: create, start, kill, delete.

Each operation takes the container's lock, reads its state, asks the kernel what is really going
on (`derive_status`), acts, and leaves the state store consistent. Cleanup is owned by one place
(`destroy`), which works on any half-created container — including one whose `create` was killed.
"""

from __future__ import annotations

import os
import select
import time

from pyrunc import log
from pyrunc.container.state import (
    ContainerError,
    ContainerNotFound,
    ContainerState,
    StateDir,
    derive_status,
    init_alive,
    init_has_execed,
    process_exe,
    process_start_time,
    validate_id,
)
from pyrunc.linux.consts import SIGKILL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cgroups import CgroupManager
    from pyrunc.spec.model import Config, IDMapping


def utc_now_rfc3339() -> str:
    """RFC 3339 with nanoseconds in UTC, the form go-runc decodes as `created`."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        f".{ns % 1_000_000_000:09d}Z"


def spec_state(state: ContainerState, status: str, pid: int | None = None) -> dict[str, Any]:
    """The runtime-spec state object (what hooks read on stdin)."""
    doc: dict[str, Any] = {"ociVersion": state.oci_version, "id": state.id, "status": status,
                           "pid": state.init_pid if pid is None else pid, "bundle": state.bundle}
    if state.annotations:
        doc["annotations"] = state.annotations
    return doc


class CreateOptions:
    def __init__(self, bundle: str, pid_file: str | None = None, console_socket: str | None = None,
                 no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
                 console_fd: int | None = None, foreground: bool = False,
                 pidfd_socket: str | None = None) -> None:
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.console_fd = console_fd      # an already connected console (foreground run)
        self.foreground = foreground      # stdio is the caller's own: never chown it
        self.pidfd_socket = pidfd_socket  # where to send a pidfd of the init (runc >= 1.2)


def create(root: str, container_id: str, opts: CreateOptions, *, rootless: bool = False) -> int:
    """Create a container and leave its init parked on the exec fifo. Returns the init's pid."""
    from pyrunc.spec.load import load_bundle

    validate_id(container_id)
    config = load_bundle(opts.bundle)
    process = config.process
    assert process is not None
    if process.terminal and opts.console_socket is None and opts.console_fd is None:
        raise ContainerError("cannot allocate tty if pyrunc will detach without setting console "
                             "socket")
    if not process.terminal and opts.console_socket is not None:
        raise ContainerError("cannot use console socket if pyrunc will not detach or allocate tty")
    if config.linux.namespace("mount") is None:
        # Without a mount namespace runc mounts into the caller's namespace and chroots; pyrunc
        # only chroots: a mount there would change (and leak into) the host.
        log.warning("no mount namespace in config.json: the process is only chrooted into "
                    "root.path; mounts are not made (they would change the host)")
    from pyrunc.spec.load import not_applied

    for pointer in not_applied(config):
        log.warning(f"config.json: {pointer} is not implemented yet and is not applied")
    listen_fds = _listen_fds()
    for fd in range(3, 3 + listen_fds + opts.preserve_fds):
        try:
            os.fstat(fd)
        except OSError:
            what = f"LISTEN_FDS fd #{fd}" if fd < 3 + listen_fds else \
                f"preserved-fd {fd - 3 - listen_fds} (#{fd})"
            raise ContainerError(f"unable to stat {what}") from None

    if config.linux.net_devices:
        from pyrunc.network.devices import check_config

        check_config(config.linux.net_devices, config.linux.creates("network"), root,
                     container_id)
    state_dir = StateDir(root, container_id)
    state_dir.reserve()
    state = ContainerState(id=container_id, bundle=opts.bundle, rootfs=config.root_path,
                           oci_version=config.oci_version, created=utc_now_rfc3339(),
                           config=config.raw, rootless=rootless,
                           no_new_keyring=opts.no_new_keyring, creator_pid=os.getpid(),
                           creator_start_time=process_start_time(os.getpid()) or 0)
    launch = None
    try:
        state_dir.lock()
        from pyrunc.cgroups import cgroup_manager

        cgroups = cgroup_manager(config.linux.cgroups_path, container_id)
        _refuse_occupied_cgroup(cgroups)   # before the state owns it: cleanup must not touch it
        # With the parent directories create() is about to make: a `delete --force` after this
        # create is killed must remove those too. (One another creator makes meanwhile is
        # removed only once empty, as any shared parent is.)
        cgroups.plan_create()
        state.cgroup_paths = cgroups.paths()
        state_dir.save(state)
        no_cgroup = _create_cgroup(cgroups, config, rootless)
        if no_cgroup is not None:
            state.cgroup_paths = {}
            state_dir.save(state)
        if no_cgroup is None:
            _apply_device_rules(cgroups, config, rootless)
        resources = config.linux.resources
        if no_cgroup is not None and not resources._replace(devices=()).is_empty():
            raise ContainerError(f"rootless: cannot apply /linux/resources without a cgroup "
                                 f"({no_cgroup})")
        if no_cgroup is None and not resources._replace(devices=()).is_empty():
            cgroups.apply_resources(resources._replace(devices=()))
        fifo_fd = _make_exec_fifo(state_dir, config)

        from pyrunc.process.launch import Launch
        from pyrunc.process.launchspec import LaunchSpec

        console_fd = opts.console_fd
        if opts.console_socket is not None:
            from pyrunc import terminal

            console_fd = terminal.connect_console_socket(opts.console_socket)
        spec = LaunchSpec(container_id=container_id, config=config, bundle=opts.bundle,
                          fifo_fd=fifo_fd, console_fd=console_fd, no_pivot=opts.no_pivot,
                          no_new_keyring=opts.no_new_keyring, listen_fds=listen_fds,
                          preserve_fds=opts.preserve_fds,
                          close_in_child=[fd for fd in (state_dir.lock_fd,) if fd is not None],
                          rootless=rootless, fix_stdio_owner=not opts.foreground)
        from pyrunc.cgroups import CgroupJoiner, NoCgroup

        joiner: CgroupJoiner = NoCgroup() if no_cgroup is not None else cgroups
        launch = Launch(spec, joiner)

        def record_init(pid: int) -> None:
            state.init_pid = pid
            state.init_start_time = process_start_time(pid) or 0
            state.init_exe = process_exe(pid)
            state_dir.save(state)

        def runtime_hooks(pid: int) -> dict[str, Any]:
            if config.linux.net_devices:
                _move_net_devices_in(state_dir, state, config.linux.net_devices, pid)
            hook_state = spec_state(state, "creating", pid)
            for phase in ("prestart", "createRuntime"):
                if config.hooks[phase]:
                    from pyrunc import hooks  # only when there are hooks: ~0.6 ms to import

                    hooks.run_hooks(phase, config.hooks[phase], hook_state)
            return hook_state

        try:
            pid = launch.run(record_init, runtime_hooks)
        finally:
            os.close(fifo_fd)
            if opts.console_socket is not None and console_fd is not None:
                os.close(console_fd)
        state.creating = False
        state_dir.save(state)
        if opts.pidfd_socket:
            _send_pidfd(opts.pidfd_socket, pid)
        if opts.pid_file:
            write_pid_file(opts.pid_file, pid)
        return pid
    except BaseException:
        if launch is not None:
            launch.abort()
        destroy(state_dir, _load_or(state_dir, state), run_poststop=False)
        raise
    finally:
        state_dir.unlock()


def _move_net_devices_in(state_dir: StateDir, state: ContainerState, net_devices: dict[str, str],
                         pid: int) -> None:
    """linux.netDevices, after the init exists and before prestart/createRuntime hooks."""
    from pyrunc.network.devices import PIN_NAME, move_in

    def record(entries: list[dict[str, Any]]) -> None:
        state.net_devices = entries
        state_dir.save(state)

    move_in(net_devices, pid, os.path.join(state_dir.path, PIN_NAME), record)


def _create_cgroup(cgroups: CgroupManager, config: Config, rootless: bool) -> OSError | None:
    """Make the container's cgroup; return the refusal when a rootless container goes without.

    runc's rule: an unprivileged runtime that may not create (or write) the cgroup runs the
    container without one, but only when config.json names no cgroupsPath; a path that was
    asked for and refused is an error. What was made before the refusal is removed again.
    """
    from pyrunc.cgroups import is_permission_error

    try:
        cgroups.create()
    except OSError as exc:
        if not (rootless and is_permission_error(exc)):
            raise
        cgroups.destroy()
        if config.linux.cgroups_path:
            raise ContainerError(f"rootless: {exc}: an unprivileged user can use only a cgroup "
                                 f"delegated to it; remove /linux/cgroupsPath to run without "
                                 f"one") from None
        log.debug(f"rootless: running without a cgroup: {exc}")
        if not config.linux.creates("pid"):
            # runc warns here too: without either, nothing finds every process it starts.
            log.warning("rootless container with neither a cgroup nor a pid namespace of its "
                        "own: kill --all and delete cannot reach all of its processes")
        return exc
    return None


def _apply_device_rules(cgroups: CgroupManager, config: Config, rootless: bool) -> None:
    """The device cgroup, always (runc's default list applies even without linux.resources).

    Skipped inside a user namespace, where the host's rules govern devices (as runc does);
    rootless, a cgroup pyrunc may not write only warns, like the cgroup itself.
    """
    from pyrunc.cgroups.devices import effective_rules, running_in_user_namespace

    if running_in_user_namespace():
        return
    from pyrunc.cgroups import CgroupError

    rules = effective_rules(config.linux.resources.devices, config.linux.devices)
    try:
        cgroups.apply_devices(rules)
    except (OSError, CgroupError) as exc:
        if not rootless:
            raise
        log.warning(f"rootless: device rules not applied: {exc}")


def _refuse_occupied_cgroup(cgroups: CgroupManager) -> None:
    """A cgroup that already holds processes belongs to someone else (another container, a
    service): joining it would mix them up, and deleting this container would kill them."""
    pids = cgroups.pids()
    if pids:
        raise ContainerError(f"container's cgroup is not empty: {len(pids)} process(es) found "
                             f"(cgroupsPath is in use)")
    if cgroups.is_frozen():
        raise ContainerError("container's cgroup unexpectedly frozen")


def _send_pidfd(socket_path: str, pid: int) -> None:
    """--pidfd-socket: hand the caller a pidfd of the init, framed like the console master."""
    from pyrunc import terminal
    from pyrunc.linux.syscalls import pidfd_open

    sock_fd = terminal.connect_console_socket(socket_path)
    terminal.send_console_master(sock_fd, pidfd_open(pid), "pidfd")


def _listen_fds() -> int:
    """Socket activation: fds passed with LISTEN_FDS when LISTEN_PID names this process."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return 0
    try:
        return max(0, int(os.environ.get("LISTEN_FDS", "0")))
    except ValueError:
        return 0


def _make_exec_fifo(state_dir: StateDir, config: Config) -> int:
    """Create the fifo `start` opens; return an O_PATH fd of the fifo itself for the init.

    The fifo is writable by the container's root (mode 0622, owned by its host uid). The init
    reopens the O_PATH fd for writing through its own procfs handle, which works after
    pivot_root or chroot. An fd of the fifo, unlike one of its directory, leads nowhere else.
    """
    path = state_dir.fifo_path
    os.mkfifo(path, 0o622)
    os.chmod(path, 0o622)
    root_uid = _host_id(config.linux.uid_mappings, 0)
    root_gid = _host_id(config.linux.gid_mappings, 0)
    os.chown(path, root_uid, root_gid)
    return os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)


def _host_id(mappings: tuple[IDMapping, ...], container_id: int) -> int:
    """The host id that `container_id` maps to (itself without a user namespace)."""
    for m in mappings:
        if m.container_id <= container_id < m.container_id + m.size:
            return m.host_id + container_id - m.container_id
    return container_id if not mappings else 0


def write_pid_file(path: str, pid: int) -> None:
    """Decimal pid, no newline; written beside the target then renamed (atomic for readers)."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _load_or(state_dir: StateDir, fallback: ContainerState) -> ContainerState:
    try:
        return state_dir.load()
    except (ContainerNotFound, ValueError):
        return fallback


# --- start ---------------------------------------------------------------------------------

def start(root: str, container_id: str) -> None:
    """Release a created container's init: it runs startContainer hooks and execs the program."""
    validate_id(container_id)
    state_dir = StateDir(root, container_id)
    state_dir.lock()
    try:
        state = state_dir.load()
        status = derive_status(state_dir, state)
        if status == "running" and os.path.exists(state_dir.fifo_path):
            os.unlink(state_dir.fifo_path)   # left by an earlier `start` that died half-way
        if status != "created":
            raise ContainerError({
                "stopped": "cannot start a container that has stopped",
                "running": "cannot start an already running container",
                "paused": "cannot start a container in the paused state",
                "creating": "cannot start a container in the creating state",
            }[status])
        _release_init(state_dir, state)
        _run_poststart_hooks(state_dir, state)
    finally:
        state_dir.unlock()


def _run_poststart_hooks(state_dir: StateDir, state: ContainerState) -> None:
    """runtime-spec 1.3.0, lifecycle step 9: a failing poststart hook is an error; the runtime
    stops the container and continues at the destroy step (poststop hooks included)."""
    hooks = (state.config.get("hooks") or {}).get("poststart") or []
    if not hooks:
        return
    from pyrunc import hooks as hooks_mod
    from pyrunc.spec.model import Hook

    try:
        hooks_mod.run_hooks("poststart", [Hook.from_json(h) for h in hooks],
                            spec_state(state, "running"))
    except hooks_mod.HookError as exc:
        try:
            _kill_and_wait(state)
        finally:
            destroy(state_dir, state)
        raise ContainerError(f"{exc}: the container was stopped and destroyed") from None


def _release_init(state_dir: StateDir, state: ContainerState) -> None:
    """Open the fifo for reading and wait for the init's byte (or its death)."""
    fd = os.open(state_dir.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100):
                if os.read(fd, 1):
                    break
            if not init_alive(state):
                raise ContainerError("cannot start a container that has stopped")
            if init_has_execed(state):
                # Released by an earlier `start` that died before removing the fifo.
                os.unlink(state_dir.fifo_path)
                raise ContainerError("cannot start an already running container")
    finally:
        os.close(fd)
    os.unlink(state_dir.fifo_path)


# --- kill ----------------------------------------------------------------------------------

def kill(root: str, container_id: str, sig: int, all_processes: bool = False) -> None:
    validate_id(container_id)
    state_dir = StateDir(root, container_id)
    state = state_dir.load()
    if all_processes and state.cgroup_paths:
        from pyrunc.cgroups import load_manager

        load_manager(state.cgroup_paths).kill_all(sig)
        return
    if not state.cgroup_paths and (all_processes or sig == SIGKILL) \
            and not _has_private_pid_namespace(state):
        # A rootless container without a cgroup: only its init can be found (runc's fallback).
        log.warning("the container has no cgroup (rootless, none delegated): only its init is "
                    "signalled, processes it started may be left")
    if sig == SIGKILL and not _has_private_pid_namespace(state) and state.cgroup_paths:
        # runc >= 1.2: without a PID namespace of its own, killing the init would leave the
        # processes it started running; SIGKILL goes to the whole cgroup (thawed afterwards).
        if not init_alive(state):
            raise ContainerError("container not running")
        from pyrunc.cgroups import load_manager

        load_manager(state.cgroup_paths).kill_all(sig)
        return
    if not init_alive(state):
        raise ContainerError("container not running")
    try:
        os.kill(state.init_pid, sig)
    except ProcessLookupError:
        raise ContainerError("container not running") from None
    if sig == SIGKILL:
        _thaw_if_frozen(state)


def _has_private_pid_namespace(state: ContainerState) -> bool:
    """True when the config asks for a new PID namespace (an entry of type pid without a path)."""
    namespaces = (state.config.get("linux") or {}).get("namespaces") or []
    return any(ns.get("type") == "pid" and not ns.get("path") for ns in namespaces)


def _thaw_if_frozen(state: ContainerState) -> None:
    """A frozen process acts on SIGKILL only once thawed (v1 freezer): thaw a paused container."""
    if not state.cgroup_paths:
        return
    from pyrunc.cgroups import load_manager

    manager = load_manager(state.cgroup_paths)
    try:
        if manager.is_frozen():
            manager.thaw()
    except OSError as exc:
        log.warning(f"thaw {state.id} after SIGKILL: {exc}")


# --- delete --------------------------------------------------------------------------------

def delete(root: str, container_id: str, force: bool = False) -> None:
    validate_id(container_id)
    state_dir = StateDir(root, container_id)
    if not state_dir.exists():
        if force:
            return
        raise ContainerNotFound(container_id)
    state_dir.lock()
    try:
        if not state_dir.has_state():
            # A create that died before writing anything: just the directory is left.
            state_dir.remove()
            if force:
                return
            raise ContainerNotFound(container_id)
        state = state_dir.load()
        status = derive_status(state_dir, state)
        if state.creating and not force and status != "stopped":
            raise ContainerError(f"cannot delete container {container_id} that is not stopped: "
                                 "creating")
        if status in ("running", "paused") and not force:
            raise ContainerError(f"cannot delete container {container_id} that is not stopped: "
                                 f"{status}")
        if status != "stopped":
            # (A stopped container's leftovers, possible without a pid namespace of its own,
            # are killed by destroy(), which must empty the cgroup anyway.)
            _kill_and_wait(state)
        destroy(state_dir, state, run_poststop=not state.creating)
    finally:
        state_dir.unlock()


def _kill_and_wait(state: ContainerState, timeout: float = 10.0) -> None:
    """SIGKILL the init (and every process of the cgroup) and wait until the init is gone."""
    from pyrunc.cgroups import load_manager

    manager = load_manager(state.cgroup_paths)
    if init_alive(state):
        try:
            os.kill(state.init_pid, SIGKILL)
        except ProcessLookupError:
            pass
    try:
        manager.kill_all(SIGKILL)
    except OSError as exc:
        log.warning(f"kill remaining processes of {state.id}: {exc}")
    deadline = time.monotonic() + timeout
    while init_alive(state):
        if time.monotonic() > deadline:
            raise ContainerError("container init still running")
        _reap_if_child(state.init_pid)
        time.sleep(0.01)
    _reap_if_child(state.init_pid)


def _reap_if_child(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def destroy(state_dir: StateDir, state: ContainerState, *, run_poststop: bool = True) -> None:
    """Release everything a container holds: network devices, cgroups, state directory; then
    poststop hooks."""
    from pyrunc.cgroups import load_manager

    if state.net_devices:
        from pyrunc.network.devices import move_back

        move_back(state.net_devices, state_dir.path, state.init_pid if init_alive(state) else 0)
    if state.cgroup_paths:
        manager = load_manager(state.cgroup_paths)
        try:
            # Without a pid namespace of its own, processes the init started can outlive it;
            # a cgroup with processes in it cannot be removed.
            if manager.pids():
                manager.kill_all(SIGKILL)
            manager.destroy()
        except OSError as exc:
            log.warning(f"remove cgroup of {state.id}: {exc}")
    state_dir.remove()
    if run_poststop:
        run_warning_hooks("poststop", state, "stopped")


def run_warning_hooks(phase: str, state: ContainerState, status: str) -> None:
    """poststop: the spec says a failure warns and the remaining hooks still run."""
    hooks = (state.config.get("hooks") or {}).get(phase) or []
    if not hooks:
        return
    from pyrunc import hooks as hooks_mod
    from pyrunc.spec.model import Hook

    for index, hook in enumerate(hooks):
        try:
            hooks_mod.run_hooks(phase, [Hook.from_json(hook)], spec_state(state, status),
                                first_index=index)
        except hooks_mod.HookError as exc:
            log.warning(str(exc))
