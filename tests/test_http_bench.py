"""`mcp-suite bench http`: short honest runs in CI (0 errors, consistent figures, one and two workers,
both protocols); the full 32-client, 30 s run is a slow benchmark that reports its goals (ratio >= 0.7,
p99 <= 250 ms) instead of failing on them: speed is recorded in docs/benchmarks.md, not asserted where
machine load decides it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.interop.harness import REPO, base_env


def _bench(database_url: str, clients: int, seconds: float, *extra: str) -> dict:
    env = base_env(database_url)
    done = subprocess.run([sys.executable, "-m", "mcp_suite.cli", "bench", "http", "--clients", str(clients),
                           "--seconds", str(seconds), "--json", *extra], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180 + 6 * seconds)
    assert done.stdout.strip(), done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, figures
    return figures


def _consistent(figures: dict, clients: int, workers: list[int], protocol: str = "legacy") -> None:
    assert figures["clients"] == clients and figures["protocol"] == protocol
    assert [r["workers"] for r in figures["runs"]] == workers
    for run in figures["runs"]:
        assert run["bare_errors"] == 0 and run["suite_errors"] == 0, run
        assert run["bare_calls_per_s"] > 0 and run["suite_calls_per_s"] > 0
        assert run["ratio"] == pytest.approx(run["suite_calls_per_s"] / run["bare_calls_per_s"], abs=0.002)
        assert 0 < run["suite_p50_ms"] <= run["suite_p99_ms"]
        assert 0 < run["bare_p50_ms"] <= run["bare_p99_ms"]
        goals = run["ratio"] >= 0.7 and run["suite_p99_ms"] <= 250 and run["suite_errors"] == 0
        assert run["goals_met"] == goals
        if sys.platform.startswith("linux"):  # CPU per call is read from /proc
            assert run["bare_cpu_us_per_call"] > 0 and run["suite_cpu_us_per_call"] > 0
    assert figures["goals_met"] == any(r["goals_met"] for r in figures["runs"])


def test_bench_http_one_and_two_workers_have_no_errors(database_url):
    _consistent(_bench(database_url, 4, 2, "--workers", "1,2"), clients=4, workers=[1, 2])


def test_bench_http_sessionless_protocol_has_no_errors(database_url):
    figures = _bench(database_url, 4, 2, "--protocol", "sessionless")
    _consistent(figures, clients=4, workers=[1], protocol="sessionless")


def test_bench_http_refuses_bad_worker_counts(database_url):
    done = subprocess.run([sys.executable, "-m", "mcp_suite.cli", "bench", "http", "--workers", "0,x"], cwd=REPO,
                          env=base_env(database_url), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--workers" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["legacy", "sessionless"])
def test_bench_http_full_run_reports_its_goals(database_url, protocol):
    figures = _bench(database_url, 32, 30, "--workers", "1,2", "--protocol", protocol)
    _consistent(figures, clients=32, workers=[1, 2], protocol=protocol)
    print(json.dumps(figures))
    for run in figures["runs"]:
        print(f"workers {run['workers']}: goals (ratio >= 0.7, p99 <= 250 ms, 0 errors) "
              f"{'met' if run['goals_met'] else 'NOT met'} — ratio {run['ratio']}, p99 {run['suite_p99_ms']} ms")
