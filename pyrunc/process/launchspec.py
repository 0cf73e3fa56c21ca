"""What the runtime tells its children about the container they are building."""

from __future__ import annotations

from pyrunc.spec.model import Config


class LaunchSpec:
    """Everything the intermediate and init processes need, fixed before the first fork."""

    def __init__(self, container_id: str, config: Config, bundle: str, *, fifo_fd: int = -1,
                 console_fd: int | None = None, no_pivot: bool = False,
                 no_new_keyring: bool = False, listen_fds: int = 0, preserve_fds: int = 0,
                 close_in_child: list[int] | None = None, rootless: bool = False,
                 fix_stdio_owner: bool = True, keep_fds: list[int] | None = None) -> None:
        self.container_id = container_id
        self.config = config
        self.bundle = bundle
        self.fifo_fd = fifo_fd                # O_PATH fd of <root>/<id>/exec.fifo (the init
                                              # reopens it)
        self.console_fd = console_fd          # connected console socket (process.terminal)
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.listen_fds = listen_fds          # socket activation: fds 3..3+n-1 (LISTEN_FDS)
        self.preserve_fds = preserve_fds      # --preserve-fds: the next n fds, unchanged
        self.close_in_child = close_in_child or []   # runtime-only fds (the state lock, ...)
        self.rootless = rootless              # --rootless (the cgroup is decided by create)
        # chown the inherited stdio to the process user; off for a foreground run, whose
        # stdio is the person's own terminal
        self.fix_stdio_owner = fix_stdio_owner
        # other fds the children need until execve; every fd not named here is closed in them
        self.keep_fds = keep_fds or []
