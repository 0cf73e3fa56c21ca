"""Open (and create) a path inside a root directory, safely: the one job of this module.

The rootfs belongs to the image, and the image (or a process racing with the runtime) may turn
any component of a path into a symlink at any moment: absolute, climbing with `..`, or into
/proc's magic links. A path string that was checked and then used again is two lookups, and the
second one may land outside the rootfs (CVE-2021-30465, CVE-2024-45310). So every lookup here
starts from a file descriptor of the root and ends in a file descriptor, and the caller works on
that descriptor (mounts go onto `fd_path(fd)`, nodes are made with `*at` calls on a parent fd):

* With openat2(2) (Linux 5.6) the kernel resolves the whole path under RESOLVE_IN_ROOT (the root
  fd acts as "/": absolute symlinks and `..` stop at it) and RESOLVE_NO_MAGICLINKS.
* Where openat2 is missing (ENOSYS), `_walk` does the same lookup by hand: one component at a
  time with O_NOFOLLOW from the fd of its parent, each symlink read with readlinkat and its target
  spliced in (restarting at the root when absolute), `..` taken lexically on the resolved
  components so it never climbs above the root. The kernel never follows a symlink for it.

Creating (`mkdir_in_root`, `create_in_root`) always walks: it needs the parent's fd for
mkdirat/openat(O_CREAT), and a symlink that appears between the check and the creation is then
followed inside the root, never outside.
"""

from __future__ import annotations

import errno
import os
import stat

from pyrunc.linux.mountapi import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2
from pyrunc.linux.syscalls import KernelError

#: As the kernel's limit on symlinks in one lookup.
MAX_SYMLINKS = 40

_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS

#: None until the first call tells whether this kernel has openat2; tests may set it to False.
have_openat2: bool | None = None


def fd_path(fd: int) -> str:
    """The magic link naming exactly the object `fd` refers to (for mount(2) and friends)."""
    return f"/proc/thread-self/fd/{fd}"


def open_root(path: str) -> int:
    """An O_PATH fd of the directory `path` (the runtime's own path: trusted, followed)."""
    try:
        return os.open(path, _DIR)
    except OSError as exc:
        raise KernelError(exc.errno or errno.EIO, f"open the root {path}", path) from None


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH, *,
                 follow: bool = True) -> int:
    """Open `path` as seen with `root_fd` as "/" (close-on-exec is added).

    `follow=False` opens a final symlink itself (as O_NOFOLLOW does); the components before it
    are always followed, inside the root.
    """
    global have_openat2
    flags |= os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    if have_openat2 is not False:
        for _ in range(8):
            try:
                fd = openat2(root_fd, _relative(path), flags, _RESOLVE)
            except KernelError as exc:
                if exc.errno == errno.EAGAIN:  # a rename raced with a ".." lookup: retry
                    continue
                if exc.errno != errno.ENOSYS:
                    raise KernelError(exc.errno or errno.EIO, f"open {path} inside the root",
                                      path) from None
                have_openat2 = False
                break
            have_openat2 = True
            return fd
    parent, name = _walk(root_fd, path, create=None, follow_last=follow)
    if name is None:
        return parent if flags & os.O_PATH else _reopen_dir(parent, flags, path)
    try:
        return _open_last(parent, name, flags, path)
    finally:
        os.close(parent)


def mkdir_in_root(root_fd: int, path: str, mode: int = 0o755) -> int:
    """mkdir -p of `path` inside the root; an O_PATH fd of the (new or existing) directory."""
    fd, name = _walk(root_fd, path, create=mode, follow_last=True)
    assert name is None
    return fd


