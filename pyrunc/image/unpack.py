"""Unpack one layer tar into a directory, without ever writing outside it.

Every path is walked one component at a time from a directory fd with O_NOFOLLOW, so a member
named `../x`, `/etc/x`, or `link/x` where `link` is a symlink (to anywhere) is refused, as is a
hard link whose target lies outside the layer. The layer is refused as a whole: the caller
removes the half-written directory.

OCI whiteouts become what overlayfs reads as whiteouts: `.wh.NAME` becomes a character device
0:0 named NAME, and `.wh..wh..opq` in a directory sets `trusted.overlay.opaque=y` on it. The
uncompressed stream is hashed while it is read and must equal the layer's diff_id from the
(verified) image config, which also covers a blob changed after its digest was checked.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
from typing import Any, BinaryIO

from pyrunc.image.layout import ImageError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class UnpackError(ImageError):
    """A layer that cannot be unpacked safely (escape attempt, bad digest, bad tar)."""


class _HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, stream: Any, algorithm: str) -> None:
        self._stream = stream
        self._hash = hashlib.new(algorithm)
        self.algorithm = algorithm
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._stream.read(size)
        self._hash.update(data)
        self.count += len(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return f"{self.algorithm}:{self._hash.hexdigest()}"


def zstd_available() -> bool:
    """Whether a Python zstd module (3.14's compression.zstd or `zstandard`) is importable."""
    return _zstd_reader_factory() is not None


def _zstd_reader_factory() -> Any:
    try:
        from compression import zstd  # type: ignore[import-not-found]

        return lambda raw: zstd.ZstdFile(raw)
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found]

        return lambda raw: zstandard.ZstdDecompressor().stream_reader(raw)
    except ImportError:
        return None


def decompressed(raw: BinaryIO, where: str) -> Any:
    """`raw` as an uncompressed stream, the compression told by its first bytes."""
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic == _ZSTD_MAGIC:
        factory = _zstd_reader_factory()
        if factory is None:
            raise UnpackError(f"{where}: zstd-compressed layer, but no Python zstd module is "
                              "installed (compression.zstd or zstandard)")
        return factory(raw)
    return raw


def unpack_layer(blob: str, dest: str, diff_id: str, where: str) -> None:
    """Unpack the layer tar `blob` into the existing, empty directory `dest`."""
    root_fd = os.open(dest, _DIR_FLAGS)
    try:
        with open(blob, "rb") as raw:
            reader = _HashingReader(decompressed(raw, where), diff_id.partition(":")[0])
            try:
                with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                    _Extractor(tar, root_fd, where).run()
            except tarfile.ReadError:
                if reader.count:  # an empty stream is an empty layer; anything else is bad
                    raise UnpackError(f"{where}: not a valid layer tar") from None
            except (tarfile.TarError, EOFError, gzip.BadGzipFile) as exc:
                raise UnpackError(f"{where}: not a valid layer tar: {exc}") from None
            try:
                got = reader.drain()
            except (EOFError, gzip.BadGzipFile) as exc:
                raise UnpackError(f"{where}: not a valid layer tar: {exc}") from None
    finally:
        os.close(root_fd)
    if got != diff_id:
        raise UnpackError(f"{where}: uncompressed content has digest {got}, the image config "
                          f"says {diff_id}: refusing a corrupted layer")


def components(name: str, where: str) -> list[str]:
    """A member name as path components below the layer root; refuses escapes."""
    if name.startswith("/"):
        raise UnpackError(f"{where}: member {name!r} has an absolute path: refusing it")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnpackError(f"{where}: member {name!r} has a '..' component: refusing it")
    return parts


def open_dir(root_fd: int, parts: list[str], name: str, where: str, *, create: bool) -> int:
    """An fd of the directory `parts` below root_fd, never following a symlink on the way."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise UnpackError(f"{where}: member {name!r}: {part!r} does not exist in "
                                      "this layer") from None
                os.mkdir(part, 0o755, dir_fd=fd)
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnpackError(f"{where}: member {name!r} goes through {part!r}, a "
                                      "symlink or non-directory: refusing it") from None
                raise
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove_entry(parent_fd: int, name: str, keep_dir: bool) -> None:
    """Make room for a new entry `name` (a later member replaces an earlier one)."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not keep_dir:
            shutil.rmtree(name, dir_fd=parent_fd)
    else:
        os.unlink(name, dir_fd=parent_fd)


