"""The pruned BM25 top-k (`search_bm25_top`, threshold algorithm) equals the plain exact scan.

A Zipf corpus makes some terms appear in most chunks (the expensive case the pruning exists for);
duplicated chunks make ties at the cut-off; small depths force sorted access and iterative deepening.
Every ranking must be identical — same chunk ids in the same order, same scores.
"""

from __future__ import annotations

import random

import pytest

from servers.search import index, query
from servers.search.analyzer import term_counts

VOCAB = [f"w{i}x" for i in range(400)]  # 'x' keeps the stemmer from touching them


def _zipf_text(rng: random.Random, weights: list[float]) -> str:
    return " ".join(rng.choices(VOCAB, weights=weights, k=rng.randint(5, 150)))


@pytest.fixture(scope="module")
async def zipf_db(make_database, db_connection):
    rng = random.Random(11)
    weights = [1 / (i + 1) ** 1.1 for i in range(len(VOCAB))]
    async with make_database() as url, db_connection(url) as conn:
        texts = [_zipf_text(rng, weights) for _ in range(2400)]
        texts += ["w0x w0x w1x w7x"] * 150 + ["w3x w50x"] * 80  # ties straddling every cut-off
        for start in range(0, len(texts), 60):
            chunks = [index.PreparedChunk(t, term_counts(t)) for t in texts[start:start + 60]]
            await index.replace_document(conn, index.PreparedDocument(
                id=f"z{start}", source="zipf", title="z", body="", content_hash=str(start), chunks=chunks))
        # a replaced and a deleted document: the statistics move, the answers must stay exact
        await index.replace_document(conn, index.PreparedDocument(
            id="z0", source="zipf", title="z", body="", content_hash="again",
            chunks=[index.PreparedChunk("w0x w2x w2x", term_counts("w0x w2x w2x"))]))
        await index.delete_document(conn, "z60")
        yield conn


def _queries() -> list[str]:
    rng = random.Random(5)
    out = ["w0x", "w0x w1x", "w0x w1x w2x w3x", "w3x w50x", "w0x w7x", "w0x w0x w399x", "w1x w250x"]
    for _ in range(40):
        terms = [f"w{min(int(rng.paretovariate(0.6)) - 1, 399)}x" for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.5:
            terms[0] = f"w{rng.randint(0, 5)}x"
        out.append(" ".join(terms))
    return out


async def _ranking(conn, text: str, depth: int, full_scan: bool, k1: float = 1.2, b: float = 0.75):
    plan = query.QueryPlan(text=text, mode="keyword", limit=depth, depth=depth, full_scan=full_scan, k1=k1, b=b)
    return [(r["chunk_id"], r["kw_score"]) for r in await query.run(conn, plan)]


@pytest.mark.parametrize("depth", [1, 3, 10, 40, 100])
async def test_pruned_top_k_equals_full_scan(zipf_db, depth):
    for text in _queries():
        exact = await _ranking(zipf_db, text, depth, full_scan=True)
        pruned = await _ranking(zipf_db, text, depth, full_scan=False)
        assert [c for c, _ in pruned] == [c for c, _ in exact], text
        assert [s for _, s in pruned] == pytest.approx([s for _, s in exact], rel=1e-12), text


@pytest.mark.parametrize(("k1", "b"), [(0.9, 0.4), (2.0, 1.0), (1.2, 0.0)])
async def test_pruned_top_k_is_exact_for_any_k1_b(zipf_db, k1, b):
    for text in _queries()[:20]:
        exact = await _ranking(zipf_db, text, 10, True, k1, b)
        pruned = await _ranking(zipf_db, text, 10, False, k1, b)
        assert [c for c, _ in pruned] == [c for c, _ in exact], text


async def _impact_reads(conn, sql: str) -> int:
    read = "SELECT sum(idx_tup_read) FROM pg_stat_user_indexes WHERE relname = 'search_postings'"
    await conn.execute("SELECT pg_stat_force_next_flush()")
    before = await conn.fetchval(read)
    await conn.fetch(sql)
    await conn.execute("SELECT pg_stat_force_next_flush()")
    return await conn.fetchval(read) - before


@pytest.mark.parametrize("term", ["w2x", "w4x", "w5x"])
async def test_common_term_query_reads_a_fraction_of_its_postings(zipf_db, term):
    """The point of the pruning: a term in most chunks is not scanned in full."""
    df = await zipf_db.fetchval("SELECT df FROM search_terms WHERE term = $1", term)
    assert df > 800
    full = await _impact_reads(zipf_db, f"""SELECT * FROM search_postings WHERE term_id =
                                           (SELECT id FROM search_terms WHERE term = '{term}')""")
    pruned = await _impact_reads(zipf_db, f"SELECT * FROM search_bm25_top('{{{term}}}', '{{1}}', 1.2, 0.75, 10)")
    assert 0 < pruned < full / 2
