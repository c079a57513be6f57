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
by the kernel at the moment of use.

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

import errno
import fnmatch
import os
import secrets
import stat as st
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import Conflict, InvalidInput, NotFound, PermissionDenied, ToolFailure

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
_SHOWN_CHARS = 160
_CHUNK = 1 << 20
_CHECKPOINT = 16

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_HARDLINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}


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


def _quote(text: str) -> str:
    """Quote caller text for a message: control characters escaped, long text cut."""
    cut = text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut) + "'"


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


def _link_denied(shown: str) -> PathDenied:
    return PathDenied(f"{shown} goes through a symbolic link; links are not followed")


def _failure(exc: OSError, dir_fd: int, name: str, shown: str) -> Exception:
    """Turn an OSError on `name` (inside `dir_fd`) into a client-safe failure, or keep it (internal)."""
    code = exc.errno
    if code in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO, errno.EEXIST):
        with suppress(OSError):
            if st.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                return _link_denied(shown)
    if code == errno.ENOENT:
        return PathMissing(f"{shown} does not exist")
    if code == errno.ENOTDIR:
        return PathInvalid(f"{shown}: {_quote(name)} is not a directory")
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


def _require_regular(mode: int, shown: str) -> None:
    if st.S_ISREG(mode):
        return
    if st.S_ISLNK(mode):
        raise _link_denied(shown)
    if st.S_ISDIR(mode):
        raise PathInvalid(f"{shown} is a directory, not a file")
    raise PathDenied(f"{shown} is not a regular file; devices, pipes and sockets are refused")


def _open_subdir(fd: int, name: str, shown: str, create: bool) -> int:
    """Open directory `name` below `fd` without following links; mkdir it first when `create`."""
    for _ in range(3):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError as exc:
            if not create:
                raise _failure(exc, fd, name, shown) from None
        except OSError as exc:
            raise _failure(exc, fd, name, shown) from None
        try:
            os.mkdir(name, 0o777, dir_fd=fd)
        except FileExistsError:
            pass  # made by someone else meanwhile; the next open checks what it is
        except OSError as exc:
            raise _failure(exc, fd, name, shown) from None
    raise PathMissing(f"{shown} kept vanishing while it was being created")


def _descend(start: int, names: Sequence[str], shown: str, create: bool = False) -> int:
    """A new descriptor for `start/names...`, one no-follow step at a time; `start` stays open."""
    fd = start
    try:
        for name in names:
            child = _open_subdir(fd, name, shown, create)
            if fd != start:
                os.close(fd)
            fd = child
    except BaseException:
        if fd != start:
            os.close(fd)
        raise
    return os.dup(fd) if fd == start else fd


@dataclass
class _Frame:
    """A directory on the current walk_files path; only every _CHECKPOINT-th level keeps its fd."""

    rel: tuple[str, ...]
    fd: int | None
    subdirs: Iterator[str] = field(default_factory=lambda: iter(()))


