"""`mcp-suite bench search`: index and query speed on a synthetic corpus, against rank-bm25 in memory.

The corpus has a Zipf-distributed vocabulary and ~120-term chunks with random unit vectors (embedding
a million real chunks on two cores would take hours). It is bulk-loaded with COPY, then the postings
key and the HNSW index are built, then hybrid queries — the same single SQL statement the server
runs — are timed over a mix of rare and common terms. rank-bm25 is built and queried on the same
tokens in the same process, so the speed-up is a like-for-like ratio.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import asyncpg
import numpy as np

from servers.search import query as q
from servers.search.lab.scratch import scratch_database

CHUNK_TERMS = (60, 180)  # chunk lengths vary around ~120 terms, as real chunks do
ZIPF_EXPONENT = 1.07


def synthetic_corpus(chunks: int, vocabulary: int, seed: int) -> list[np.ndarray]:
    """Term ranks (0 = most common) for each chunk, 60-180 terms each."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocabulary + 1) ** ZIPF_EXPONENT
    lengths = rng.integers(CHUNK_TERMS[0], CHUNK_TERMS[1] + 1, size=chunks)
    flat = rng.choice(vocabulary, size=int(lengths.sum()), p=weights / weights.sum()).astype(np.int32)
    return np.split(flat, np.cumsum(lengths)[:-1])


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def sample_queries(count: int, vocabulary: int, seed: int) -> list[list[int]]:
    """2-4 terms each; about a third include one of the 100 most common terms (the expensive case)."""
    rng = np.random.default_rng(seed + 1)
    weights = 1.0 / np.arange(1, vocabulary + 1) ** ZIPF_EXPONENT
    queries = []
    for _ in range(count):
        terms = list(rng.choice(vocabulary, size=rng.integers(2, 5), p=weights / weights.sum()))
        if rng.random() < 0.33:
            terms[0] = int(rng.integers(0, 100))
        queries.append([int(t) for t in terms])
    return queries


def word(rank: int) -> str:
    return f"w{rank}"


async def _load(conn: asyncpg.Connection, corpus: list[np.ndarray], vectors: np.ndarray) -> float:
    started = time.perf_counter()
    n = len(corpus)
    await conn.execute("DROP INDEX search_chunks_embedding")
    await conn.execute("DROP INDEX search_postings_impact")
    await conn.execute("ALTER TABLE search_postings DROP CONSTRAINT search_postings_pkey")
    await conn.copy_records_to_table(
        "search_documents", columns=["id", "source", "title", "metadata", "content_hash", "body", "chunk_count"],
        records=((f"b{i}", f"bench://{i}", f"chunk {i}", "{}", str(i), "", 1) for i in range(n)))
    df = np.zeros(max(int(row.max()) for row in corpus) + 1, dtype=np.int64)
    total_length = 0
    chunk_rows, posting_rows = [], []
    for i, row in enumerate(corpus):
        terms, counts = np.unique(row, return_counts=True)
        df[terms] += 1
        ids = (terms + 1).tolist()
        length = len(row)
        total_length += length
        chunk_rows.append((i + 1, f"b{i}", 0, " ".join(map(word, row.tolist())), length, ids, vectors[i]))
        posting_rows.extend(zip(ids, [i + 1] * len(ids), counts.tolist(), [length] * len(ids), strict=True))
    await conn.copy_records_to_table(
        "search_chunks", columns=["id", "document_id", "ordinal", "text", "length", "term_ids", "embedding"],
        records=chunk_rows)
    await conn.copy_records_to_table(
        "search_terms", columns=["id", "term", "df"],
        records=((r + 1, word(r), int(df[r])) for r in range(len(df)) if df[r]))
    await conn.copy_records_to_table("search_postings", columns=["term_id", "chunk_id", "tf", "length"],
                                     records=posting_rows)
    await conn.execute("UPDATE search_stats SET chunks = $1, total_length = $2", n, total_length)
    return time.perf_counter() - started