class _Extractor:
    """Writes the members of one tar stream below root_fd."""

    def __init__(self, tar: tarfile.TarFile, root_fd: int, where: str) -> None:
        self.tar = tar
        self.root_fd = root_fd
        self.where = where
        self.dir_times: list[tuple[list[str], int]] = []

    def run(self) -> None:
        for member in self.tar:
            self.extract(member)
        # Directory times last: every entry created inside a directory changes its mtime.
        for parts, mtime_ns in reversed(self.dir_times):
            fd = open_dir(self.root_fd, parts, "/".join(parts), self.where, create=False)
            try:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)

    def extract(self, member: tarfile.TarInfo) -> None:
        parts = components(member.name, self.where)
        if not parts:  # "./": the layer root itself
            if member.isdir():
                self._set_dir_attrs(self.root_fd, member, parts)
            return
        parent = open_dir(self.root_fd, parts[:-1], member.name, self.where, create=True)
        try:
            self._extract_in(parent, parts, member)
        finally:
            os.close(parent)

    def _extract_in(self, parent: int, parts: list[str], member: tarfile.TarInfo) -> None:
        base = parts[-1]
        if base == OPAQUE_MARKER:
            os.setxattr(parent, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_PREFIX):
            hidden = base[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", "..") or hidden.startswith(WHITEOUT_PREFIX):
                raise UnpackError(f"{self.where}: member {member.name!r} is not a valid "
                                  "whiteout: refusing it")
            _remove_entry(parent, hidden, keep_dir=False)
            os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
            return
        _remove_entry(parent, base, keep_dir=member.isdir())
        if member.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=parent)
            except FileExistsError:
                pass
            fd = os.open(base, _DIR_FLAGS, dir_fd=parent)
            try:
                self._set_dir_attrs(fd, member, parts)
            finally:
                os.close(fd)
        elif member.isreg():
            self._write_file(parent, base, member)
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=parent)
            self._set_link_attrs(parent, base, member)
        elif member.islnk():
            self._hard_link(parent, base, member)
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = stat.S_IFCHR if member.ischr() else \
                stat.S_IFBLK if member.isblk() else stat.S_IFIFO
            device = os.makedev(member.devmajor, member.devminor) if not member.isfifo() else 0
            os.mknod(base, kind | 0o600, device, dir_fd=parent)
            self._set_link_attrs(parent, base, member)
            os.chmod(base, member.mode & 0o7777, dir_fd=parent)
        else:
            raise UnpackError(f"{self.where}: member {member.name!r} has unsupported type "
                              f"{member.type!r}")

    def _write_file(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        try:
            source = self.tar.extractfile(member)
            if source is not None:
                with os.fdopen(fd, "wb", closefd=False) as out:
                    shutil.copyfileobj(source, out, 1 << 20)
            self._set_fd_attrs(fd, member)
            mtime_ns = int(member.mtime * 1e9)
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)

    def _hard_link(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        target = components(member.linkname, self.where)
        if not target:
            raise UnpackError(f"{self.where}: member {member.name!r} is a hard link to the "
                              "layer root: refusing it")
        src = open_dir(self.root_fd, target[:-1], member.linkname, self.where, create=False)
        try:
            os.link(target[-1], base, src_dir_fd=src, dst_dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise UnpackError(f"{self.where}: member {member.name!r} is a hard link to "
                              f"{member.linkname!r}, which is not in this layer") from None
        finally:
            os.close(src)

    def _set_fd_attrs(self, fd: int, member: tarfile.TarInfo) -> None:
        # Owner before mode: chown clears the setuid and setgid bits.
        os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)
        for key, value in _xattrs(member):
            os.setxattr(fd, key, value)

    def _set_dir_attrs(self, fd: int, member: tarfile.TarInfo, parts: list[str]) -> None:
        self._set_fd_attrs(fd, member)
        self.dir_times.append((parts, int(member.mtime * 1e9)))

    def _set_link_attrs(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        os.chown(base, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        mtime_ns = int(member.mtime * 1e9)
        os.utime(base, ns=(mtime_ns, mtime_ns), dir_fd=parent, follow_symlinks=False)


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    """The member's extended attributes, except trusted.* (a layer must not forge overlay
    metadata such as trusted.overlay.redirect)."""
    found = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            if not name.startswith("trusted."):
                found.append((name, value.encode("utf-8", "surrogateescape")))
    return found
