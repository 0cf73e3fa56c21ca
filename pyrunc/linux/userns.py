"""A user namespace that holds nothing but a pair of id maps, as an fd.

mount_setattr(MOUNT_ATTR_IDMAP) takes its mapping from a user namespace, not from a list of
numbers: an idmapped mount whose mapping no existing namespace has needs one made for it. No
process has to live in it, only an fd has to keep it: a throw-away child unshares
CLONE_NEWUSER, the caller writes the child's uid_map and gid_map from outside (a process cannot
map ids it does not hold, its parent can), opens /proc/<child>/ns/user, and reaps the child.
"""

from __future__ import annotations

import errno
import os

from pyrunc.linux import syscalls
from pyrunc.linux.consts import CLONE_NEWUSER


def new_user_namespace(uid_map: str, gid_map: str, *, what: str = "an idmapped mount") -> int:
    """An O_RDONLY fd (close-on-exec) of a new user namespace with exactly these maps.

    `uid_map` and `gid_map` are in the kernel's /proc format, one "inside outside count" line
    per range. `what` names the user of the namespace in error messages.
    """
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 255
        try:
            os.close(ready_r)
            os.close(done_w)
            syscalls.unshare(CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)  # hold the namespace until the parent has its fd
            code = 0
        except OSError as exc:
            code = exc.errno or 255
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    reaped = False
    try:
        if os.read(ready_r, 1) != b"1":
            _, status = os.waitpid(pid, 0)
            reaped = True
            code = os.waitstatus_to_exitcode(status)   # the errno of its unshare, or 255
            raise syscalls.KernelError(code if 0 < code < 255 else errno.EIO,
                                       f"create the user namespace for {what}")
        for name, mapping in (("uid_map", uid_map), ("gid_map", gid_map)):
            try:
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(mapping)
            except OSError as exc:
                raise syscalls.describe_oserror(
                    exc, f"write {name} {' / '.join(mapping.splitlines())!r} of the user "
                         f"namespace for {what}") from None
        try:
            return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise syscalls.describe_oserror(exc, f"open the user namespace for {what}") from None
    finally:
        os.close(done_w)
        os.close(ready_r)
        if not reaped:
            os.waitpid(pid, 0)
