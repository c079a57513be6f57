"""The client-safe failures of confined file access, and the mapping from `OSError` to them.

Messages name a path only as `shown` (the caller's spelling, quoted by `quote`, or its part below its
root): never a root, a resolved host path or an errno string.
"""

from __future__ import annotations

import errno
import os
import stat as st
from contextlib import suppress

from shared.errors import Conflict, InvalidInput, NotFound, PermissionDenied

_SHOWN_CHARS = 160


class PathDenied(PermissionDenied):
    """The path leaves the allowed directories, crosses a link, or names a non-regular file."""


class PathInvalid(InvalidInput):
    """The path is malformed (empty, NUL byte, too long) or names the wrong kind of object."""


class PathMissing(NotFound):
    """The path (or a directory on the way to it) does not exist."""


class PathExists(Conflict):
    """An exclusive write found the file already there."""


class FileTooLarge(InvalidInput):
    """A read would exceed its `max_bytes` cap."""


def quote(text: str) -> str:
    """Quote caller text for a message: control characters escaped, long text cut."""
    cut = text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut) + "'"


def link_denied(shown: str) -> PathDenied:
    return PathDenied(f"{shown} goes through a symbolic link; links are not followed")


def failure(exc: OSError, dir_fd: int, name: str, shown: str) -> Exception:
    """Turn an OSError on `name` (inside `dir_fd`) into a client-safe failure, or keep it (internal)."""
    code = exc.errno
    if code in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO, errno.EEXIST):
        with suppress(OSError):
            if st.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                return link_denied(shown)
    if code == errno.ENOENT:
        return PathMissing(f"{shown} does not exist")
    if code == errno.ENOTDIR:
        return PathInvalid(f"{shown}: {quote(name)} is not a directory")
    if code == errno.EISDIR:
        return PathInvalid(f"{shown} is a directory, not a file")
    if code in (errno.ELOOP, errno.ENXIO):
        return PathDenied(f"{shown} is not a regular file or directory")
    if code == errno.EEXIST:
        return PathExists(f"{shown} already exists")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PathDenied(f"{shown}: the host does not allow this access")
    if code == errno.ENAMETOOLONG:
        return PathInvalid(f"{shown} is too long for the filesystem")
    return exc


def require_regular(mode: int, shown: str) -> None:
    """Refuse anything but a regular file: a link, a directory, a device, a pipe or a socket."""
    if st.S_ISREG(mode):
        return
    if st.S_ISLNK(mode):
        raise link_denied(shown)
    if st.S_ISDIR(mode):
        raise PathInvalid(f"{shown} is a directory, not a file")
    raise PathDenied(f"{shown} is not a regular file; devices, pipes and sockets are refused")
