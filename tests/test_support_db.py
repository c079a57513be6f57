"""The test suite's connection helpers keep their promise: every connection they open is closed."""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.support.db import open_connection, open_connections


async def test_a_connection_is_closed_when_its_block_fails(db_connection):
    with pytest.raises(RuntimeError, match="boom"):
        async with db_connection() as conn:
            kept = conn
            assert await conn.fetchval("SELECT 1") == 1
            raise RuntimeError("boom")
    assert kept.is_closed()


async def test_several_connections_are_all_closed(database_url):
    async with open_connections(database_url, 3) as conns:
        pids = {await c.fetchval("SELECT pg_backend_pid()") for c in conns}
        assert len(pids) == 3  # three distinct sessions, open at once
    assert all(c.is_closed() for c in conns)


async def test_the_ones_already_open_are_closed_when_a_later_connect_fails(db_connection, database_url):
    """A role allowed one session: the second connect is refused, and the first must not be left open."""
    role = f"one_session_{uuid.uuid4().hex[:8]}"
    async with db_connection() as admin:
        await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER CONNECTION LIMIT 1")
        try:
            parts = urlsplit(database_url)
            as_role = urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResourceWarning)
                with pytest.raises(asyncpg.TooManyConnectionsError):
                    async with open_connections(as_role, 2):
                        pytest.fail("a second session was allowed")
                gc.collect()  # asyncpg warns about (and terminates) a connection dropped unclosed
            assert not [w for w in caught if "unclosed connection" in str(w.message)]
            sessions = "SELECT count(*) FROM pg_stat_activity WHERE usename = $1"
            for _ in range(200):  # a closed session's backend exits on its own time: wait for the condition
                if await admin.fetchval(sessions, role) == 0:
                    break
                await asyncio.sleep(0.05)
            assert await admin.fetchval(sessions, role) == 0
            async with open_connection(as_role) as conn:  # the one allowed session is free again
                assert await conn.fetchval("SELECT current_user") == role
        finally:
            await admin.execute(f"DROP ROLE {role}")
