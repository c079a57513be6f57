"""Confine file access to configured root directories, without check-then-use races.

Why our own: the stdlib has no `openat2(RESOLVE_BENEATH)` wrapper and no maintained package offers a
dir-fd based jail for Linux and macOS. The usual string approach (realpath, prefix compare, open) is
what the reference Node filesystem server got wrong: a prefix compare without a separator boundary
(CVE-2025-53110), a swallowed error that let symlinks escape (CVE-2025-53109), and a component swapped
for a symlink between check and open.

How: `locate` checks a caller's path lexically (absolute paths must lie inside a root by whole-component
comparison, relative ones are taken against the first root, a `..` above the root is refused). Then no
name is resolved by the kernel from anywhere but a descriptor we hold: each operation opens the root
(checking it is still the directory seen at startup) and steps one component at a time with
`os.open(name, O_DIRECTORY | O_NOFOLLOW, dir_fd=parent)`, so a link swapped in at any moment is refused
by the kernel at the moment of use. This module is the jail (roots, the lexical check, opening a root);
the descriptor-level steps and file operations it hands a located path to are `shared.fs`.

Policy, deliberately strict:
* Every symbolic link is refused, wherever it points (inside a root too): resolving link targets would
  bring back string checks and their races. `walk_files` skips links and never descends them.
* Only regular files are read or written; FIFOs, sockets and devices are refused. A no-follow lstat
  before opening keeps them from even being opened, O_NONBLOCK | O_NOCTTY keeps one swapped in later
  from blocking, and fstat of the opened descriptor decides.
* Reads are capped; writes go to a temp file in the same directory, fsynced, then renamed into place.
* Names are kept as given (no Unicode normalization); NFC and NFD spellings are different names.
* Messages quote a relative path as given and an absolute one only by its part below its root; roots
  and resolved host paths never appear.

Limits: a hard link inside a root to a file elsewhere looks like any file (`fs.protected_hardlinks`
stops others linking files they do not own); mount points inside a root are the operator's choice.
All calls block: async callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from shared.fs.errors import FileTooLarge, PathDenied, PathExists, PathInvalid, PathMissing, quote
from shared.fs.files import lstat_entry, open_regular, read_capped, write_atomic
from shared.fs.steps import DIR_FLAGS, descend
from shared.fs.walk import walk_below

__all__ = ["FileTooLarge", "PathDenied", "PathExists", "PathInvalid", "PathJail", "PathMissing"]

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


def _normalize(parts: Sequence[str]) -> tuple[str, ...] | None:
    """Apply `..` lexically; None when it climbs above the start."""
    out: list[str] = []
    for part in parts:
        if part != "..":
            out.append(part)
        elif out:
            out.pop()
        else:
            return None
    return tuple(out)


class PathJail:
    """Path operations confined to `roots`; thread-safe (it holds no mutable state)."""

    def __init__(self, roots: Sequence[str | os.PathLike[str]]) -> None:
        if isinstance(roots, (str, os.PathLike)) or not roots:
            raise ValueError("PathJail needs a non-empty sequence of root directories")
        resolved: list[Path] = []
        aliases: list[tuple[tuple[str, ...], int]] = []
        ids: list[tuple[int, int]] = []
        for index, root in enumerate(roots):
            given = os.path.abspath(os.fspath(root))
            real = Path(os.path.realpath(given))
            if not real.is_dir():
                raise ValueError(f"allowed root {given!r} does not exist or is not a directory")
            info = real.stat()
            resolved.append(real)
            ids.append((info.st_dev, info.st_ino))
            # Callers may spell the root as configured or as resolved (e.g. /tmp vs /private/tmp).
            for spelling in {given, str(real)}:
                aliases.append((tuple(p for p in spelling.split("/") if p), index))
        self.roots: tuple[Path, ...] = tuple(resolved)
        self._ids = tuple(ids)
        # Longest root first, so nested roots pick the innermost match; then configuration order.
        self._aliases = sorted(aliases, key=lambda a: (-len(a[0]), a[1]))

    def locate(self, user_path: str) -> tuple[int, tuple[str, ...]]:
        """Return (root index, components below that root); no disk access."""
        if not isinstance(user_path, str):
            raise PathInvalid("the path must be a string")
        if not user_path:
            raise PathInvalid("the path is empty")
        if "\x00" in user_path:
            raise PathInvalid("the path contains a NUL byte")
        try:
            size = len(os.fsencode(user_path))
        except UnicodeEncodeError:
            raise PathInvalid("the path is not valid text for this filesystem") from None
        if size > MAX_PATH_BYTES:
            raise PathInvalid(f"the path is longer than {MAX_PATH_BYTES} bytes")
        parts = [p for p in user_path.split("/") if p not in ("", ".")]
        if any(len(os.fsencode(p)) > MAX_NAME_BYTES for p in parts):
            raise PathInvalid(f"a path component is longer than {MAX_NAME_BYTES} bytes")
        if not user_path.startswith("/"):
            comps = _normalize(parts)
            if comps is None:
                raise PathDenied(f"{quote(user_path)} climbs above the allowed directory")
            return 0, comps
        for prefix, index in self._aliases:
            if tuple(parts[: len(prefix)]) == prefix:
                comps = _normalize(parts[len(prefix) :])
                if comps is not None:
                    return index, comps
        raise PathDenied("the absolute path is outside the allowed directories")

    def _target(self, user_path: str) -> tuple[int, tuple[str, ...], str]:
        index, comps = self.locate(user_path)
        shown = quote(user_path) if not user_path.startswith("/") else quote("/".join(comps) or ".")
        return index, comps, shown

    def _open_root(self, index: int) -> int:
        gone = PathMissing("an allowed directory is no longer available")
        try:
            fd = os.open(self.roots[index], DIR_FLAGS)
        except OSError:
            raise gone from None
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != self._ids[index]:
            os.close(fd)
            raise gone
        return fd

    def _walk(self, index: int, comps: Sequence[str], shown: str, *, create: bool = False) -> int:
        """Descriptor of the directory `comps` below root `index`; the caller closes it."""
        root = self._open_root(index)
        try:
            return descend(root, comps, shown, create)
        finally:
            os.close(root)

    def read_bytes(self, user_path: str, *, max_bytes: int) -> bytes:
        """Whole content of a regular file, refused (FileTooLarge) when over `max_bytes`."""
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        index, comps, shown = self._target(user_path)
        if not comps:
            raise PathInvalid(f"{shown} is a directory, not a file")
        parent = self._walk(index, comps[:-1], shown)
        try:
            with open_regular(parent, comps[-1], shown) as (fd, info):
                return read_capped(fd, info, shown, max_bytes)
        finally:
            os.close(parent)

    def stat(self, user_path: str) -> os.stat_result:
        """lstat-style metadata of a file or directory; a link is refused rather than described."""
        index, comps, shown = self._target(user_path)
        parent = self._walk(index, comps[:-1], shown)
        try:
            return lstat_entry(parent, comps[-1], shown) if comps else os.fstat(parent)
        finally:
            os.close(parent)

    @contextmanager
    def open_dir(self, user_path: str) -> Iterator[int]:
        """A directory descriptor inside the jail (e.g. for `os.scandir(fd)`); closed on exit."""
        index, comps, shown = self._target(user_path)
        fd = self._walk(index, comps, shown)
        try:
            yield fd
        finally:
            os.close(fd)

    def walk_files(
        self,
        user_path: str,
        *,
        patterns: Sequence[str] = ("*",),
        max_files: int = 100_000,
        skip_hidden: bool = False,
        on_skipped: Callable[[str, str], None] | None = None,
    ) -> Iterator[str]:
        """Regular files below a directory, recursively, as '/'-joined paths relative to that directory.

        Join a result to `user_path` to read it. Sorted per directory, files before subdirectories. A
        pattern with a '/' is fnmatch'ed (case-sensitive) against the relative path, others against the
        name. Links, FIFOs, sockets and devices are skipped; so is a subdirectory that vanishes or cannot
        be opened. Match number `max_files + 1` raises PathInvalid. Every 16th level keeps its descriptor
        (deep trees cost at most 16 opens per directory); all are closed when the generator ends or is dropped.

        `skip_hidden` leaves out entries whose name starts with '.' (and never enters such directories).
        `on_skipped(relpath, kind)` hears of every entry left out, so a caller can say why: kind is
        'unmatched' (a file no pattern matches), 'hidden', 'link' or 'special' (FIFO, socket, device).
        It runs on the walking thread and may raise to stop the walk.
        """
        if max_files < 0:
            raise ValueError("max_files must be >= 0")
        if isinstance(patterns, str):
            patterns = (patterns,)
        index, comps, shown = self._target(user_path)
        # Opened on the first `next()` (this is a generator), and owned by the walk from then on.
        yield from walk_below(self._walk(index, comps, shown), shown, patterns=patterns, max_files=max_files,
                              skip_hidden=skip_hidden, on_skipped=on_skipped)

    def mkdirs(self, user_path: str) -> None:
        """mkdir -p, one component at a time below the root; existing directories are fine."""
        index, comps, shown = self._target(user_path)
        os.close(self._walk(index, comps, shown, create=True))

    def write_bytes(self, user_path: str, data: bytes, *, exclusive: bool = False) -> None:
        """Atomically create or replace a regular file; the parent directory must exist.

        The data goes to a temp file in the same directory, is fsynced, then renamed over the name
        (or, when `exclusive`, hard-linked to it, which fails if the name exists: PathExists). On any
        failure the temp file is removed and the old content, if any, stays intact.
        """
        index, comps, shown = self._target(user_path)
        if not comps:
            raise PathInvalid(f"{shown} is a directory, not a file")
        parent = self._walk(index, comps[:-1], shown)
        try:
            write_atomic(parent, comps[-1], shown, data, exclusive=exclusive)
        finally:
            os.close(parent)
