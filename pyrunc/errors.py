"""Turning any failure into the one line a user (or containerd) reads."""

from __future__ import annotations

import errno


def describe(exc: BaseException, command: str) -> str:
    """One line naming what failed and why (errno name for kernel errors), no traceback."""
    if isinstance(exc, OSError) and type(exc).__name__ != "KernelError":
        name = errno.errorcode.get(exc.errno or 0, "") if exc.errno else ""
        where = f"{exc.filename}: " if exc.filename else ""
        reason = f"{name} ({exc.strerror})" if name else (exc.strerror or str(exc))
        return f"{command}: {where}{reason}"
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")
