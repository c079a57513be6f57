"""CI runs a small honest version of each benchmark: it must run end to end and print its figures.

The full runs are `mcp-suite bench overhead` (see docs/benchmarks.md) and `pytest -m slow`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run_bench(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "shared.cli", "bench", *args, "--json"],
                          capture_output=True, text=True, timeout=600, env=env or dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_overhead_bench_small(database_url):
    figures = run_bench("overhead", "--calls", "100", "--rounds", "1",
                        env={**os.environ, "DATABASE_URL": database_url})
    assert figures["bare_calls_per_s"] > 0 and figures["suite_calls_per_s"] > 0
    assert 0 < figures["ratio"] < 2


@pytest.mark.slow
def test_overhead_bench_full():
    figures = run_bench("overhead", "--calls", "2000", "--rounds", "3")
    print(figures)
    assert figures["ratio"] > 0


def test_search_bench_small(database_url):
    figures = run_bench("search", "--chunks", "3000", "--queries", "50",
                        env={**os.environ, "DATABASE_URL": database_url})
    for key in ("chunks", "ingest_chunks_per_s", "build_s", "hybrid_p50_ms", "hybrid_p95_ms", "rank_bm25_build_s",
                "rank_bm25_query_ms", "speedup_vs_rank_bm25"):
        assert key in figures
    assert figures["chunks"] == 3000 and figures["hybrid_p50_ms"] > 0


def test_search_eval_on_the_mini_dataset(database_url, tmp_path):
    from pathlib import Path

    fixture = Path(__file__).parent / "fixtures" / "beir-mini"
    done = subprocess.run([sys.executable, "-m", "shared.cli", "eval", "search", str(fixture), "--json"],
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
    assert figures["speedup_vs_rank_bm25"] > 1
