"""A bounded recursive walk below an open directory, holding few descriptors and following no link.

Each subdirectory is entered with `steps.descend` from the nearest ancestor whose descriptor is
kept: every `CHECKPOINT`-th level keeps its own, so a deep tree costs at most `CHECKPOINT` opens per
directory and never more than depth / `CHECKPOINT` descriptors at once.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from shared.errors import ToolFailure
from shared.fs.errors import PathInvalid
from shared.fs.steps import descend

CHECKPOINT = 16


@dataclass
class _Frame:
    """A directory on the current walk path; only every CHECKPOINT-th level keeps its fd."""

    rel: tuple[str, ...]
    fd: int | None
    subdirs: Iterator[str] = field(default_factory=lambda: iter(()))


def list_entries(fd: int) -> list[tuple[str, str]]:
    """Sorted (name, kind) of a directory's entries; kind is 'file', 'dir', 'link' or 'special'."""
    def kind(entry: os.DirEntry[str]) -> str:
        if entry.is_symlink():
            return "link"
        if entry.is_file(follow_symlinks=False):
            return "file"
        return "dir" if entry.is_dir(follow_symlinks=False) else "special"

    with os.scandir(fd) as entries:
        return sorted((e.name, kind(e)) for e in entries)


def walk_below(
    fd: int,
    shown: str,
    *,
    patterns: Sequence[str],
    max_files: int,
    skip_hidden: bool,
    on_skipped: Callable[[str, str], None] | None,
) -> Iterator[str]:
    """Regular files below the directory `fd` (which the walk owns and closes), as relative paths.

    See `PathJail.walk_files` for the contract: the order, the patterns, `max_files`, `skip_hidden`
    and `on_skipped`.
    """
    frames: list[_Frame] = []
    found = 0
    try:
        rel: tuple[str, ...] = ()
        current: int | None = fd
        while True:
            if current is not None:
                frame = _Frame(rel, current)
                frames.append(frame)
                listed = list_entries(current)
                if skip_hidden:
                    hidden = [name for name, _ in listed if name.startswith(".")]
                    listed = [(name, kind) for name, kind in listed if not name.startswith(".")]
                    for name in hidden if on_skipped else ():
                        on_skipped("/".join((*rel, name)), "hidden")  # type: ignore[misc]
                frame.subdirs = iter([name for name, kind in listed if kind == "dir"])
                if len(rel) % CHECKPOINT:
                    frame.fd = None
                    os.close(current)
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
            current = None
            while frames and (name := next(frames[-1].subdirs, None)) is None:
                done = frames.pop()
                if done.fd is not None:
                    os.close(done.fd)
            if not frames:
                return
            rel = (*frames[-1].rel, name)
            base = next(f for f in reversed(frames) if f.fd is not None)
            with suppress(ToolFailure):  # vanished, became a link, or unreadable: skip it
                current = descend(base.fd, rel[len(base.rel) :], shown)  # type: ignore[arg-type]
    finally:
        for frame in frames:
            if frame.fd is not None:
                os.close(frame.fd)
