"""Whole-file reads, lstat and atomic writes of one name inside an open directory.

Only regular files are read or written. A no-follow lstat before opening keeps FIFOs, sockets and
devices from even being opened, O_NONBLOCK | O_NOCTTY keeps one swapped in later from blocking, and
fstat of the opened descriptor decides. Reads are capped; writes go to a temp file in the same
directory, fsynced, then renamed into place.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat as st
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from shared.fs.errors import FileTooLarge, PathExists, failure, link_denied, require_regular

_CHUNK = 1 << 20
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_HARDLINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}


@contextmanager
def open_regular(parent: int, name: str, shown: str) -> Iterator[tuple[int, os.stat_result]]:
    """A read descriptor of regular file `name` in `parent`, and its fstat; closed on exit."""
    try:
        require_regular(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode, shown)
        fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
    except OSError as exc:
        raise failure(exc, parent, name, shown) from None
    try:
        info = os.fstat(fd)
        require_regular(info.st_mode, shown)  # decides: this is what was actually opened
        yield fd, info
    finally:
        os.close(fd)


def read_capped(fd: int, info: os.stat_result, shown: str, max_bytes: int) -> bytes:
    """The whole content of an open file, refused (FileTooLarge) when over `max_bytes`."""
    too_large = FileTooLarge(f"file {shown} is larger than {max_bytes} bytes")
    if info.st_size > max_bytes:
        raise too_large
    data = bytearray()
    while len(data) <= max_bytes:  # reading one byte past the cap reveals a file that grew
        chunk = os.read(fd, min(max_bytes + 1 - len(data), _CHUNK))
        if not chunk:
            return bytes(data)
        data += chunk
    raise too_large


def lstat_entry(parent: int, name: str, shown: str) -> os.stat_result:
    """lstat-style metadata of `name` in `parent`; a link is refused rather than described."""
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError as exc:
        raise failure(exc, parent, name, shown) from None
    if st.S_ISLNK(info.st_mode):
        raise link_denied(shown)
    return info


def write_atomic(parent: int, name: str, shown: str, data: bytes, *, exclusive: bool) -> None:
    """Create or replace regular file `name` in `parent`, all or nothing.

    The data goes to a temp file in the same directory, is fsynced, then renamed over the name
    (or, when `exclusive`, hard-linked to it, which fails if the name exists: PathExists). On any
    failure the temp file is removed and the old content, if any, stays intact.
    """
    temp: str | None = None
    try:
        old = None
        with suppress(FileNotFoundError):
            old = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if old is not None:
            if exclusive:
                raise PathExists(f"{shown} already exists")
            require_regular(old.st_mode, shown)
        temp = f".{secrets.token_hex(8)}.partial"
        fd = os.open(temp, _CREATE_FLAGS, 0o666, dir_fd=parent)
        try:
            if old is not None:
                os.fchmod(fd, st.S_IMODE(old.st_mode) & 0o777)  # keep permissions, never setuid/setgid
            view = memoryview(data).cast("B")
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            _link_exclusive(parent, temp, name)
        else:
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
            temp = None
        with suppress(OSError):
            os.fsync(parent)  # make the new directory entry durable
    except OSError as exc:
        raise failure(exc, parent, name, shown) from None
    finally:
        if temp is not None:
            with suppress(OSError):
                os.unlink(temp, dir_fd=parent)


def _link_exclusive(parent: int, temp: str, name: str) -> None:
    """Publish `temp` as `name` only if `name` is absent (link fails with EEXIST otherwise)."""
    try:
        os.link(temp, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
        return
    except OSError as exc:
        if exc.errno not in _NO_HARDLINKS:
            raise
    # No hard links on this filesystem: claim the name with O_EXCL, then rename over the claim.
    # An empty file is visible for that moment; the content is never seen half-written.
    os.close(os.open(name, _CREATE_FLAGS, 0o600, dir_fd=parent))
    try:
        os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except OSError:
        with suppress(OSError):
            os.unlink(name, dir_fd=parent)
        raise
