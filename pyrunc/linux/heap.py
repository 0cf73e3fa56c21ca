"""The C allocator's one knob pyrunc turns: giving its free pages back to the kernel.

glibc keeps the memory `free()` returns in its heap for the next `malloc()`; only a large free
block at the very top of the heap goes back by itself. `malloc_trim(0)` also hands the kernel
the whole free pages *inside* the heap (madvise MADV_DONTNEED), so they stop counting in the
process's resident anonymous memory until something writes there again.
"""

from __future__ import annotations

import ctypes

_libc = ctypes.CDLL(None)


def trim() -> bool:
    """malloc_trim(0); True when pages went back. False where nothing could be released, or
    where the C library has no malloc_trim (musl): then there is nothing to do."""
    try:
        function = _libc.malloc_trim
    except AttributeError:
        return False
    return bool(function(ctypes.c_size_t(0)))