def create_in_root(root_fd: int, path: str, mode: int = 0o644,
                   flags: int = os.O_PATH) -> int:
    """Make sure `path` exists inside the root (parents as directories, the last component an
    empty regular file unless something is there already) and open it with `flags`.

    A final symlink is followed inside the root, as everywhere else."""
    parent, name = _walk(root_fd, os.path.dirname(path.rstrip("/")) or "/", create=0o755,
                         follow_last=True)
    base = os.path.basename(path.rstrip("/"))
    try:
        if base in ("", ".", ".."):
            raise KernelError(errno.EINVAL, f"create {path}: not a file name", path)
        try:
            made = os.open(base, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                           | os.O_CLOEXEC, mode, dir_fd=parent)
            os.close(made)
        except FileExistsError:
            pass
        except OSError as exc:
            raise KernelError(exc.errno or errno.EIO, f"create {path} inside the root",
                              path) from None
        return open_in_root(root_fd, path, flags)
    finally:
        os.close(parent)


def _relative(path: str) -> str:
    return "/".join(c for c in path.split("/") if c) or "."


def _open_last(parent: int, name: str, flags: int, path: str) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        raise KernelError(exc.errno or errno.EIO, f"open {path} inside the root", path) from None


def _reopen_dir(fd: int, flags: int, path: str) -> int:
    try:
        return os.open(".", flags, dir_fd=fd)
    except OSError as exc:
        raise KernelError(exc.errno or errno.EIO, f"open {path} inside the root", path) from None
    finally:
        os.close(fd)


def _walk(root_fd: int, path: str, *, create: int | None,
          follow_last: bool) -> tuple[int, str | None]:
    """Resolve `path` under `root_fd` by hand, one component at a time, never letting the kernel
    follow a symlink.

    Returns (fd, None) for the resolved directory when every component was walked, or (parent
    fd, name) when the last component is not a directory to walk into (a file, a symlink not
    followed, or missing without `create`). With `create` set, missing components are made as
    directories of that mode. The fd returned is the caller's to close.
    """
    pending = [c for c in path.split("/") if c]
    resolved: list[str] = []      # the components walked so far, none of them a symlink
    cur = os.dup(root_fd)
    links = 0
    try:
        while pending:
            name = pending.pop(0)
            if name == ".":
                continue
            if name == "..":
                # Lexically, on what was resolved: never above the root.
                resolved = resolved[:-1]
                os.close(cur)
                cur = -1
                cur = _walk(root_fd, "/".join(resolved), create=None, follow_last=True)[0]
                continue
            last = not pending
            try:
                nxt = os.open(name, _NOFOLLOW, dir_fd=cur)
            except FileNotFoundError:
                if create is None:
                    if last:
                        return _handover(cur, name)
                    raise KernelError(errno.ENOENT, f"look up {path} inside the root",
                                      path) from None
                try:
                    os.mkdir(name, create, dir_fd=cur)
                except FileExistsError:
                    pass  # made meanwhile: looked at below like anything else
                except OSError as exc:
                    raise KernelError(exc.errno or errno.EIO,
                                      f"create directory {'/'.join(resolved + [name])}",
                                      path) from None
                nxt = os.open(name, _NOFOLLOW, dir_fd=cur)
            mode = os.fstat(nxt).st_mode
            if stat.S_ISLNK(mode):
                if last and not follow_last:
                    os.close(nxt)
                    return _handover(cur, name)
                links += 1
                if links > MAX_SYMLINKS:
                    os.close(nxt)
                    raise KernelError(errno.ELOOP, f"resolve {path} inside the root", path)
                target = os.readlink(name, dir_fd=cur)
                os.close(nxt)
                if target.startswith("/"):
                    resolved = []
                    os.close(cur)
                    cur = -1
                    cur = os.dup(root_fd)
                pending[:0] = [c for c in target.split("/") if c]
                continue
            if not stat.S_ISDIR(mode):
                os.close(nxt)
                if last:
                    return _handover(cur, name)
                raise KernelError(errno.ENOTDIR, f"resolve {path} inside the root: "
                                  f"/{'/'.join(resolved + [name])} is not a directory", path)
            os.close(cur)
            cur = nxt
            resolved.append(name)
        return _handover(cur, None)
    finally:
        if cur != -1:
            os.close(cur)


def _handover(fd: int, name: str | None) -> tuple[int, str | None]:
    """Give `fd` to the caller: a duplicate, as the walk's `finally` closes its own."""
    return os.dup(fd), name
