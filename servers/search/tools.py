"""The search server's tools: hybrid search, the ChatGPT `search`/`fetch` pair, ingest, documents.

Ingest from paths reads only inside the roots configured with `MCP_SUITE_SEARCH_ROOTS` (or
`mcp-suite ingest --root`), through the core's race-free `PathJail`, off the event loop
(`ingest_files`). A file's document is named by its root, `<root>/<path>`, whatever spelling the
caller used; no tool returns a server path. `MCP_SUITE_SEARCH_PUBLIC_URLS` maps root names to public
base URLs for the `url` fields (see `roots`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field

from servers.search import index
from servers.search import query as q
from servers.search.embedder import Embedder
from servers.search.ingest import ingest_content
from servers.search.ingest_files import PathReport, ingest_path
from servers.search.models import (
    Document,
    Explain,
    Hit,
    IndexStats,
    IngestOutcome,
    IngestReport,
    SearchResults,
)
from servers.search.roots import IngestRoots, client_url, public_bases
from servers.search.settings import SearchSettings
from shared.config import load
from shared.errors import InvalidInput, NotFound, Unavailable
from shared.policy import RETRY, Policy, rate, redact, timeout
from shared.server import SuiteServer

MAX_DIRECTORY_FILES = 2_000
READ = Policy(scopes={"search:read"}, read_only=True, rate="20/s", retry=RETRY) | timeout(10.0)
WRITE = Policy(scopes={"search:write"}, idempotent=True, rate="20/s", retry=RETRY)  # re-ingest/delete: same state

app = SuiteServer(
    "search",
    instructions=(
        "Hybrid search over an indexed document collection: BM25 keyword relevance and semantic "
        "similarity fused by reciprocal rank fusion. Use hybrid_search for ranked passages (with filters "
        "and explanations), search/fetch for document-level results, ingest to add documents."
    ),
    session_settings=q.SESSION_SETTINGS,
)
embedder = Embedder()

QueryText = Annotated[str, Field(min_length=1, max_length=2000)]
DocumentId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Metadata = dict[str, str | int | float | bool | None]


def _warm_up(_app: SuiteServer) -> None:
    if load(SearchSettings).warmup:
        import asyncio

        asyncio.get_running_loop().create_task(embedder.warm_up(), name="embedding-warm-up")


app.startup_hooks.append(_warm_up)


async def _query_embedding(text: str, mode: str) -> tuple[Any, str | None]:
    if mode == "keyword":
        return None, None
    try:
        vectors = await embedder.encode([text], timeout=2.0)
        return vectors[0], None
    except Unavailable as exc:
        if mode == "semantic":
            raise
        return None, f"semantic leg unavailable ({exc.message}); keyword results only"


def _hit(row: Any, explain: bool, bases: dict[str, str]) -> Hit:
    metadata = row["metadata"] if isinstance(row["metadata"], dict) else json.loads(row["metadata"])
    return Hit(
        id=f"{row['document_id']}#{row['ordinal']}", document_id=row["document_id"], title=row["title"],
        source=row["source"], url=client_url(row["root"], row["source"], bases), text=row["text"],
        score=float(row["score"]), metadata=metadata,
        explain=Explain(keyword_rank=row["kw_rank"], keyword_score=row["kw_score"], semantic_rank=row["sem_rank"],
                        semantic_score=row["sem_score"]) if explain else None,
    )


async def run_search(text: str, *, mode: str = "hybrid", limit: int = 10, offset: int = 0, depth: int = 100,
                     rrf_k: float = 60.0, keyword_weight: float = 1.0, semantic_weight: float = 1.0,
                     filters: q.Filters | None = None, min_score: float | None = None,
                     explain: bool = False) -> SearchResults:
    if not text.strip() or "\x00" in text:
        raise InvalidInput("query must contain some text (and no NUL characters)")
    if offset + limit > depth:
        raise InvalidInput("offset + limit must not exceed depth (the candidates each leg returns)")
    vector, degraded = await _query_embedding(text, mode)
    served = "keyword" if (mode == "hybrid" and vector is None) else mode
    plan = q.QueryPlan(text=text, mode=served, limit=limit, offset=offset, depth=depth, rrf_k=rrf_k,
                       keyword_weight=keyword_weight, semantic_weight=semantic_weight, filters=filters,
                       min_score=min_score, embedding=vector)
    async with app.db.acquire() as conn:
        rows = await q.run(conn, plan)
    bases = public_bases()
    return SearchResults(query=text, mode=served, degraded=degraded, offset=offset,
                         hits=[_hit(r, explain, bases) for r in rows])


@app.tool(READ, title="Hybrid search")
async def hybrid_search(
    query: QueryText,
    mode: Literal["hybrid", "semantic", "keyword"] = "hybrid",
    limit: Annotated[int, Field(ge=1, le=50)] = 10,
    offset: Annotated[int, Field(ge=0, le=1000)] = 0,
    depth: Annotated[int, Field(ge=10, le=1000, description="candidates per leg")] = 100,
    rrf_k: Annotated[float, Field(ge=1, le=1000)] = 60.0,
    keyword_weight: Annotated[float, Field(ge=0, le=10)] = 1.0,
    semantic_weight: Annotated[float, Field(ge=0, le=10)] = 1.0,
    filters: q.Filters | None = None,
    min_score: Annotated[float | None, Field(ge=0)] = None,
    explain: bool = False,
) -> SearchResults:
    """Ranked passages for a query. `hybrid` fuses exact BM25 and embedding similarity with reciprocal
    rank fusion (score = Σ weight / (rrf_k + rank)); `keyword` and `semantic` use one leg. Filters apply
    inside each leg. `explain` adds each leg's rank and score. If the embedding model is unavailable,
    hybrid answers keyword-only and says so in `degraded`."""
    return await run_search(query, mode=mode, limit=limit, offset=offset, depth=depth, rrf_k=rrf_k,
                            keyword_weight=keyword_weight, semantic_weight=semantic_weight, filters=filters,
                            min_score=min_score, explain=explain)


@app.tool(READ, title="Search documents")
async def search(query: QueryText) -> dict[str, list[dict[str, str]]]:
    """Document-level hybrid search (the ChatGPT connector contract): up to 10 documents, best first,
    each with an id to pass to `fetch`."""
    results = await run_search(query, limit=50, depth=100)
    seen: dict[str, dict[str, str]] = {}
    for hit in results.hits:
        if hit.document_id not in seen:
            seen[hit.document_id] = {"id": hit.document_id, "title": hit.title, "url": hit.url}
    return {"results": list(seen.values())[:10]}


async def _document(document_id: str) -> Document:
    async with app.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, title, source, root, metadata, chunk_count, body, created_at, updated_at"
            " FROM search_documents WHERE id = $1", document_id)
    if row is None:
        raise NotFound("no document with that id")
    metadata = row["metadata"] if isinstance(row["metadata"], dict) else json.loads(row["metadata"])
    return Document(id=row["id"], title=row["title"], source=row["source"], metadata=metadata,
                    url=client_url(row["root"], row["source"], public_bases()),
                    chunks=row["chunk_count"], text=row["body"], created_at=row["created_at"].isoformat(),
                    updated_at=row["updated_at"].isoformat())


@app.tool(READ, title="Fetch a document")
async def fetch(id: DocumentId) -> dict[str, Any]:
    """A whole document by id (the ChatGPT connector contract): id, title, text, url, metadata."""
    doc = await _document(id)
    return {"id": doc.id, "title": doc.title, "text": doc.text, "url": doc.url, "metadata": doc.metadata}


@app.tool(READ, title="Get a document")
async def get_document(document_id: DocumentId) -> Document:
    """A document's text, metadata, chunk count and timestamps."""
    return await _document(document_id)


