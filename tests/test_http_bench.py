"""`mcp-suite bench http`: a short honest run in CI (0 errors, consistent figures); the full 32-client,
30 s run is a slow benchmark that reports its goals (ratio >= 0.7, p99 <= 250 ms) instead of failing
on them: speed is recorded in docs/benchmarks.md, not asserted where machine load decides it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.interop.harness import REPO, base_env


def _bench(database_url: str, clients: int, seconds: float) -> dict:
    env = base_env(database_url)
    done = subprocess.run([sys.executable, "-m", "mcp_suite.cli", "bench", "http", "--clients", str(clients),
                           "--seconds", str(seconds), "--json"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120 + 3 * seconds)
    assert done.stdout.strip(), done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, figures
    return figures


def _consistent(figures: dict, clients: int) -> None:
    assert figures["clients"] == clients
    assert figures["bare_errors"] == 0 and figures["suite_errors"] == 0, figures
    assert figures["bare_calls_per_s"] > 0 and figures["suite_calls_per_s"] > 0
    assert figures["ratio"] == pytest.approx(figures["suite_calls_per_s"] / figures["bare_calls_per_s"], abs=0.002)
    assert 0 < figures["suite_p50_ms"] <= figures["suite_p99_ms"]
    assert 0 < figures["bare_p50_ms"] <= figures["bare_p99_ms"]
    goals = figures["ratio"] >= 0.7 and figures["suite_p99_ms"] <= 250 and figures["suite_errors"] == 0
    assert figures["goals_met"] == goals


def test_bench_http_small_run_has_no_errors(database_url):
    _consistent(_bench(database_url, clients=4, seconds=3), clients=4)


@pytest.mark.slow
def test_bench_http_full_run_reports_its_goals(database_url):
    figures = _bench(database_url, clients=32, seconds=30)
    _consistent(figures, clients=32)
    print(json.dumps(figures))
    print(f"goals (ratio >= 0.7, p99 <= 250 ms, 0 errors): {'met' if figures['goals_met'] else 'NOT met'}"
          f" — ratio {figures['ratio']}, p99 {figures['suite_p99_ms']} ms")
