"""The write side of the index: replace or delete a document atomically, postings and stats included.

Everything a document contributes — its row, chunks, embeddings, postings, document frequencies and
the corpus totals — changes in one transaction, so a reader sees the old version or the new one and
a process killed mid-ingest leaves nothing behind. BM25 statistics therefore stay exact.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg


@dataclass
class PreparedChunk:
    text: str
    counts: Counter[str]
    embedding: Any = None  # numpy array (384,) or None when the model is unavailable

    @property
    def length(self) -> int:
        return sum(self.counts.values())


@dataclass
class PreparedDocument:
    id: str
    source: str
    title: str
    body: str
    content_hash: str
    metadata: dict[str, Any] = field(default_factory=dict)
    chunks: list[PreparedChunk] = field(default_factory=list)
    root: str | None = None  # the ingest root's name for a file; None for content given by a caller
    supersedes: tuple[str, ...] = ()  # host paths of rows stored before sources were root-relative


async def stored_hash(conn: asyncpg.Connection, document_id: str) -> str | None:
    return await conn.fetchval("SELECT content_hash FROM search_documents WHERE id = $1", document_id)


async def _remove(conn: asyncpg.Connection, document_id: str) -> bool:
    """Undo a document's contribution (call inside a transaction holding its row lock)."""
    chunks = await conn.fetch("SELECT id, length, term_ids FROM search_chunks WHERE document_id = $1",
                              document_id)
    exists = await conn.fetchval("DELETE FROM search_documents WHERE id = $1 RETURNING true", document_id)
    if not chunks:
        return bool(exists)
    term_ids: list[int] = []
    chunk_ids: list[int] = []
    for chunk in chunks:
        term_ids += chunk["term_ids"]
        chunk_ids += [chunk["id"]] * len(chunk["term_ids"])
    await conn.execute(
        """DELETE FROM search_postings p USING unnest($1::int[], $2::bigint[]) AS d(term_id, chunk_id)
           WHERE p.term_id = d.term_id AND p.chunk_id = d.chunk_id""",
        term_ids, chunk_ids,
    )
    drops = Counter(term_ids)
    await conn.execute(
        """UPDATE search_terms t SET df = t.df - d.n
           FROM unnest($1::int[], $2::int[]) AS d(id, n) WHERE t.id = d.id""",
        list(drops), list(drops.values()),
    )
    await conn.execute(
        "UPDATE search_stats SET chunks = chunks - $1, total_length = total_length - $2 WHERE id",
        len(chunks), sum(c["length"] for c in chunks),
    )
    return True


async def delete_document(conn: asyncpg.Connection, document_id: str) -> bool:
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM search_documents WHERE id = $1 FOR UPDATE", document_id)
        return await _remove(conn, document_id)


async def replace_document(conn: asyncpg.Connection, doc: PreparedDocument) -> str:
    """Write a document in place of any previous version; returns 'created' or 'replaced'."""
    async with conn.transaction():
        # Serialise writers of one document id, including a first insert (advisory lock on the id).
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", doc.id)
        replaced = await _remove(conn, doc.id)
        if doc.supersedes:
            replaced = await _remove_legacy(conn, doc) or replaced
        await conn.execute(
            """INSERT INTO search_documents (id, source, title, metadata, content_hash, body, chunk_count, root)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8)""",
            doc.id, doc.source, doc.title, json.dumps(doc.metadata), doc.content_hash, doc.body, len(doc.chunks),
            doc.root,
        )
        if doc.chunks:
            await _add_chunks(conn, doc)
    return "replaced" if replaced else "created"


async def _remove_legacy(conn: asyncpg.Connection, doc: PreparedDocument) -> bool:
    """Remove rows of this file stored under its host path (before migration 0008); see that file."""
    ids = await conn.fetch("SELECT id FROM search_documents WHERE legacy_path = ANY($1::text[]) AND id <> $2"
                           " ORDER BY id FOR UPDATE", list(doc.supersedes), doc.id)
    for row in ids:
        await _remove(conn, row["id"])
    return bool(ids)


async def _add_chunks(conn: asyncpg.Connection, doc: PreparedDocument) -> None:
    df = Counter(term for chunk in doc.chunks for term in chunk.counts)
    terms = sorted(df)  # a fixed order keeps concurrent ingests from deadlocking on term rows
    rows = await conn.fetch(
        """INSERT INTO search_terms (term, df) SELECT * FROM unnest($1::text[], $2::int[])
           ON CONFLICT (term) DO UPDATE SET df = search_terms.df + EXCLUDED.df RETURNING id, term""",
        terms, [df[t] for t in terms],
    )
    term_id = {r["term"]: r["id"] for r in rows}
    chunk_ids = [r[0] for r in await conn.fetch(
        "SELECT nextval(pg_get_serial_sequence('search_chunks', 'id')) FROM generate_series(1, $1)",
        len(doc.chunks))]
    await conn.executemany(
        """INSERT INTO search_chunks (id, document_id, ordinal, text, length, term_ids, embedding)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        [(cid, doc.id, i, c.text, c.length, [term_id[t] for t in c.counts], c.embedding)
         for i, (cid, c) in enumerate(zip(chunk_ids, doc.chunks, strict=True))],
    )
    p_terms, p_chunks, p_tf, p_len = [], [], [], []
    for cid, chunk in zip(chunk_ids, doc.chunks, strict=True):
        for term, tf in chunk.counts.items():
            p_terms.append(term_id[term])
            p_chunks.append(cid)
            p_tf.append(tf)
            p_len.append(chunk.length)
    await conn.execute(
        "INSERT INTO search_postings (term_id, chunk_id, tf, length) "
        "SELECT * FROM unnest($1::int[], $2::bigint[], $3::int[], $4::int[])",
        p_terms, p_chunks, p_tf, p_len,
    )
    await conn.execute(
        "UPDATE search_stats SET chunks = chunks + $1, total_length = total_length + $2 WHERE id",
        len(doc.chunks), sum(c.length for c in doc.chunks),
    )


async def consistency_problems(conn: asyncpg.Connection) -> list[str]:
    """Invariants of the index (empty list = consistent); used by tests and for operators."""
    problems = []
    checks = {
        "documents whose chunk_count differs from their chunks":
            """SELECT count(*) FROM search_documents d WHERE d.chunk_count <>
               (SELECT count(*) FROM search_chunks c WHERE c.document_id = d.id)""",
        "corpus statistics that differ from the chunks":
            """SELECT count(*) FROM search_stats s WHERE s.chunks <> (SELECT count(*) FROM search_chunks)
               OR s.total_length <> (SELECT coalesce(sum(length), 0) FROM search_chunks)""",
        "postings that differ from the chunks' term lists":
            """SELECT abs((SELECT count(*) FROM search_postings)
                          - (SELECT coalesce(sum(cardinality(term_ids)), 0) FROM search_chunks))""",
        "terms whose document frequency differs from their postings":
            """SELECT count(*) FROM search_terms t WHERE t.df <>
               (SELECT count(*) FROM search_postings p WHERE p.term_id = t.id)""",
    }
    for label, sql in checks.items():
        if await conn.fetchval(sql):
            problems.append(label)
    return problems
