"""Ingest files and directories from inside the ingest roots, off the event loop and stoppable.

Why threads: walking a tree and reading files are blocking system calls (one walk stalled the event
loop for 0.9 s), so the walk runs in one worker thread and each file is read in another, and parsing
happens in a thread too (`ingest.parse_document`). Why a stop flag: a thread cannot be cancelled, so
when the tool's deadline cancels the ingest, the walk sees the flag at its next entry and ends;
between files the coroutine itself is cancelled. Each file is written in its own transaction, so a
stopped ingest leaves every file fully indexed or untouched.

What happens to each file is reported: indexed (created / replaced / unchanged), skipped with the
reason (a type that is not indexed, hidden, a link, not a regular file, binary, no text), or failed
with the reason (too large, unreadable, vanished). Names are identities (`<root>/<path>`), never
server paths.
"""

from __future__ import annotations

import asyncio
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

from servers.search.embedder import Embedder
from servers.search.ingest import NoText, Progress, ingest_content
from servers.search.parsers import SUFFIX_FORMATS
from servers.search.roots import FileRef, IngestRoots
from shared.db.pool import Database
from shared.errors import InvalidInput, ToolFailure

T = TypeVar("T")

INDEXED_SUFFIXES = (".htm", ".html", ".markdown", ".md", ".rst", ".txt")
INGEST_PATTERNS = tuple(f"*{s}" for s in INDEXED_SUFFIXES)
MAX_FILE_BYTES = 5_000_000
MAX_SEEN_ENTRIES = 200_000  # files passed over while walking; bounds a walk through a huge unrelated tree
MAX_LISTED = 100  # skipped / failed entries listed one by one; the rest are counted
_BINARY_PROBE = 8192

_KIND_REASONS = {
    "hidden": "hidden (names starting with '.' are not indexed)",
    "link": "a symbolic link (links are not followed)",
    "special": "not a regular file (device, pipe or socket)",
}
assert set(INDEXED_SUFFIXES) <= set(SUFFIX_FORMATS)


class _Stopped(Exception):
    """The awaiting coroutine was cancelled: the worker thread ends early."""


async def stoppable(fn: Callable[[threading.Event], T]) -> T:
    """Run blocking `fn(stop)` in a worker thread; if the caller is cancelled, `stop` is set so `fn` can end."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(fn, stop)
    finally:
        stop.set()


def type_reason(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    kind = f"{suffix} files" if suffix else "files without an extension"
    return f"{kind} are not indexed (indexed types: {', '.join(INDEXED_SUFFIXES)})"


@dataclass
class PathReport:
    """What one requested path came to, file by file; `error` is set when the path itself failed."""

    path: str
    documents: list[dict[str, Any]] = field(default_factory=list)  # document_id, status, chunks, source
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_count: int = 0
    failed_count: int = 0
    error: str | None = None

    def skip(self, source: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_LISTED:
            self.skipped.append(f"{source}: {reason}")

    def fail(self, source: str, reason: str) -> None:
        self.failed_count += 1
        if len(self.failed) < MAX_LISTED:
            self.failed.append(f"{source}: {reason}")

    def count(self, status: str) -> int:
        return sum(1 for d in self.documents if d["status"] == status)


@dataclass
class Discovery:
    files: list[FileRef]
    skipped: list[tuple[str, str]]  # (source, reason)


def discover(roots: IngestRoots, user_path: str, *, max_files: int, any_type: bool,
             stop: threading.Event | None = None) -> Discovery:
    """Blocking: the files to ingest at `user_path` and what was passed over, with reasons.

    A named file is taken whatever its name when `any_type` (an explicit format was asked for);
    directories are walked for the indexed types only, hidden entries left out.
    """
    target = roots.locate(user_path)
    if not stat.S_ISDIR(roots.jail.stat(target.jail_path).st_mode):
        if any_type or target.rel.lower().endswith(INDEXED_SUFFIXES):
            return Discovery([target], [])
        return Discovery([], [(target.source, type_reason(target.rel) + "; pass a format to index it anyway")])
    found = Discovery([], [])
    seen = 0

    def check() -> None:
        nonlocal seen
        seen += 1
        if stop is not None and stop.is_set():
            raise _Stopped
        if seen > MAX_SEEN_ENTRIES:
            raise InvalidInput(f"the directory holds more than {MAX_SEEN_ENTRIES} entries; ingest a smaller part")

    def passed_over(rel: str, kind: str) -> None:
        check()
        source = roots.below(target, rel).source
        found.skipped.append((source, type_reason(rel) if kind == "unmatched" else _KIND_REASONS[kind]))

    for rel in roots.jail.walk_files(target.jail_path, patterns=INGEST_PATTERNS, max_files=max_files,
                                     skip_hidden=True, on_skipped=passed_over):
        check()
        found.files.append(roots.below(target, rel))
    return found


def read_file(roots: IngestRoots, ref: FileRef) -> str:
    """Blocking: a file's text. Binary content (a NUL byte early on) is refused as not text."""
    data = roots.jail.read_bytes(ref.jail_path, max_bytes=MAX_FILE_BYTES)
    if b"\x00" in data[:_BINARY_PROBE]:
        raise NoText("binary content, not text")
    return data.decode("utf-8", "replace")


async def ingest_path(db: Database, embedder: Embedder, roots: IngestRoots, user_path: str, *,
                      fmt: str = "auto", metadata: dict[str, Any] | None = None, max_files: int = 100_000,
                      progress: Progress | None = None) -> PathReport:
    """Ingest a file or a directory tree; raises for the path itself (missing, outside, denied)."""
    found = await stoppable(lambda stop: discover(roots, user_path, max_files=max_files, any_type=fmt != "auto",
                                                  stop=stop))
    report = PathReport(path=roots.locate(user_path).source)
    for source, reason in found.skipped:
        report.skip(source, reason)
    total = len(found.files)
    for number, ref in enumerate(found.files, start=1):
        try:
            text = await asyncio.to_thread(read_file, roots, ref)
            result = await ingest_content(db, embedder, text, fmt=fmt, name=ref.rel, source=ref.source,
                                          metadata=metadata, root=ref.root, supersedes=ref.host_paths)
            report.documents.append({"document_id": result.document_id, "status": result.status,
                                     "chunks": result.chunks, "source": ref.source})
        except NoText as exc:
            report.skip(ref.source, exc.message)
        except InvalidInput as exc:  # too large, changed into a directory, ...
            report.fail(ref.source, exc.message)
        except ToolFailure as exc:
            if exc.error_class not in ("permission_denied", "not_found"):
                raise  # the model or the database: the whole ingest fails (and may be retried)
            report.fail(ref.source, exc.message)
        if progress is not None:
            await progress(number, total, f"ingested {number} of {total} files")
    return report
