"""One directory at a time below a descriptor, never following a link.

Each step is `os.open(name, O_DIRECTORY | O_NOFOLLOW, dir_fd=parent)`: the kernel resolves a single
name from a descriptor we hold, so a component swapped for a link at any moment is refused at the
moment of use. O_NONBLOCK keeps a FIFO swapped in from blocking the open.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from shared.fs.errors import PathMissing, failure

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_subdir(fd: int, name: str, shown: str, create: bool) -> int:
    """Open directory `name` below `fd` without following links; mkdir it first when `create`."""
    for _ in range(3):
        try:
            return os.open(name, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError as exc:
            if not create:
                raise failure(exc, fd, name, shown) from None
        except OSError as exc:
            raise failure(exc, fd, name, shown) from None
        try:
            os.mkdir(name, 0o777, dir_fd=fd)
        except FileExistsError:
            pass  # made by someone else meanwhile; the next open checks what it is
        except OSError as exc:
            raise failure(exc, fd, name, shown) from None
    raise PathMissing(f"{shown} kept vanishing while it was being created")


def descend(start: int, names: Sequence[str], shown: str, create: bool = False) -> int:
    """A new descriptor for `start/names...`, one no-follow step at a time; `start` stays open."""
    fd = start
    try:
        for name in names:
            child = open_subdir(fd, name, shown, create)
            if fd != start:
                os.close(fd)
            fd = child
    except BaseException:
        if fd != start:
            os.close(fd)
        raise
    return os.dup(fd) if fd == start else fd
