"""From content to an indexed document: parse, hash, chunk, embed, then one atomic write.

Re-ingesting unchanged content is detected by its hash before any embedding work; a changed document
replaces its chunks in one transaction (see `index.replace_document`). Parsing, hashing, chunking and
term counting run in a worker thread (a 5 MB file takes a while to parse), as does the model, so the
event loop keeps serving other calls during an ingest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from servers.search import index
from servers.search.analyzer import term_counts
from servers.search.chunking import chunk_text
from servers.search.embedder import Embedder
from servers.search.parsers import parse
from shared.db.pool import Database
from shared.errors import InvalidInput

Progress = Callable[[float, float, str], Awaitable[None]]


class NoText(InvalidInput):
    """The content has nothing to index once its markup is gone."""


@dataclass(frozen=True)
class IngestResult:
    document_id: str
    status: str  # created | replaced | unchanged
    chunks: int


@dataclass(frozen=True)
class Parsed:
    """A document before chunking: what the hash covers."""

    document_id: str
    title: str
    body: str
    source: str
    metadata: dict[str, Any]
    digest: str


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


def parse_document(content: str, *, fmt: str = "auto", name: str | None = None, document_id: str | None = None,
                   source: str | None = None, title: str | None = None,
                   metadata: dict[str, Any] | None = None) -> Parsed:
    """Blocking: parse and hash (run it in a thread)."""
    parsed_title, body = parse(clean(content), fmt, name=name)
    if not body.strip():
        raise NoText("the document has no text to index")
    source = source or name or ""
    title = clean(title) if title else parsed_title
    metadata = metadata or {}
    document_id = document_id or default_document_id(source or None, body)
    return Parsed(document_id, title, body, source, metadata, content_hash(title, body, metadata, source))


def prepare_chunks(body: str) -> list[index.PreparedChunk]:
    """Blocking: chunk and count terms (run it in a thread)."""
    return [index.PreparedChunk(t, term_counts(t)) for t in chunk_text(body)]


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
    root: str | None = None,
    supersedes: tuple[str, ...] = (),
    progress: Progress | None = None,
) -> IngestResult:
    parsed = await asyncio.to_thread(parse_document, content, fmt=fmt, name=name, document_id=document_id,
                                     source=source, title=title, metadata=metadata)
    async with db.acquire() as conn:
        if await index.stored_hash(conn, parsed.document_id) == parsed.digest:
            return IngestResult(parsed.document_id, "unchanged", 0)
    chunks = await asyncio.to_thread(prepare_chunks, parsed.body)
    step = max(1, embedder.batch_size)
    for start in range(0, len(chunks), step):
        batch = chunks[start:start + step]
        vectors = await embedder.encode([c.text for c in batch], timeout=300.0)
        for chunk, vector in zip(batch, vectors, strict=True):
            chunk.embedding = vector
        if progress is not None:
            await progress(min(start + step, len(chunks)), len(chunks), f"embedded {parsed.title[:60]}")
    doc = index.PreparedDocument(id=parsed.document_id, source=parsed.source, title=parsed.title, body=parsed.body,
                                 content_hash=parsed.digest, metadata=parsed.metadata, chunks=chunks, root=root,
                                 supersedes=supersedes)
    async with db.acquire() as conn:
        status = await index.replace_document(conn, doc)
    return IngestResult(parsed.document_id, status, len(chunks))
