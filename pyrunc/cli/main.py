"""`pyrunc [global options] command [command options] [arguments...]` — runc's command line.

Each command lives in its own module under `pyrunc.cli` and is imported only when it is run, so
`pyrunc state` (which containerd calls constantly) pays for nothing it does not use.
A command module provides `FLAGS` (list of Flag), `USAGE`, `DESCRIPTION` and
`run(ctx: Context, opts: dict, args: list[str]) -> int`.
"""

from __future__ import annotations

import gc
import os
import sys

from pyrunc import OCI_VERSION, __version__
from pyrunc.cli.flags import Flag, UsageError, format_flags, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

#: command name -> (module, one-line summary), in the order `--help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    # The summaries of runc's commands are runc's own words: `-h` output starts the same way.
    "bundle": ("bundle", "make a bundle from an OCI image (overlay of its layers), or remove one"),
    "create": ("create", "create a container"),
    "delete": ("delete", "delete any resources held by the container often used with detached "
                         "container"),
    "doctor": ("doctor", "show what this host offers containers, and why (pyrunc's own)"),
    "events": ("events", "stream a container's cgroup statistics and OOM events as JSON"),
    "exec": ("exec", "run another process in a container"),
    "features": ("features", "show the enabled features"),
    "kill": ("kill", "kill sends the specified signal (default: SIGTERM) to the container's "
                     "init process"),
    "list": ("list", "lists containers started by runc with the given root"),
    "network": ("network", "set up or tear down a container's network (a hook: none, host, "
                           "container:<id>, bridge)"),
    "pause": ("pause", "freeze every process of a container"),
    "ps": ("ps", "show the processes of a container (ps(1) rows, or JSON pids)"),
    "resume": ("resume", "let a paused container's processes run again"),
    "run": ("run", "create and run a container"),
    "spec": ("spec", "create a new specification file"),
    "start": ("start", "executes the user defined process in a created container"),
    "state": ("state", "output the state of a container"),
    "trace": ("trace", "summarize or show a timeline recorded with --trace=FILE"),
    "update": ("update", "change a running container's resource limits"),
}

GLOBAL_FLAGS = [
    Flag("debug", help="log debug messages too (the init's steps, with timings)"),
    Flag("log", "str", help="append log records to this file instead of stderr"),
    Flag("log-format", "str", "text", help="format of log records: text or json"),
    Flag("root", "str", help="directory holding container state; best on a tmpfs "
         "(default: /run/pyrunc)"),
    Flag("systemd-cgroup", help="use the systemd cgroup driver (not implemented yet)"),
    Flag("rootless", "str", "auto", help="true, false or auto: with true, failing to set up "
         "cgroups is only a warning"),
    Flag("criu", "str", hidden=True),
    Flag("trace", "str", help="record every kernel step: --trace shows the timeline on stderr, "
         "--trace=FILE appends JSON lines to FILE", metavar="[=FILE]"),
    Flag("help, h", help="show help"),
    Flag("version, v", help="print the version"),
]

NAME = "pyrunc"

#: runc commands pyrunc does not have yet: they fail with a clear message, not as unknown.
NOT_IMPLEMENTED = ("checkpoint", "restore")


class Context:
    """Global options, resolved once and handed to every command."""

    def __init__(self, root: str, systemd_cgroup: bool, rootless: str, debug: bool) -> None:
        self.root = root
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless
        self.debug = debug

    @property
    def is_rootless(self) -> bool:
        """runc's rule for --rootless=auto (cgroupfs driver): rootless when not running as
        root, or as root of a user namespace other than the host's (podman's, for example)."""
        if self.rootless == "auto":
            return os.geteuid() != 0 or in_user_namespace()
        return self.rootless == "true"


def in_user_namespace() -> bool:
    """True unless this process sees the initial user namespace's identity map of all ids."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def version_text() -> str:
    """`--version`; go-runc parses the first line, which must start with `runc version `."""
    return (f"runc version {__version__}\ncommit: pyrunc-{__version__}\nspec: {OCI_VERSION}\n"
            f"python: {sys.version.split()[0]}\n")


def main_help() -> str:
    commands = "\n".join(f"   {name:<10} {summary}" for name, (_, summary) in COMMANDS.items())
    return f"""NAME:
   {NAME} - Open Container Initiative runtime

