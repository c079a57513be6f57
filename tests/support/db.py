"""One way for a test to open a database connection: connect with asyncpg, and always close.

Tests read and tamper with the database behind the servers' backs (audit rows, a role's rights, a lock
another replica holds). Written by hand, `conn = await asyncpg.connect(url)` ... `finally: await conn.close()`
was repeated some sixty times, and every copy that forgot the `try` leaked a connection into the one
PostgreSQL server the whole session shares when an assertion failed.

    async with open_connection(url) as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 3

    async with open_connections(url, 4) as conns:  # racing migrators
        await asyncio.gather(*(migrate.apply(c) for c in conns))

In tests, the `db_connection` fixture (tests/conftest.py) opens the session's database by default.
A test that kills its connection, or proves something about a lost one, keeps its own `asyncpg.connect`:
these helpers are for connections that end when their block does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg


@asynccontextmanager
async def open_connection(url: str, **options: Any) -> AsyncIterator[asyncpg.Connection]:
    """An asyncpg connection to `url`, closed when the block ends, however it ends.

    `options` go to `asyncpg.connect` unchanged (`timeout=`, `server_settings=`, ...). To connect as the
    role the servers use, pass `shared.db.migrate.app_database_url(url)` as the URL.
    """
    conn = await asyncpg.connect(url, **options)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def open_connections(url: str, count: int, **options: Any) -> AsyncIterator[list[asyncpg.Connection]]:
    """`count` connections to `url` open at once; all that were opened are closed, even if a later one fails."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(open_connection(url, **options)) for _ in range(count)]


async def fetch_rows(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """One query's rows on a connection of its own (for helpers that only look)."""
    async with open_connection(url) as conn:
        return await conn.fetch(sql, *args)
