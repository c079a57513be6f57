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