{NAME} is a runc-compatible OCI container runtime written in Python. It turns an OCI
bundle (config.json and a root filesystem) into a running Linux container: namespaces,
cgroups, mounts, capabilities and hooks, step by step.

USAGE:
   {NAME} [global options] command [command options] [arguments...]

VERSION:
   {__version__}
spec: {OCI_VERSION}

COMMANDS:
{commands}
   help, h    show this help, or one command's help

GLOBAL OPTIONS:
{format_flags(GLOBAL_FLAGS)}
"""


def command_help(name: str, module: object) -> str:
    flags = getattr(module, "FLAGS", [])
    text = f"NAME:\n   {NAME} {name} - {COMMANDS[name][1]}\n\nUSAGE:\n   {NAME} {name} " \
           f"{getattr(module, 'USAGE', '')}\n"
    description = getattr(module, "DESCRIPTION", "")
    if description:
        text += f"\nDESCRIPTION:\n{description.rstrip()}\n"
    if flags:
        text += f"\nOPTIONS:\n{format_flags(flags)}\n"
    return text


def default_root() -> str:
    """runc's rule: $XDG_RUNTIME_DIR/<name> for other users, and for root of a user namespace
    whose $USER is not root (rootless podman); /run/<name> for the host's root, and for anyone
    when XDG_RUNTIME_DIR is unset (an unprivileged user then has to pass --root)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and (os.geteuid() != 0
                or (os.environ.get("USER", "") != "root" and in_user_namespace())):
        return os.path.join(xdg, NAME)
    return f"/run/{NAME}"


def _stderr_is_a_terminal() -> bool:
    try:
        return os.isatty(2)
    except OSError:
        return False


def _fail(message: str) -> int:
    from pyrunc import log

    log.error(message)
    return 1


#: Global flags that take a value as the next argument (to find where the command starts).
_VALUE_FLAGS = {"--log", "-log", "--log-format", "-log-format", "--root", "-root",
                "--rootless", "-rootless", "--criu", "-criu"}


def _bare_trace_flag(argv: list[str]) -> list[str]:
    """`--trace` alone (before the command) means "show it here": spelled --trace=- for the
    parser, which otherwise would take the command name as the file."""
    out = list(argv)
    i = 0
    while i < len(out) and out[i].startswith("-"):
        if out[i] in ("--trace", "-trace"):
            out[i] = "--trace=-"
        elif out[i] in _VALUE_FLAGS:
            i += 1
        i += 1
    return out


def _start_trace(target: str) -> str | None:
    """Begin recording; returns the file to render at the end when the trace is for a person."""
    from pyrunc import trace

    if target != "-":
        trace.start(target)
        return None
    import tempfile

    fd, path = tempfile.mkstemp(prefix="pyrunc-trace-", suffix=".jsonl")
    os.close(fd)
    trace.start(path)
    return path


def _show_trace(path: str) -> None:
    from pyrunc import trace

    try:
        events = trace.read_events(path)
    finally:
        os.unlink(path)
    sys.stderr.write("".join(line + "\n" for line in trace.render_tree(events)))


def _command_module(name: str) -> object:
    """The command's module. `__import__` rather than `importlib.import_module`: importing
    `importlib` (and the `warnings` it brings) costs ~0.5 ms that `state` would pay every time."""
    module_name = f"pyrunc.cli.{COMMANDS[name][0]}"
    __import__(module_name)
    return sys.modules[module_name]


def main(argv: list[str] | None = None) -> int:
    """Run one command line; returns the exit status."""
    # A command lives for milliseconds and makes little garbage, but importing the ~120
    # modules of `create` triggers a dozen cycle collections (~5 ms of `run`), and a collection
    # in a forked child would copy every page it touches. Commands that then wait for long (a
    # foreground `run` or `exec`, `events`) call resume_gc(). Restored at the end for callers
    # that run main() in their own process.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    finally:
        if enabled:
            gc.enable()


