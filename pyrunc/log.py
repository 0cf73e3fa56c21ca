"""Logging in runc's formats.

runc logs through logrus: with `--log-format json` every record is one JSON object per line with
`level`, `msg` and `time` (RFC 3339) plus structured fields; with `text`,
`time="…" level=… msg="…"`. containerd's shim decodes the whole log file as a JSON stream and
reports the *last* `error` record, so the file must only ever contain whole JSON lines.

Where records go: to the `--log` file when one is given, else to stderr. A fatal error is logged
*and* printed as one plain line on stderr when the log goes to a file (the caller shows stderr).
Processes forked by pyrunc (the container's init before exec) inherit the configuration, so their
messages land in the same file.
"""

from __future__ import annotations

import _json
import os
import sys
import time

# `typing` (and the `re` it imports on 3.11) costs milliseconds on the `state` hot path; the
# annotations are never evaluated, so the names are only needed by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "fatal": 50}


class _Config:
    path: str | None = None
    fmt: str = "text"
    level: int = _LEVELS["info"]
    fd: int | None = None
    records_on_stderr: bool = False   # --debug without --log: whole records, as runc's


_config = _Config()


def configure(path: str | None, fmt: str = "text", debug: bool = False,
              stderr_is_a_person: bool = True) -> None:
    """Set where and how records are written (called once by the CLI from the global flags).

    Without a log file, records go to stderr. When stderr is not a terminal (conmon, the shim,
    a script) it is often the *container's* stderr, and a successful command must print
    nothing there: then only errors are written, unless --debug asks for everything.
    With --debug and no log file, every record goes to stderr in the record format
    (``time="…" level=debug msg="…"``, or JSON with --log-format json), as runc writes them,
    whether stderr is a terminal or not.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"invalid log format {fmt!r}: must be text or json")
    _config.fmt = fmt
    _config.level = _LEVELS["debug"] if debug else _LEVELS["info"]
    if not path and not debug and not stderr_is_a_person:
        _config.level = _LEVELS["error"]
    _config.path = path
    _config.records_on_stderr = debug and not path
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_SYNC | os.O_CLOEXEC, 0o644)
        _config.fd = _out_of_the_way(fd)
    else:
        _config.fd = None


def _out_of_the_way(fd: int) -> int:
    """Move the log fd above the low numbers: fds 3, 4, ... may be ones the caller passes to the
    container (--preserve-fds, LISTEN_FDS), and a missing one must not be "found" as our log."""
    import fcntl

    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 256)
    except OSError:
        return fd
    os.close(fd)
    return high


def log_fd() -> int | None:
    """The log file descriptor (kept open across fork so the init can report into it)."""
    return _config.fd


def logs_to_file() -> bool:
    return _config.fd is not None


def _timestamp() -> str:
    now = time.time()
    local = time.localtime(now)
    offset = local.tm_gmtoff
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset)
    frac = f"{now % 1:.9f}"[1:]
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + frac + \
        (f"{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}" if local.tm_gmtoff else "Z")


def _json_value(value: Any, compact: bool) -> str:
    """`json.dumps(value, default=str)` for a record field, without importing json (see
    fastjson): the container's processes write records too, and may not import any more."""
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float) and value - value == 0:   # finite
        return float.__repr__(value)
    if isinstance(value, (dict, list, tuple, float)):
        import json  # a structured field: the runtime's own records only

        separators = (",", ":") if compact else (", ", ": ")
        return json.dumps(value, separators=separators, default=str)
    return _json.encode_basestring_ascii(str(value))


def _format(level: str, msg: str, fields: dict[str, Any]) -> str:
    if _config.fmt == "json":
        record: dict[str, Any] = {"level": level, "msg": msg, "time": _timestamp()}
        record.update(fields)
        return "{" + ",".join(f"{_json.encode_basestring_ascii(k)}:{_json_value(v, True)}"
                              for k, v in record.items()) + "}\n"
    parts = [f'time="{_timestamp()}"', f"level={level}", f"msg={_json_value(msg, False)}"]
    parts += [f"{k}={_json_value(v, False)}" for k, v in fields.items()]
    return " ".join(parts) + "\n"


def _write(level: str, msg: str, fields: dict[str, Any]) -> None:
    if _LEVELS[level] < _config.level:
        return
    if _config.fd is None and _config.fmt == "text" and not _config.records_on_stderr:
        # A person at a terminal: one plain line, no timestamps.
        prefix = "pyrunc: " if level == "error" else f"pyrunc: {level}: "
        extra = "".join(f" {k}={v}" for k, v in fields.items())
        line = (prefix + msg.rstrip("\n") + extra + "\n").encode()
    else:
        line = _format(level, msg, fields).encode()
    fd = _config.fd if _config.fd is not None else 2
    try:
        os.write(fd, line)
    except OSError:
        pass


def debug(msg: str, **fields: Any) -> None:
    _write("debug", msg, fields)


def info(msg: str, **fields: Any) -> None:
    _write("info", msg, fields)


def warning(msg: str, **fields: Any) -> None:
    _write("warning", msg, fields)


def error(msg: str, **fields: Any) -> None:
    """Log a fatal error: to the log, and as one plain line on stderr when the log is a file."""
    _write("error", msg, fields)
    if _config.fd is not None:
        try:
            sys.stderr.write(msg.rstrip("\n") + "\n")
            sys.stderr.flush()
        except OSError:
            pass