@app.tool(WRITE | Policy(destructive=True) | timeout(30.0) | rate("5/s"), title="Delete a document")
async def delete_document(document_id: DocumentId) -> dict[str, Any]:
    """Remove a document and everything indexed from it."""
    async with app.db.acquire() as conn:
        deleted = await index.delete_document(conn, document_id)
    if not deleted:
        raise NotFound("no document with that id")
    return {"document_id": document_id, "deleted": True}


@app.tool(READ | rate("5/s"), title="Index statistics")
async def index_stats() -> IndexStats:
    """Size of the index and the embedding model's state."""
    async with app.db.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM search_documents) AS documents, s.chunks, s.total_length,
                      (SELECT count(*) FROM search_terms WHERE df > 0) AS terms,
                      (SELECT count(*) FROM search_postings) AS postings
               FROM search_stats s""")
    state = "loaded" if embedder.loaded else ("unavailable" if embedder.load_error else "not loaded")
    return IndexStats(documents=row["documents"], chunks=row["chunks"], terms=row["terms"], postings=row["postings"],
                      average_chunk_terms=round(row["total_length"] / row["chunks"], 2) if row["chunks"] else 0.0,
                      embedding_model=state, embedding_breaker=embedder.breaker.state)


@app.tool(WRITE | timeout(600.0) | redact("content"), title="Ingest documents")
async def ingest(
    ctx: Context,
    content: Annotated[str | None, Field(max_length=5_000_000)] = None,
    path: Annotated[str | None, Field(max_length=4096)] = None,
    format: Literal["auto", "text", "markdown", "html"] = "auto",
    document_id: DocumentId | None = None,
    title: Annotated[str | None, Field(max_length=1000)] = None,
    source: Annotated[str | None, Field(max_length=2000)] = None,
    metadata: Metadata | None = None,
) -> IngestReport:
    """Index a document from `content`, or a file or directory at `path` (inside the server's configured
    roots; relative paths are taken against the first root). Directories are walked for text, Markdown
    and HTML files; the report says which files were indexed, which were skipped and why (e.g. a type
    that is not indexed), and which failed. A file's source is `<root>/<path>`, however the path was
    spelled. Unchanged documents are skipped without re-embedding; changed ones are replaced
    atomically. Reports progress for directories."""
    if (content is None) == (path is None):
        raise InvalidInput("pass exactly one of content or path")

    async def progress(done: float, total: float, message: str) -> None:
        await ctx.report_progress(done, total, message)

    if content is not None:
        result = await ingest_content(app.db, embedder, content, fmt=format, document_id=document_id,
                                      source=source, title=title, metadata=metadata, progress=progress)
        return IngestReport(documents=[IngestOutcome(document_id=result.document_id, status=result.status,
                                                     chunks=result.chunks, source=source)])
    if document_id is not None or source is not None or title is not None:
        raise InvalidInput("document_id, source and title apply to content; a file is named by its path")
    report = await ingest_path(app.db, embedder, IngestRoots.from_env(), path or "", fmt=format,
                               metadata=metadata, max_files=MAX_DIRECTORY_FILES, progress=progress)
    return _ingest_report(report)


def _ingest_report(report: PathReport) -> IngestReport:
    def listed(entries: list[str], total: int) -> list[str]:
        return entries + ([f"... and {total - len(entries)} more"] if total > len(entries) else [])

    return IngestReport(documents=[IngestOutcome(**d) for d in report.documents],
                        skipped=listed(report.skipped, report.skipped_count),
                        failed=listed(report.failed, report.failed_count))
