"""The read side: one SQL statement per query — exact BM25 leg, pgvector leg, RRF fusion, filters.

BM25 (Lucene's variant, `idf = ln(1 + (N - df + 0.5) / (df + 0.5))`) is computed from the postings
and the live corpus statistics in the same snapshot as the documents, so scores are exact and agree
across replicas. Filters are applied inside each leg, before its candidate cut-off, never after.
Every value is a bound parameter; metadata keys are parameters too, so no input can alter the SQL.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from servers.search.analyzer import tokens

Mode = Literal["hybrid", "semantic", "keyword"]

# BM25 parameters (Lucene's defaults); `mcp-suite eval search --k1 --b` measures alternatives.
DEFAULT_K1 = 1.2
DEFAULT_B = 0.75

# Session settings every search connection uses (server, benchmark and evaluation alike):
# HNSW keeps scanning past ef_search until a leg has its `depth` candidates (iterative scan), and
# custom plans, because a generic plan cannot see how common the query's terms are.
SESSION_SETTINGS = {"hnsw.ef_search": "40", "hnsw.iterative_scan": "relaxed_order",
                    "plan_cache_mode": "force_custom_plan"}
_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
Scalar = str | int | float | bool


class Range(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gte: float | str | None = None
    gt: float | str | None = None
    lte: float | str | None = None
    lt: float | str | None = None


class Filters(BaseModel):
    """Restrict every leg to documents whose metadata matches (all conditions must hold)."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Scalar] | None = Field(default=None, description="exact matches on metadata keys")
    ranges: dict[str, Range] | None = Field(default=None, description="numeric or ISO-date ranges on keys")
    source_prefix: str | None = Field(default=None, max_length=2000, description="document source starts with")

    @field_validator("metadata", "ranges")
    @classmethod
    def _keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key in value or {}:
            if not _KEY.match(key):
                raise ValueError("metadata keys are 1-64 letters, digits, '_', '.' or '-'")
        return value


@dataclass
class QueryPlan:
    text: str
    mode: Mode = "hybrid"
    limit: int = 10
    offset: int = 0
    depth: int = 100
    rrf_k: float = 60.0
    keyword_weight: float = 1.0
    semantic_weight: float = 1.0
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    min_score: float | None = None
    filters: Filters | None = None
    embedding: Any = None
    full_scan: bool = False  # force the plain scan (tests compare it with the pruned path)
    args: list[Any] = field(default_factory=list)

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


def _filter_sql(plan: QueryPlan) -> str:
    f = plan.filters
    if f is None:
        return ""
    clauses: list[str] = []
    if f.metadata:
        clauses.append(f"d.metadata @> {plan.param(json.dumps(f.metadata))}::jsonb")
    for key, rng in (f.ranges or {}).items():
        k = plan.param(key)
        for op, value in (("gte", ">="), ("gt", ">"), ("lte", "<="), ("lt", "<")):
            bound = getattr(rng, op)
            if bound is None:
                continue
            if isinstance(bound, str):
                clauses.append(f"(CASE WHEN jsonb_typeof(d.metadata -> {k}) = 'string' "
                               f"THEN d.metadata ->> {k} END) {value} {plan.param(bound)}")
            else:
                clauses.append(f"(CASE WHEN jsonb_typeof(d.metadata -> {k}) = 'number' "
                               f"THEN (d.metadata ->> {k})::float8 END) {value} {plan.param(float(bound))}")
    if f.source_prefix:
        escaped = f.source_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(f"d.source LIKE {plan.param(escaped + '%')}")
    return " AND ".join(clauses)


def _full_scan_sql(terms: str, qtf: str, k1: str, b: str, depth: str, where: str) -> str:
    """Every posting of every query term, scored and cut to `depth` (used with filters: they apply
    to each posting's document before the cut)."""
    doc_join = (f" JOIN search_chunks c ON c.id = p.chunk_id JOIN search_documents d ON d.id = c.document_id"
                f" WHERE {where}") if where else ""
    return f"""
stats AS (SELECT chunks::float8 AS n, total_length::float8 / greatest(chunks, 1) AS avgdl FROM search_stats),
q AS (SELECT t.id, ln(1 + (s.n - t.df + 0.5) / (t.df + 0.5)) * qt.qtf AS w
      FROM unnest({terms}::text[], {qtf}::int[]) AS qt(term, qtf)
      JOIN search_terms t ON t.term = qt.term CROSS JOIN stats s),
kw_scored AS (SELECT p.chunk_id, sum(search_bm25_part(q.w, p.tf, p.length, {k1}, {b}, s.avgdl)) AS score
              FROM q JOIN search_postings p ON p.term_id = q.id CROSS JOIN stats s{doc_join}
              GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT {depth}),
kw AS (SELECT chunk_id, score, row_number() OVER (ORDER BY score DESC, chunk_id) AS rank FROM kw_scored)"""


