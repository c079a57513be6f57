"""`mcp-suite bench http`: a short honest run in CI (0 errors); the full 32-client, 30 s run is slow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.interop.harness import REPO, base_env


def _bench(database_url: str, clients: int, seconds: float) -> dict:
    env = base_env(database_url)
    done = subprocess.run([sys.executable, "-m", "shared.cli", "bench", "http", "--clients", str(clients),
                           "--seconds", str(seconds), "--json"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120 + 3 * seconds)
    assert done.stdout.strip(), done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, figures
    return figures


def test_bench_http_small_run_has_no_errors(database_url):
    figures = _bench(database_url, clients=4, seconds=3)
    assert figures["bare_errors"] == 0 and figures["suite_errors"] == 0, figures
    assert figures["bare_calls_per_s"] > 0 and figures["suite_calls_per_s"] > 0
    assert {"ratio", "suite_p50_ms", "suite_p99_ms"} <= set(figures)


@pytest.mark.slow
def test_bench_http_full_run_meets_its_goals(database_url):
    figures = _bench(database_url, clients=32, seconds=30)
    print(json.dumps(figures))
    assert figures["suite_errors"] == 0
    assert figures["suite_p99_ms"] <= 250
    assert figures["ratio"] >= 0.7, figures
