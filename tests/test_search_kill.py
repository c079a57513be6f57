"""A process killed mid-ingest leaves the index exactly consistent: no document is half-visible.

The kill is not left to timing: the test holds a lock on `search_stats` (the last table an ingest
transaction writes), waits until the writer's backend is blocked on it with its transaction open and
its document rows already written, and only then kills the writer with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading

import asyncpg

from servers.search.index import consistency_problems

WRITER = r"""
import asyncio, random, sys
import asyncpg, numpy as np
from pgvector.asyncpg import register_vector
from servers.search import index
from servers.search.analyzer import term_counts

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma tau".split()

async def main(url):
    conn = await asyncpg.connect(url)
    await register_vector(conn)
    print("pid", await conn.fetchval("SELECT pg_backend_pid()"), flush=True)
    rng = random.Random(1)
    n = 0
    while True:
        n += 1
        chunks = []
        for _ in range(rng.randint(1, 30)):
            text = " ".join(rng.choice(WORDS) + str(rng.randint(0, 500)) for _ in range(120))
            vec = np.random.default_rng(n).standard_normal(384).astype(np.float32)
            chunks.append(index.PreparedChunk(text, term_counts(text), vec / np.linalg.norm(vec)))
        doc = index.PreparedDocument(id=f"doc-{rng.randint(0, 40)}", source="kill-test", title="t",
                                     body="b", content_hash=str(n), chunks=chunks)
        print("begin", doc.id, n, flush=True)
        await index.replace_document(conn, doc)
        if n == 3:
            print("writing", flush=True)

asyncio.run(main(sys.argv[1]))
"""

# The writer's backend: in a transaction, waiting for a lock on search_stats, and already holding
# the row-exclusive lock its writes to search_documents took.
BLOCKED_MID_TRANSACTION = """
SELECT a.xact_start IS NOT NULL
       AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted
                   AND l.relation = 'search_stats'::regclass)
       AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted AND l.mode = 'RowExclusiveLock'
                   AND l.relation = 'search_documents'::regclass)
FROM pg_stat_activity a WHERE a.pid = $1
"""


async def wait_for(conn: asyncpg.Connection, sql: str, *args: object, what: str) -> None:
    """Poll a condition; the bound only stops a broken run from hanging the suite."""
    for _ in range(1200):
        if await conn.fetchval(sql, *args):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_kill_minus_nine_mid_ingest_leaves_no_partial_document(make_database, db_connection):
    async with make_database() as url:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True)
        lines: list[str] = []
        started = threading.Event()

        def drain() -> None:  # keep the pipe empty so the writer never blocks on print
            for line in writer.stdout:
                lines.append(line.split())
                if line.startswith("writing"):
                    started.set()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        async with db_connection(url) as blocker, db_connection(url) as conn:
            try:
                while not await asyncio.to_thread(started.wait, 0.2):
                    assert writer.poll() is None, "the writer died before committing its first documents"
                backend = int(lines[0][1])
                async with blocker.transaction():
                    await blocker.execute("LOCK TABLE search_stats IN EXCLUSIVE MODE")
                    await wait_for(conn, BLOCKED_MID_TRANSACTION, backend, what="the writer to block mid-transaction")
                    os.kill(writer.pid, signal.SIGKILL)
                    writer.wait(timeout=30)
                reader.join(10)
                in_flight = [line for line in lines if line[0] == "begin"][-1]
                # The killed client's backend finds the dead socket once it stops waiting, and rolls back.
                await wait_for(conn, "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", backend,
                               what="the killed writer's backend to exit")
                assert await conn.fetchval("SELECT count(*) FROM search_documents") > 0
                assert await conn.fetchval("SELECT count(*) FROM search_documents WHERE content_hash = $1",
                                           in_flight[2]) == 0, "the document being written when killed is visible"
                assert await consistency_problems(conn) == []
            finally:
                if writer.poll() is None:
                    writer.kill()
                    writer.wait(10)