def _list(fd: int) -> list[tuple[str, str]]:
    """Sorted (name, kind) of a directory's entries; kind is 'file', 'dir', 'link' or 'special'."""
    def kind(entry: os.DirEntry[str]) -> str:
        if entry.is_symlink():
            return "link"
        if entry.is_file(follow_symlinks=False):
            return "file"
        return "dir" if entry.is_dir(follow_symlinks=False) else "special"

    with os.scandir(fd) as entries:
        return sorted((e.name, kind(e)) for e in entries)


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
                raise PathDenied(f"{_quote(user_path)} climbs above the allowed directory")
            return 0, comps
        for prefix, index in self._aliases:
            if tuple(parts[: len(prefix)]) == prefix:
                comps = _normalize(parts[len(prefix) :])
                if comps is not None:
                    return index, comps
        raise PathDenied("the absolute path is outside the allowed directories")

    def _target(self, user_path: str) -> tuple[int, tuple[str, ...], str]:
        index, comps = self.locate(user_path)
        shown = _quote(user_path) if not user_path.startswith("/") else _quote("/".join(comps) or ".")
        return index, comps, shown

    def _open_root(self, index: int) -> int:
        gone = PathMissing("an allowed directory is no longer available")
        try:
            fd = os.open(self.roots[index], _DIR_FLAGS)
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
            return _descend(root, comps, shown, create)
        finally:
            os.close(root)

    @contextmanager
    def _open_file(self, user_path: str) -> Iterator[tuple[int, os.stat_result, str]]:
        index, comps, shown = self._target(user_path)
        if not comps:
            raise PathInvalid(f"{shown} is a directory, not a file")
        name = comps[-1]
        parent = self._walk(index, comps[:-1], shown)
        try:
            try:
                _require_regular(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode, shown)
                fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
            except OSError as exc:
                raise _failure(exc, parent, name, shown) from None
        finally:
            os.close(parent)
        try:
            info = os.fstat(fd)
            _require_regular(info.st_mode, shown)  # decides: this is what was actually opened
            yield fd, info, shown
        finally:
            os.close(fd)

    def read_bytes(self, user_path: str, *, max_bytes: int) -> bytes:
        """Whole content of a regular file, refused (FileTooLarge) when over `max_bytes`."""
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        with self._open_file(user_path) as (fd, info, shown):
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

    def stat(self, user_path: str) -> os.stat_result:
        """lstat-style metadata of a file or directory; a link is refused rather than described."""
        index, comps, shown = self._target(user_path)
        parent = self._walk(index, comps[:-1], shown)
        try:
            if not comps:
                return os.fstat(parent)
            try:
                info = os.stat(comps[-1], dir_fd=parent, follow_symlinks=False)
            except OSError as exc:
                raise _failure(exc, parent, comps[-1], shown) from None
        finally:
            os.close(parent)
        if st.S_ISLNK(info.st_mode):
            raise _link_denied(shown)
        return info

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
        frames: list[_Frame] = []
        found = 0
        try:
            rel: tuple[str, ...] = ()
            fd: int | None = self._walk(index, comps, shown)
            while True:
                if fd is not None:
                    frame = _Frame(rel, fd)
                    frames.append(frame)
                    listed = _list(fd)
                    if skip_hidden:
                        hidden = [name for name, _ in listed if name.startswith(".")]
                        listed = [(name, kind) for name, kind in listed if not name.startswith(".")]
                        for name in hidden if on_skipped else ():
                            on_skipped("/".join((*rel, name)), "hidden")  # type: ignore[misc]
                    frame.subdirs = iter([name for name, kind in listed if kind == "dir"])
                    if len(rel) % _CHECKPOINT:
                        frame.fd = None
                        os.close(fd)
                    for name, kind in listed:
                        relpath = "/".join((*rel, name))
                        if kind == "file" and any(
                            fnmatch.fnmatchcase(relpath if "/" in p else name, p) for p in patterns
                        ):
                            found += 1
                            if found > max_files:
                                raise PathInvalid(f"{shown} holds more than {max_files} matching files")
                            yield relpath
                        elif kind != "dir" and on_skipped is not None:
                            on_skipped(relpath, "unmatched" if kind == "file" else kind)
                fd = None
                while frames and (name := next(frames[-1].subdirs, None)) is None:
                    done = frames.pop()
                    if done.fd is not None:
                        os.close(done.fd)
                if not frames:
                    return
                rel = (*frames[-1].rel, name)
                base = next(f for f in reversed(frames) if f.fd is not None)
                with suppress(ToolFailure):  # vanished, became a link, or unreadable: skip it
                    fd = _descend(base.fd, rel[len(base.rel) :], shown)  # type: ignore[arg-type]
        finally:
            for frame in frames:
                if frame.fd is not None:
                    os.close(frame.fd)

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
        name = comps[-1]
        parent = self._walk(index, comps[:-1], shown)
        temp: str | None = None
        try:
            old = None
            with suppress(FileNotFoundError):
                old = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if old is not None:
                if exclusive:
                    raise PathExists(f"{shown} already exists")
                _require_regular(old.st_mode, shown)
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
                self._link_exclusive(parent, temp, name)
            else:
                os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
                temp = None
            with suppress(OSError):
                os.fsync(parent)  # make the new directory entry durable
        except OSError as exc:
            raise _failure(exc, parent, name, shown) from None
        finally:
            if temp is not None:
                with suppress(OSError):
                    os.unlink(temp, dir_fd=parent)
            os.close(parent)

    @staticmethod
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