def main_and_exit() -> NoReturn:
    """The `pyrunc` command: main(), then leave without the interpreter's teardown.

    Once main() has returned the command's work is done; what Python would do next (a last
    cycle collection, then tearing down every module one by one) costs ~2 ms, a sixth of
    `state`. The standard streams are flushed first, and where that fails (a closed pipe)
    the ordinary exit reports it as it always has. pyrunc starts no threads, registers no
    atexit handlers and writes its log and trace with os.write, so nothing else is pending.
    """
    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - the ordinary exit says what went wrong
        raise SystemExit(status) from None
    os._exit(status)


def resume_gc() -> None:
    """Collect cycles again: for a command that is about to wait or loop for long."""
    gc.enable()


def _main(argv: list[str]) -> int:
    from pyrunc import log

    argv = _bare_trace_flag(argv)
    try:
        opts, rest = parse(argv, GLOBAL_FLAGS, interspersed=False)
    except UsageError as exc:
        sys.stdout.write("Incorrect Usage.\n\n" + main_help())
        log.error(str(exc))
        return 1
    try:
        log.configure(opts["log"] or None, opts["log_format"], opts["debug"],
                      stderr_is_a_person=_stderr_is_a_terminal())
    except ValueError as exc:
        log.error(str(exc))
        return 1
    except OSError as exc:
        sys.stderr.write(f"pyrunc: open log file {opts['log']}: {exc.strerror}\n")
        return 1

    if opts["version"]:
        sys.stdout.write(version_text())
        return 0
    if not rest or rest[0] in ("help", "h") or opts["help"]:
        if len(rest) > 1 and rest[1] in COMMANDS:
            sys.stdout.write(command_help(rest[1], _command_module(rest[1])))
        else:
            sys.stdout.write(main_help())
        return 0

    name, args = rest[0], rest[1:]
    if name in NOT_IMPLEMENTED:
        # Fail clearly (and non-zero: podman probes `checkpoint --help` for support).
        log.error(f"{name}: not implemented yet in pyrunc")
        return 1
    if name not in COMMANDS:
        # Nothing on stdout: callers read it as the command's output.
        log.error(f"No help topic for '{name}'")
        return 3
    if opts["criu"]:
        log.warning("--criu is ignored: pyrunc does not support checkpoint/restore")

    root = opts["root"] or default_root()
    if root == "/":
        return _fail("--root must not be /")
    ctx = Context(os.path.abspath(root), opts["systemd_cgroup"], opts["rootless"], opts["debug"])
    if ctx.rootless not in ("true", "false", "auto"):
        return _fail(f'invalid --rootless value "{ctx.rootless}": must be true, false or auto')

    module = _command_module(name)
    flags: list[Flag] = getattr(module, "FLAGS", [])
    try:
        cmd_opts, cmd_args = parse(args, flags + [Flag("help, h")],
                                   interspersed=getattr(module, "INTERSPERSED", True))
    except UsageError as exc:
        sys.stdout.write("Incorrect Usage.\n\n" + command_help(name, module))
        return _fail(str(exc))
    if cmd_opts.pop("help"):
        sys.stdout.write(command_help(name, module))
        return 0
    error_status: int = getattr(module, "ERROR_STATUS", 1)
    shown_trace = _start_trace(opts["trace"]) if opts["trace"] else None
    try:
        return _run_command(module, name, ctx, cmd_opts, cmd_args, error_status)
    finally:
        if shown_trace is not None:
            _show_trace(shown_trace)


def _run_command(module: object, name: str, ctx: Context, cmd_opts: dict[str, object],
                 cmd_args: list[str], error_status: int) -> int:
    from pyrunc import log

    try:
        return int(module.run(ctx, cmd_opts, cmd_args))  # type: ignore[attr-defined]
    except UsageError as exc:
        sys.stdout.write("Incorrect Usage.\n\n" + command_help(name, module))
        _fail(str(exc))
        return error_status
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
        from pyrunc.errors import describe

        if ctx.debug:
            import traceback

            log.debug(traceback.format_exc())
        _fail(describe(exc, name))
        return error_status
