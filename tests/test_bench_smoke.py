"""CI runs a small honest version of each benchmark: it runs end to end, and its figures must be
internally consistent and backed by what actually happened (audit rows written, postings loaded).

Speed itself is not asserted here (a busy CI machine makes any bound either flaky or vacuous); the
full runs are `mcp-suite bench overhead|search|http` (see docs/benchmarks.md) and `pytest -m slow`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest

WARM_UP_CALLS = 50  # mcp_suite/bench_overhead.py warms each session up with this many echo calls


def run_bench(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "mcp_suite.cli", "bench", *args, "--json"],
                          capture_output=True, text=True, timeout=600, env=env or dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_overhead_figures_consistent(figures: dict, calls: int, rounds: int) -> None:
    """The summary figures are what the per-round figures say, not numbers made up elsewhere."""
    assert figures["calls_per_round"] == calls and figures["rounds"] == rounds
    assert len(figures["bare_rounds"]) == rounds and len(figures["suite_rounds"]) == rounds
    assert all(r > 0 for r in figures["bare_rounds"] + figures["suite_rounds"])
    assert figures["bare_calls_per_s"] == pytest.approx(statistics.median(figures["bare_rounds"]), abs=0.1)
    assert figures["suite_calls_per_s"] == pytest.approx(statistics.median(figures["suite_rounds"]), abs=0.1)
    ratio = figures["suite_calls_per_s"] / figures["bare_calls_per_s"]
    assert figures["ratio"] == pytest.approx(ratio, abs=0.002)
    assert figures["suite_initialize_s"] > 0
    # The ceiling is the bare call's time over the bare call plus one durable audit commit.
    assert figures["audit_commit_us"] > 0
    bare_s = 1 / figures["bare_calls_per_s"]
    ceiling = bare_s / (bare_s + figures["audit_commit_us"] / 1e6)
    assert figures["durable_ceiling_ratio"] == pytest.approx(ceiling, abs=0.002)


async def test_overhead_bench_small(make_database, db_connection):
    calls, rounds = 100, 2
    async with make_database() as url:
        figures = run_bench("overhead", "--calls", str(calls), "--rounds", str(rounds),
                            env={**os.environ, "DATABASE_URL": url})
        async with db_connection(url) as conn:
            audited = await conn.fetch(
                "SELECT outcome, count(*) AS n FROM audit_log WHERE server = 'bench' AND tool = 'echo'"
                " AND principal = 'bench' GROUP BY outcome")
    assert_overhead_figures_consistent(figures, calls, rounds)
    # The suite side really ran the policy stack: every suite call (warm-up included) left one
    # committed audit record, and the bare side left none.
    assert {r["outcome"]: r["n"] for r in audited} == {"ok": rounds * (calls + WARM_UP_CALLS)}


@pytest.mark.slow
def test_overhead_bench_full():
    figures = run_bench("overhead", "--calls", "2000", "--rounds", "3")
    print(figures)
    assert_overhead_figures_consistent(figures, 2000, 3)


def expected_postings(chunks: int, seed: int = 42) -> tuple[int, int]:
    """(vocabulary, distinct (term, chunk) pairs) of the benchmark's synthetic corpus, recomputed here."""
    from servers.search.lab.bench import synthetic_corpus

    vocabulary = int(min(1_000_000, max(5_000, 20 * (chunks * 120) ** 0.55)))
    corpus = synthetic_corpus(chunks, vocabulary, seed)
    return vocabulary, sum(len(np.unique(row)) for row in corpus)


def test_search_bench_small(database_url):
    chunks, queries = 3000, 50
    figures = run_bench("search", "--chunks", str(chunks), "--queries", str(queries),
                        env={**os.environ, "DATABASE_URL": database_url})
    vocabulary, postings = expected_postings(chunks)
    # `postings` is counted in the database after the load: it equals the distinct (term, chunk)
    # pairs of all 3000 synthetic chunks only if every chunk really was indexed.
    assert figures["vocabulary"] == vocabulary and figures["queries"] == queries
    assert figures["postings"] == postings
    assert figures["chunks"] == chunks
    assert 0 < figures["hybrid_p50_ms"] <= figures["hybrid_p95_ms"] <= figures["hybrid_max_ms"]
    assert figures["ingest_chunks_per_s"] > 0 and figures["build_s"] > 0 and figures["rank_bm25_build_s"] >= 0
    speedup = figures["rank_bm25_query_ms"] / figures["hybrid_p50_ms"]
    assert figures["speedup_vs_rank_bm25"] == pytest.approx(speedup, rel=0.05, abs=0.1)


def test_search_eval_on_the_mini_dataset(database_url, tmp_path):
    from pathlib import Path

    fixture = Path(__file__).parent / "fixtures" / "beir-mini"
    done = subprocess.run([sys.executable, "-m", "mcp_suite.cli", "eval", "search", str(fixture), "--json"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "DATABASE_URL": database_url, "MCP_SUITE_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for mode in ("keyword", "semantic", "hybrid"):
        assert 0.0 <= figures[mode]["ndcg@10"] <= 1.0 and 0.0 <= figures[mode]["recall@100"] <= 1.0
    assert figures["hybrid"]["ndcg@10"] > 0.5


@pytest.mark.slow
def test_search_bench_100k():
    figures = run_bench("search", "--chunks", "100000", "--queries", "200")
    print(figures)
    vocabulary, postings = expected_postings(100_000)
    assert figures["vocabulary"] == vocabulary and figures["postings"] == postings
    assert figures["speedup_vs_rank_bm25"] > 1
