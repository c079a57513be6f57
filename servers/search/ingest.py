"""From content to an indexed document: parse, hash, chunk, embed, then one atomic write.

Re-ingesting unchanged content is detected by its hash before any embedding work; a changed document
replaces its chunks in one transaction (see `index.replace_document`).
"""

from __future__ import annotations

import hashlib
import json
import stat
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from servers.search import index
from servers.search.analyzer import term_counts
from servers.search.chunking import chunk_text
from servers.search.embedder import Embedder
from servers.search.parsers import parse
from shared.errors import InvalidInput
from shared.paths import PathJail
from shared.pool import Database

Progress = Callable[[float, float, str], Awaitable[None]]

INGEST_PATTERNS = ("*.txt", "*.md", "*.markdown", "*.html", "*.htm", "*.rst")
MAX_FILE_BYTES = 5_000_000


def files_under(jail: PathJail, path: str, *, max_files: int = 100_000) -> list[str]:
    """The ingestible files at `path` (itself, or those below it), as paths the jail accepts back."""
    if not stat.S_ISDIR(jail.stat(path).st_mode):
        return [path]
    base = path.rstrip("/") or "/"
    names = jail.walk_files(path, patterns=INGEST_PATTERNS, max_files=max_files)
    return [f"{base}/{name}" for name in names if not name.endswith(".partial")]  # skip in-flight writes


def read_text(jail: PathJail, path: str) -> str:
    return jail.read_bytes(path, max_bytes=MAX_FILE_BYTES).decode("utf-8", "replace")


@dataclass(frozen=True)
class IngestResult:
    document_id: str
    status: str  # created | replaced | unchanged
    chunks: int


def content_hash(title: str, body: str, metadata: dict[str, Any], source: str) -> str:
    payload = json.dumps([title, body, metadata, source], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


def default_document_id(source: str | None, body: str) -> str:
    basis = source if source else body
    return "doc-" + hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def clean(text: str) -> str:
    """Text PostgreSQL can store: no NUL, valid UTF-8, NFC."""
    text = text.replace("\x00", "")
    return unicodedata.normalize("NFC", text.encode("utf-8", "replace").decode("utf-8"))


async def ingest_content(
    db: Database,
    embedder: Embedder,
    content: str,
    *,
    fmt: str = "auto",
    name: str | None = None,
    document_id: str | None = None,
    source: str | None = None,
    title: str | None = None,
    metadata: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    parsed_title, body = parse(clean(content), fmt, name=name)
    if not body.strip():
        raise InvalidInput("the document has no text to index")
    source = source or name or ""
    title = clean(title) if title else parsed_title
    metadata = metadata or {}
    document_id = document_id or default_document_id(source or None, body)
    digest = content_hash(title, body, metadata, source)
    async with db.acquire() as conn:
        if await index.stored_hash(conn, document_id) == digest:
            return IngestResult(document_id, "unchanged", 0)
    texts = chunk_text(body)
    chunks = [index.PreparedChunk(t, term_counts(t)) for t in texts]
    step = max(1, embedder.batch_size)
    for start in range(0, len(chunks), step):
        batch = chunks[start:start + step]
        vectors = await embedder.encode([c.text for c in batch], timeout=300.0)
        for chunk, vector in zip(batch, vectors, strict=True):
            chunk.embedding = vector
        if progress is not None:
            await progress(min(start + step, len(chunks)), len(chunks), f"embedded {title[:60]}")
    doc = index.PreparedDocument(id=document_id, source=source, title=title, body=body, content_hash=digest,
                                 metadata=metadata, chunks=chunks)
    async with db.acquire() as conn:
        status = await index.replace_document(conn, doc)
    return IngestResult(document_id, status, len(chunks))
