"""A Go-style command-line flag parser, because runc's callers speak Go.

containerd (through go-runc), conmon and runtime-tools build runc command lines with Go's flag
conventions: `--flag value`, `--flag=value`, single-dash long flags (`-no-subreaper`), and boolean
flags that never take a separate value (`--detach=true` is fine, `--detach true` makes `true` a
positional). argparse implements GNU conventions instead, so pyrunc parses flags itself; this is
also cheaper to import, which matters because every `pyrunc` call pays for it.
"""

from __future__ import annotations

# `typing` (and the `re` it imports on 3.11) costs milliseconds on the `state` hot path; the
# annotations are never evaluated, so the names are only needed by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class UsageError(Exception):
    """Bad command line; the CLI prints `Incorrect Usage.` plus help, like runc, and exits 1."""


class Flag:
    """One flag: its names (first is canonical), its kind and its default.

    kind is "bool", "str", "int" or "list" (repeatable string).
    """

    def __init__(self, names: str, kind: str = "bool", default: Any = None, help: str = "",
                 metavar: str = "value", hidden: bool = False) -> None:
        self.names = tuple(n.strip() for n in names.split(","))
        self.kind = kind
        if default is None:
            default = {"bool": False, "str": "", "int": 0, "list": []}[kind]
        self.default = default
        self.help = help
        self.metavar = metavar
        self.hidden = hidden

    @property
    def key(self) -> str:
        return self.names[0].replace("-", "_")


_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def parse(argv: list[str], flags: list[Flag], *, interspersed: bool = True
          ) -> tuple[dict[str, Any], list[str]]:
    """Parse `argv` against `flags`.

    Returns (values by Flag.key, positional arguments). With interspersed=False parsing stops at
    the first positional argument (what `exec`, `kill` and `ps` need: everything after the id
    belongs to the container). `--` always ends flag parsing.
    """
    by_name = {name: flag for flag in flags for name in flag.names}
    values: dict[str, Any] = {f.key: (list(f.default) if f.kind == "list" else f.default)
                              for f in flags}
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positionals.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            if not interspersed:
                positionals.extend(argv[i:])
                break
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if flag.kind == "bool":
            if has_value:
                if value in _TRUE:
                    values[flag.key] = True
                elif value in _FALSE:
                    values[flag.key] = False
                else:
                    raise UsageError(f'invalid boolean value "{value}" for -{name}')
            else:
                values[flag.key] = True
            continue
        if not has_value:
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: -{name}")
            value = argv[i]
            i += 1
        if flag.kind == "int":
            try:
                values[flag.key] = int(value, 0)
            except ValueError:
                raise UsageError(f'invalid value "{value}" for flag -{name}: parse error') from None
        elif flag.kind == "list":
            values[flag.key].append(value)
        else:
            values[flag.key] = value
    return values, positionals


def format_flags(flags: list[Flag]) -> str:
    """The OPTIONS section of a help text."""
    lines = []
    for flag in flags:
        if flag.hidden:
            continue
        names = ", ".join(("--" if len(n) > 1 else "-") + n for n in flag.names)
        if flag.kind != "bool":
            names += f" {flag.metavar}"
        default = ""
        if flag.kind in ("str", "int") and flag.default not in ("", 0):
            default = f' (default: "{flag.default}")' if flag.kind == "str" else \
                f" (default: {flag.default})"
        lines.append(f"   {names:<28} {flag.help}{default}")
    return "\n".join(lines)


def container_id_arg(args: list[str], command: str) -> str:
    """The one positional argument most commands take: the container id."""
    if len(args) != 1:
        raise UsageError(f'"{command}" requires exactly 1 argument(s)' if args else
                         f'"{command}" requires a container id')
    return args[0]
