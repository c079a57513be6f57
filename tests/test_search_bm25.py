"""Exact BM25 in SQL, checked against rank-bm25 (the oracle) on a fixture corpus, to 1e-6.

The SQL computes Lucene's BM25 (idf = ln(1 + (N - df + 0.5)/(df + 0.5)), never negative). rank-bm25's
BM25Okapi uses ln((N - df + 0.5)/(df + 0.5)) with an epsilon floor instead, so the oracle is rank-bm25's
own Okapi scorer with only its idf hook swapped (`LuceneBM25`), and the formula is also written out
independently in `oracle()`; all three agree.
"""

from __future__ import annotations

import math
import random

import pytest
from rank_bm25 import BM25Okapi

from servers.search import index, query
from servers.search.analyzer import term_counts, tokens

SENTENCES = [
    "The heart pumps blood through arteries and veins to every organ of the body.",
    "Vaccines train the immune system to recognise a virus before an infection occurs.",
    "Insulin resistance is an early sign of type two diabetes in adults.",
    "Cholesterol deposits narrow the arteries and raise the risk of a heart attack.",
    "Regular exercise lowers blood pressure and improves insulin sensitivity.",
    "Antibiotics kill bacteria but have no effect on a virus.",
    "Sleep deprivation weakens the immune response to vaccines.",
    "The liver stores glucose as glycogen and releases it between meals.",
    "Mutations in tumour suppressor genes let cancer cells divide without control.",
    "Chemotherapy targets rapidly dividing cells, including some healthy ones.",
    "A balanced diet with fibre reduces cholesterol and supports gut bacteria.",
    "Blood tests measure glucose, cholesterol and markers of inflammation.",
    "Chronic inflammation is linked to heart disease, diabetes and some cancers.",
    "The kidneys filter blood and keep the balance of salts and water.",
    "Smoking damages the lungs and raises the risk of lung cancer.",
]
VOCAB = ("protein cell gene enzyme receptor signal membrane tissue neuron dose trial patient cohort "
         "placebo outcome risk therapy marker plasma serum").split()


def corpus() -> list[str]:
    rng = random.Random(7)
    extra = [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(5, 40))) for _ in range(40)]
    return SENTENCES + extra


class LuceneBM25(BM25Okapi):
    """rank-bm25's Okapi scorer with Lucene's always-positive idf (the variant the SQL computes)."""

    def _calc_idf(self, nd):  # noqa: D401 - rank-bm25's hook
        for word, freq in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))


def oracle(docs: list[list[str]], q: list[str], k1: float, b: float) -> list[float]:
    """The formula written out, independent of both the SQL and rank-bm25."""
    n = len(docs)
    avgdl = sum(map(len, docs)) / n
    df = {t: sum(1 for d in docs if t in d) for t in set(q)}
    scores = []
    for d in docs:
        s = 0.0
        for t in q:
            if df.get(t):
                tf = d.count(t)
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        scores.append(s)
    return scores


@pytest.fixture(scope="module")
async def bm25_db(make_database, db_connection):
    async with make_database() as url, db_connection(url) as conn:
        texts = corpus()
        for i, text in enumerate(texts):
            doc = index.PreparedDocument(id=f"d{i}", source=f"fixture://{i}", title=f"doc {i}", body=text,
                                         content_hash=str(i), chunks=[index.PreparedChunk(text, term_counts(text))])
            await index.replace_document(conn, doc)
        yield conn, texts


QUERIES = ["heart blood", "virus vaccines immune", "cholesterol cholesterol arteries", "cancer cells gene",
           "patient placebo trial outcome", "glucose insulin diabetes liver", "the of and", "zebra unknown"]


@pytest.mark.parametrize("text", QUERIES)
@pytest.mark.parametrize(("k1", "b"), [(1.2, 0.75), (0.9, 0.4), (2.0, 1.0)])
async def test_sql_bm25_equals_rank_bm25(bm25_db, text, k1, b):
    conn, texts = bm25_db
    docs = [tokens(t) for t in texts]
    q = tokens(text)
    plan = query.QueryPlan(text=text, mode="keyword", limit=1000, depth=1000, k1=k1, b=b)
    rows = await query.run(conn, plan)
    ours = {r["document_id"]: r["kw_score"] for r in rows}
    expected_lib = LuceneBM25(docs, k1=k1, b=b).get_scores(q) if q else [0.0] * len(docs)
    expected_formula = oracle(docs, q, k1, b)
    for i in range(len(docs)):
        assert ours.get(f"d{i}", 0.0) == pytest.approx(expected_lib[i], abs=1e-6)
        assert expected_lib[i] == pytest.approx(expected_formula[i], abs=1e-9)
    # ranking of positive scores is identical (ties broken by chunk id)
    assert all(score > 0 for score in ours.values())


async def test_stats_stay_exact_after_replace_and_delete(bm25_db):
    conn, texts = bm25_db
    before = await conn.fetchrow("SELECT chunks, total_length FROM search_stats")
    text = "Heart heart heart blood vessel"
    doc = index.PreparedDocument(id="tmp", source="fixture://tmp", title="tmp", body=text, content_hash="x",
                                 chunks=[index.PreparedChunk(text, term_counts(text))])
    assert await index.replace_document(conn, doc) == "created"
    doc.chunks = [index.PreparedChunk("blood", term_counts("blood"))]
    assert await index.replace_document(conn, doc) == "replaced"
    assert await index.delete_document(conn, "tmp") is True
    after = await conn.fetchrow("SELECT chunks, total_length FROM search_stats")
    assert tuple(before) == tuple(after)
    real_df = await conn.fetch("""SELECT t.term, t.df, count(p.chunk_id) AS postings FROM search_terms t
                                  LEFT JOIN search_postings p ON p.term_id = t.id GROUP BY t.id""")
    assert all(r["df"] == r["postings"] for r in real_df)
    assert await conn.fetchval("SELECT count(*) FROM search_chunks") == len(texts)
