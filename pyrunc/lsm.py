"""Linux security module labels: process.apparmorProfile, process.selinuxLabel, linux.mountLabel.

A label the config asks for is applied or the container is refused: silently running a container
without the confinement its config names would weaken it. Whether an LSM is on is asked of the
kernel itself (the AppArmor module's `enabled` parameter, a mounted selinuxfs), never guessed.

What is written, when the LSM is on (just before execve, through the init's procfs handle, so the
label takes effect on the program and not on pyrunc):
  * AppArmor: `exec <profile>` to /proc/thread-self/attr/apparmor/exec (or attr/exec on kernels
    without per-LSM attr directories);
  * SELinux: the label to /proc/thread-self/attr/exec;
  * linux.mountLabel: `context="<label>"` added to the data of the filesystems pyrunc mounts
    (tmpfs, devpts, mqueue; not bind mounts, proc or sysfs, which take no context).
"""

from __future__ import annotations

#: Filesystems that accept an SELinux context= mount option.
LABELLED_FILESYSTEMS = frozenset({"tmpfs", "devpts", "mqueue", "shm"})


class LSMError(ValueError):
    """A label was asked for that this host cannot apply."""


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.partition(" - ")[2].startswith("selinuxfs ") for line in f)
    except OSError:
        return False


def check(apparmor_profile: str | None, selinux_label: str | None,
          mount_label: str | None) -> None:
    """Refuse labels whose LSM is off, naming the field (create fails before anything exists)."""
    if apparmor_profile and not apparmor_enabled():
        raise LSMError(f"/process/apparmorProfile: {apparmor_profile!r} is set but AppArmor is "
                       "not enabled on this host")
    if selinux_label and not selinux_enabled():
        raise LSMError(f"/process/selinuxLabel: {selinux_label!r} is set but SELinux is disabled "
                       "or not supported on this host")
    if mount_label and not selinux_enabled():
        raise LSMError(f"/linux/mountLabel: {mount_label!r} is set but SELinux is disabled or "
                       "not supported on this host")


def apparmor_exec_attr(profile: str) -> bytes:
    """The bytes that make the next execve run confined by `profile`."""
    return b"exec " + profile.encode()


def selinux_exec_attr(label: str) -> bytes:
    return label.encode()


def with_mount_label(fstype: str | None, data: str | None, label: str | None) -> str | None:
    """Mount data with `context="<label>"` added where the filesystem takes one."""
    if not label or fstype not in LABELLED_FILESYSTEMS:
        return data
    context = f'context="{label}"'
    return f"{data},{context}" if data else context


def apply_exec_labels(procfs_fd: int, apparmor_profile: str | None,
                      selinux_label: str | None) -> None:
    """Write the exec labels for this thread; the next execve takes them."""
    if apparmor_profile:
        _write_attr(procfs_fd, ("thread-self/attr/apparmor/exec", "thread-self/attr/exec"),
                    apparmor_exec_attr(apparmor_profile), "apply AppArmor profile")
    if selinux_label:
        _write_attr(procfs_fd, ("thread-self/attr/exec",), selinux_exec_attr(selinux_label),
                    "set SELinux exec label")


def _write_attr(procfs_fd: int, candidates: tuple[str, ...], value: bytes, step: str) -> None:
    """Write the first of `candidates` that exists, through the procfs handle (see
    pyrunc.linux.procfs.write_file: beneath the handle, no mount crossed, on procfs)."""
    import errno

    from pyrunc.linux.procfs import write_file
    from pyrunc.linux.syscalls import KernelError

    last: OSError | None = None
    for name in candidates:
        try:
            write_file(procfs_fd, name, value, f"{step} ({name})")
            return
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            last = exc
    raise KernelError((last.errno if last else None) or errno.ENOENT, f"{step}: no attr file")