def build_sql(plan: QueryPlan) -> str:
    """Assemble the statement for a plan (the parameters accumulate in `plan.args`)."""
    counts = Counter(tokens(plan.text))
    use_keyword = plan.mode in ("hybrid", "keyword") and bool(counts)
    use_semantic = plan.mode in ("hybrid", "semantic") and plan.embedding is not None
    where = _filter_sql(plan)
    depth = plan.param(plan.depth) + "::int"
    ctes: list[str] = []
    if use_keyword:
        terms, qtf = plan.param(list(counts)), plan.param(list(counts.values()))
        k1, b = plan.param(plan.k1) + "::float8", plan.param(plan.b) + "::float8"
        if not where and not plan.full_scan:
            # Unfiltered: the threshold-algorithm function reads only what can reach the top `depth`.
            ctes.append(f"""
kw_scored AS (SELECT chunk_id, score FROM search_bm25_top({terms}::text[], {qtf}::int[], {k1}, {b}, {depth})),
kw AS (SELECT chunk_id, score, row_number() OVER (ORDER BY score DESC, chunk_id) AS rank FROM kw_scored)""")
        else:
            ctes.append(_full_scan_sql(terms, qtf, k1, b, depth, where))
    if use_semantic:
        vec = plan.param(plan.embedding)
        doc_join = " JOIN search_documents d ON d.id = c.document_id" if where else ""
        extra = f" AND {where}" if where else ""
        ctes.append(f"""
sem_scored AS (SELECT c.id AS chunk_id, 1 - (c.embedding <=> {vec}) AS score
               FROM search_chunks c{doc_join} WHERE c.embedding IS NOT NULL{extra}
               ORDER BY c.embedding <=> {vec}, c.id LIMIT {depth}),
sem AS (SELECT chunk_id, score, row_number() OVER (ORDER BY score DESC, chunk_id) AS rank FROM sem_scored)""")
    if not ctes:
        return ""
    if use_keyword and use_semantic:
        rrf_k = plan.param(plan.rrf_k) + "::float8"
        kw_w = plan.param(plan.keyword_weight) + "::float8"
        sem_w = plan.param(plan.semantic_weight) + "::float8"
        fused = f"""SELECT coalesce(kw.chunk_id, sem.chunk_id) AS chunk_id,
                   coalesce({kw_w} / ({rrf_k} + kw.rank), 0) + coalesce({sem_w} / ({rrf_k} + sem.rank), 0) AS score,
                   kw.rank AS kw_rank, kw.score AS kw_score, sem.rank AS sem_rank, sem.score AS sem_score
            FROM kw FULL JOIN sem ON kw.chunk_id = sem.chunk_id"""
    elif use_keyword:
        fused = """SELECT chunk_id, score, rank AS kw_rank, score AS kw_score, NULL::bigint AS sem_rank,
                   NULL::float8 AS sem_score FROM kw"""
    else:
        fused = """SELECT chunk_id, score, NULL::bigint AS kw_rank, NULL::float8 AS kw_score, rank AS sem_rank,
                   score AS sem_score FROM sem"""
    min_score = f" WHERE f.score >= {plan.param(plan.min_score)}::float8" if plan.min_score is not None else ""
    limit, offset = plan.param(plan.limit) + "::int", plan.param(plan.offset) + "::int"
    return f"""WITH {','.join(ctes)},
fused AS MATERIALIZED ({fused})
SELECT f.chunk_id, f.score, f.kw_rank, f.kw_score, f.sem_rank, f.sem_score,
       c.document_id, c.ordinal, c.text, d.title, d.source, d.root, d.metadata
FROM fused f JOIN search_chunks c ON c.id = f.chunk_id JOIN search_documents d ON d.id = c.document_id{min_score}
ORDER BY f.score DESC, f.chunk_id LIMIT {limit} OFFSET {offset}"""


async def run(conn: asyncpg.Connection, plan: QueryPlan) -> list[asyncpg.Record]:
    sql = build_sql(plan)
    if not sql:
        return []
    return await conn.fetch(sql, *plan.args)
