"""pyrunc: a runc-compatible OCI container runtime written in Python.

The package is layered, and dependencies only point downwards:

    cli  ->  container  ->  process  ->  (rootfs, cgroups, capabilities, hooks, ...)  ->  linux

`linux` is the only place that talks to the kernel through ctypes.
"""

__version__ = "0.1.0"

#: The runtime-spec version this runtime implements (reported by `state`, `features`, `--version`).
OCI_VERSION = "1.3.0"