async def _build(conn: asyncpg.Connection) -> float:
    started = time.perf_counter()
    await conn.execute("SET maintenance_work_mem = '1GB'")
    await conn.execute("ALTER TABLE search_postings ADD PRIMARY KEY (term_id, chunk_id)")
    await conn.execute("CREATE INDEX search_postings_impact ON search_postings (term_id, tf, length, chunk_id)")
    await conn.execute("CREATE INDEX search_chunks_embedding ON search_chunks USING hnsw (embedding vector_cosine_ops)")
    await conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


async def _time_queries(conn: asyncpg.Connection, queries: list[list[int]], vectors: np.ndarray) -> list[float]:
    for name, value in q.SESSION_SETTINGS.items():
        await conn.execute("SELECT set_config($1, $2, false)", name, value)
    timings = []
    for terms, vector in zip(queries, vectors, strict=True):
        plan = q.QueryPlan(text=" ".join(map(word, terms)), mode="hybrid", limit=10, depth=100, embedding=vector)
        started = time.perf_counter()
        await q.run(conn, plan)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _rank_bm25(corpus: np.ndarray, queries: list[list[int]], max_queries: int) -> tuple[float, float]:
    from rank_bm25 import BM25Okapi

    docs = [[word(t) for t in row.tolist()] for row in corpus]
    started = time.perf_counter()
    model = BM25Okapi(docs)
    build = time.perf_counter() - started
    timings = []
    for terms in queries[:max_queries]:
        started = time.perf_counter()
        scores = model.get_scores([word(t) for t in terms])
        np.argpartition(scores, -10)[-10:]
        timings.append((time.perf_counter() - started) * 1000)
    return build, statistics.median(timings)


async def run_bench(chunks: int, *, queries: int = 200, vocabulary: int | None = None, seed: int = 42,
                    rank_bm25_queries: int = 20) -> dict[str, Any]:
    # Heaps' law: distinct terms grow about as the 0.55th power of the running text.
    vocabulary = vocabulary or int(min(1_000_000, max(5_000, 20 * (chunks * 120) ** 0.55)))
    corpus = synthetic_corpus(chunks, vocabulary, seed)
    vectors = unit_vectors(chunks, seed)
    query_terms = sample_queries(queries, vocabulary, seed)
    query_vectors = unit_vectors(queries, seed + 7)
    async with scratch_database("bench_search") as url:
        conn = await asyncpg.connect(url, command_timeout=3600)
        from pgvector.asyncpg import register_vector

        await register_vector(conn)
        try:
            ingest_s = await _load(conn, corpus, vectors)
            build_s = await _build(conn)
            await _time_queries(conn, query_terms[:20], query_vectors[:20])  # warm the cache
            timings = await _time_queries(conn, query_terms, query_vectors)
            postings = await conn.fetchval("SELECT count(*) FROM search_postings")
            loaded = await conn.fetchval("SELECT count(*) FROM search_chunks")
        finally:
            await conn.close()
    bm25_build, bm25_query = await asyncio.to_thread(_rank_bm25, corpus, query_terms, rank_bm25_queries)
    p50 = statistics.median(timings)
    return {
        "chunks": loaded,  # counted in the database, not taken from the argument
        "vocabulary": vocabulary,
        "postings": postings,
        "queries": queries,
        "ingest_chunks_per_s": round(loaded / ingest_s, 1),
        "build_s": round(build_s, 2),
        "hybrid_p50_ms": round(p50, 2),
        "hybrid_p95_ms": round(float(np.percentile(timings, 95)), 2),
        "hybrid_max_ms": round(max(timings), 2),
        "rank_bm25_build_s": round(bm25_build, 2),
        "rank_bm25_query_ms": round(bm25_query, 2),
        "speedup_vs_rank_bm25": round(bm25_query / p50, 1),
    }


def main(chunks: int, *, queries: int = 200, as_json: bool = False) -> int:
    figures = asyncio.run(run_bench(chunks, queries=queries))
    if not as_json:
        for key, value in figures.items():
            print(f"{key:24s} {value}")
    print(json.dumps(figures))
    return 0
