"""A process killed mid-ingest leaves the index exactly consistent: no document is half-visible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

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
        await index.replace_document(conn, doc)
        if n == 3:
            print("writing", flush=True)

asyncio.run(main(sys.argv[1]))
"""


async def test_kill_minus_nine_mid_ingest_leaves_no_partial_document(make_database):
    async with make_database() as url:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout.readline().strip() == "writing"
            time.sleep(1.5)  # many transactions are in flight or half-sent by now
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(timeout=30)
        conn = await asyncpg.connect(url)
        try:
            # The killed backend's transaction is rolled back once the server notices the dead socket.
            for _ in range(50):
                if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                           " AND pid <> pg_backend_pid() AND state <> 'idle'"):
                    break
                time.sleep(0.1)
            assert await conn.fetchval("SELECT count(*) FROM search_documents") > 0
            assert await consistency_problems(conn) == []
        finally:
            await conn.close()
