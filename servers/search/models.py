"""What the search tools return (structured output the client can rely on)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Explain(BaseModel):
    """Each leg's rank (1 = best) and raw score for a hit; null when the leg did not return it."""

    keyword_rank: int | None = None
    keyword_score: float | None = Field(default=None, description="BM25")
    semantic_rank: int | None = None
    semantic_score: float | None = Field(default=None, description="cosine similarity")


class Hit(BaseModel):
    id: str = Field(description="chunk id: <document_id>#<ordinal>")
    document_id: str
    title: str
    source: str = Field(description="the caller's source, or <root>/<path> for a file; never a server path")
    url: str = Field(description="the public URL configured for the file's root, else the source")
    text: str
    score: float = Field(description="fused RRF score (or the leg's score in single-leg modes)")
    metadata: dict[str, Any]
    explain: Explain | None = None


class SearchResults(BaseModel):
    query: str
    mode: str = Field(description="the mode actually served")
    degraded: str | None = Field(default=None, description="why the answer is keyword-only, if it is")
    offset: int
    hits: list[Hit]


class Document(BaseModel):
    id: str
    title: str
    source: str = Field(description="the caller's source, or <root>/<path> for a file; never a server path")
    url: str = Field(description="the public URL configured for the file's root, else the source")
    metadata: dict[str, Any]
    chunks: int
    text: str
    created_at: str
    updated_at: str


class IngestOutcome(BaseModel):
    document_id: str
    status: str = Field(description="created | replaced | unchanged")
    chunks: int
    source: str | None = None


class IngestReport(BaseModel):
    documents: list[IngestOutcome] = Field(description="indexed documents: created, replaced or unchanged")
    skipped: list[str] = Field(default_factory=list,
                               description="files passed over on purpose, with the reason (e.g. a type not indexed)")
    failed: list[str] = Field(default_factory=list, description="files that could not be ingested, with the reason")


class IndexStats(BaseModel):
    documents: int
    chunks: int
    terms: int
    postings: int
    average_chunk_terms: float
    embedding_model: str = Field(description="loaded | not loaded | unavailable")
    embedding_breaker: str
