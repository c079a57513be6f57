"""`mcp-suite eval search DIR`: retrieval quality on a BEIR-layout dataset, for each leg and fused.

Reads `corpus.jsonl`, `queries.jsonl` and `qrels/*.tsv` (the test split if present, else the first
file), indexes the corpus in a scratch database with the server's own chunking, analyzer and model,
and scores document rankings (a document ranks by its best chunk) with nDCG@10 and recall@100.
Embeddings are cached per dataset under `$MCP_SUITE_HOME/cache`, since encoding thousands of passages
takes minutes on a CPU.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from servers.search import index
from servers.search import query as q
from servers.search.analyzer import term_counts
from servers.search.chunking import chunk_text
from servers.search.embedder import Embedder
from servers.search.lab.scratch import scratch_database
from shared.config import Settings

MODES = ("keyword", "semantic", "hybrid")


def load_dataset(folder: Path) -> tuple[dict[str, tuple[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    corpus = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            corpus[str(row["_id"])] = (row.get("title") or "", row.get("text") or "")
    queries = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            queries[str(row["_id"])] = row["text"]
    qrels_files = sorted((folder / "qrels").glob("*.tsv"))
    chosen = next((f for f in qrels_files if f.stem == "test"), qrels_files[0])
    qrels: dict[str, dict[str, int]] = {}
    with open(chosen, encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    return corpus, {k: v for k, v in queries.items() if k in qrels}, qrels


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_100(ranked: list[str], relevant: dict[str, int]) -> float:
    return len(set(ranked[:100]) & set(relevant)) / len(relevant) if relevant else 0.0


def _cached_embeddings(key: str, texts: list[str], embedder: Embedder) -> np.ndarray:
    cache = Settings.from_env().home / "cache" / "eval"
    cache.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(("\x1f".join(texts) + key).encode("utf-8", "surrogatepass")).hexdigest()[:20]
    path = cache / f"{key}-{digest}.npy"
    if path.exists():
        return np.load(path)
    print(f"embedding {len(texts)} passages (cached afterwards in {path.parent})", file=sys.stderr)
    vectors = embedder.encode_sync(texts).astype(np.float32)
    np.save(path, vectors)
    return vectors


async def _index(conn: asyncpg.Connection, corpus: dict[str, tuple[str, str]], vectors: np.ndarray,
                 chunks: list[tuple[str, str]]) -> None:
    by_doc: dict[str, list[index.PreparedChunk]] = {}
    for (doc_id, text), vector in zip(chunks, vectors, strict=True):
        by_doc.setdefault(doc_id, []).append(index.PreparedChunk(text, term_counts(text), vector))
    for doc_id, doc_chunks in by_doc.items():
        title, body = corpus[doc_id]
        await index.replace_document(conn, index.PreparedDocument(
            id=doc_id, source=doc_id, title=title, body=body, content_hash=doc_id, chunks=doc_chunks))


async def run_eval(folder: Path, *, depth: int = 200, limit_queries: int | None = None,
                   k1: float = q.DEFAULT_K1, b: float = q.DEFAULT_B) -> dict[str, Any]:
    corpus, queries, qrels = load_dataset(folder)
    query_ids = sorted(queries)[:limit_queries] if limit_queries else sorted(queries)
    embedder = Embedder(batch_size=64)
    chunks = [(doc_id, piece) for doc_id, (title, text) in corpus.items()
              for piece in chunk_text(f"{title}\n\n{text}".strip())]
    chunk_vectors = await asyncio.to_thread(_cached_embeddings, folder.name + "-chunks",
                                            [c[1] for c in chunks], embedder)
    query_vectors = await asyncio.to_thread(_cached_embeddings, folder.name + "-queries",
                                            [queries[i] for i in query_ids], embedder)
    scores: dict[str, dict[str, list[float]]] = {m: {"ndcg@10": [], "recall@100": []} for m in MODES}
    async with scratch_database("eval_search") as url:
        conn = await asyncpg.connect(url, command_timeout=600)
        from pgvector.asyncpg import register_vector

        await register_vector(conn)
        try:
            await _index(conn, corpus, chunk_vectors, chunks)
            await conn.execute("ANALYZE")
            for name, value in q.SESSION_SETTINGS.items():
                await conn.execute("SELECT set_config($1, $2, false)", name, value)
            for qid, vector in zip(query_ids, query_vectors, strict=True):
                for mode in MODES:
                    plan = q.QueryPlan(text=queries[qid], mode=mode, limit=depth, depth=depth, embedding=vector,
                                       k1=k1, b=b)
                    ranked: list[str] = []
                    for row in await q.run(conn, plan):
                        if row["document_id"] not in ranked:
                            ranked.append(row["document_id"])
                    scores[mode]["ndcg@10"].append(ndcg_at_10(ranked, qrels[qid]))
                    scores[mode]["recall@100"].append(recall_at_100(ranked, qrels[qid]))
        finally:
            await conn.close()
    result: dict[str, Any] = {m: {k: round(float(np.mean(v)), 4) for k, v in scores[m].items()} for m in MODES}
    result["dataset"] = folder.name
    result["queries"] = len(query_ids)
    result["documents"] = len(corpus)
    result["chunks"] = len(chunks)
    return result


def main(folder: str, *, as_json: bool = False, limit_queries: int | None = None,
         k1: float = q.DEFAULT_K1, b: float = q.DEFAULT_B) -> int:
    path = Path(folder)
    if not (path / "corpus.jsonl").exists():
        print(f"not a BEIR-layout folder (no corpus.jsonl): {folder}", file=sys.stderr)
        return 2
    figures = asyncio.run(run_eval(path, limit_queries=limit_queries, k1=k1, b=b))
    if not as_json:
        for mode in MODES:
            print(f"{mode:8s} nDCG@10 {figures[mode]['ndcg@10']:.4f}  recall@100 {figures[mode]['recall@100']:.4f}")
    print(json.dumps({m: figures[m] for m in MODES} | {k: figures[k] for k in ("dataset", "queries", "documents")}))
    return 0
