"""The embedded PostgreSQL: CLI lifecycle, and several processes sharing one server safely."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_cli, user_env

JOIN_AND_QUERY = """
import asyncio, os, sys, asyncpg
from pathlib import Path
from shared.db import embedded as embedded_db
url = embedded_db.start(Path(sys.argv[1]), keep_running=False)
async def main():
    conn = await asyncpg.connect(url)
    print(await conn.fetchval("SELECT pg_postmaster_start_time()::text"))
    home = Path(sys.argv[1])
    clients = ("SELECT count(*) FROM pg_stat_activity"
               " WHERE datname = current_database() AND backend_type = 'client backend'")
    for _ in range(1200):  # overlap: stay until all three are connected at once, and all three saw it
        if await conn.fetchval(clients) >= 3:
            (home / f"saw-three-{os.getpid()}").touch()
        if len(list(home.glob("saw-three-*"))) >= 3:
            break
        await asyncio.sleep(0.05)
    else:
        sys.exit("the three processes never overlapped")
    await conn.close()
asyncio.run(main())
"""


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=user_env(home))


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("suite-home")
    yield path
    cli(path, "db", "stop")


def test_db_lifecycle_commands(home: Path):
    started = cli(home, "db", "start")
    assert started.returncode == 0, started.stderr
    assert "mcp_suite" in started.stdout
    status = json.loads(cli(home, "db", "status").stdout)
    assert status["running"] is True and status["initialised"] is True
    assert cli(home, "db", "url").stdout.strip() == started.stdout.strip()
    migrated = cli(home, "migrate")
    assert migrated.returncode == 0 and "applied" in migrated.stdout
    assert cli(home, "db", "stop").stdout.strip() == "stopped"
    assert json.loads(cli(home, "db", "status").stdout)["running"] is False


def test_concurrent_processes_share_one_postmaster_and_it_stops_after_the_last(home: Path):
    procs = [subprocess.Popen([sys.executable, "-c", JOIN_AND_QUERY, str(home)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outputs]
    start_times = {out.strip() for out, _ in outputs}
    assert len(start_times) == 1  # one postmaster served all three
    assert json.loads(cli(home, "db", "status").stdout)["running"] is False  # stopped with the last one
