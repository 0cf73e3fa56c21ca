"""What the runtime tells its children about the container they are building."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyrunc.spec.model import Config


@dataclass
class LaunchSpec:
    container_id: str
    config: Config
    bundle: str
    fifo_fd: int = -1                  # O_PATH fd of <state>/exec.fifo, reopened by the init
    console_fd: int | None = None      # connected console socket (process.terminal)
    no_pivot: bool = False
    no_new_keyring: bool = False
    listen_fds: int = 0                # socket activation: fds 3..3+n-1 passed as LISTEN_FDS
    preserve_fds: int = 0              # --preserve-fds: the next n fds, passed unchanged
    close_in_child: list[int] = field(default_factory=list)   # runtime-only fds (locks, ...)
