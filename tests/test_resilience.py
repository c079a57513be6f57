"""Faults injected into real calls: lost connections, slow queries, a full pool, a dead database."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.errors import Unavailable
from shared.identity import Principal
from shared.limits import Rate
from shared.pool import Database
from shared.server import SuiteServer

CALLER = Principal("ops", frozenset({"faults:read", "faults:write"}), "test")

app = SuiteServer("faults")
attempts: dict[str, int] = {"read": 0, "write": 0}


@app.tool(scopes={"faults:read"}, read_only=True, timeout=5.0, rate=Rate(1000, per=1.0))
async def flaky_read() -> dict[str, int]:
    """Loses its connection on the first attempt (the backend is terminated mid-query)."""
    attempts["read"] += 1
    async with app.db.acquire() as conn:
        if attempts["read"] == 1:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return {"attempts": attempts["read"], "answer": await conn.fetchval("SELECT 42")}


@app.tool(scopes={"faults:write"}, timeout=5.0)
async def flaky_write() -> dict[str, int]:
    """Not idempotent: a lost connection must not be retried."""
    attempts["write"] += 1
    async with app.db.acquire() as conn:
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    return {"attempts": attempts["write"]}


@app.tool(scopes={"faults:read"}, read_only=True, timeout=0.5)
async def slow_read() -> str:
    """Sleeps in the database longer than its deadline."""
    async with app.db.acquire() as conn:
        await conn.execute("SELECT pg_sleep(5)")
    return "finished"


async def test_lost_connection_is_retried_for_read_only_tools(connect):
    attempts["read"] = 0
    async with connect(app, principal=CALLER) as client:
        result = await client.call_tool("flaky_read", {})
    assert result.is_error is False, result.content
    assert result.structured_content == {"attempts": 2, "answer": 42}


async def test_lost_connection_is_not_retried_for_writes(connect):
    attempts["write"] = 0
    async with connect(app, principal=CALLER) as client:
        result = await client.call_tool("flaky_write", {})
    assert result.is_error and "unavailable" in result.content[0].text
    assert attempts["write"] == 1


async def test_deadline_cuts_a_slow_query(connect):
    async with connect(app, principal=CALLER) as client:
        started = asyncio.get_running_loop().time()
        result = await client.call_tool("slow_read", {})
        elapsed = asyncio.get_running_loop().time() - started
    assert result.is_error and "timeout" in result.content[0].text
    assert elapsed < 2.0


async def test_full_pool_fails_fast_with_a_clear_error(database_url):
    db = Database(database_url, min_size=1, max_size=1, acquire_timeout=0.2)
    await db.open()
    try:
        async with db.acquire():
            with pytest.raises(Unavailable, match="busy"):
                async with db.acquire():
                    pass
    finally:
        await db.close()


async def test_dead_database_opens_the_breaker(tmp_path):
    db = Database(f"postgresql://nobody@/none?host={tmp_path}", acquire_timeout=0.3)
    with pytest.raises(Unavailable):
        async with db.acquire():
            pass
    await db.close()


async def test_breaker_opens_after_repeated_connection_failures(database_url):
    db = Database(database_url, min_size=1, max_size=2)
    await db.open()
    try:
        failures = 0
        for _ in range(12):
            try:
                async with db.acquire() as conn:
                    await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            except Unavailable:
                break
            except Exception:  # noqa: BLE001 - the injected fault
                failures += 1
        assert db.breaker.state == "open"
        with pytest.raises(Unavailable, match="unavailable"):
            async with db.acquire():
                pass
        assert failures >= db.breaker.policy.minimum_calls
    finally:
        await db.close()


async def test_server_started_while_its_database_is_missing_recovers(pg_server, database_url):
    import asyncpg

    from tests.conftest import _url_for, test_settings

    name = f"late_{uuid.uuid4().hex[:8]}"
    url = _url_for(pg_server, name)
    late = SuiteServer("late")
    late.configure(test_settings(url), database_url=url)
    starting = asyncio.create_task(late._start_logged())
    try:
        with pytest.raises(Unavailable):
            await late.wait_ready(0.8)  # the database does not exist yet: calls are refused clearly
        admin = await asyncpg.connect(_url_for(pg_server, "postgres"))
        try:
            await admin.execute(f"CREATE DATABASE {name}")
        finally:
            await admin.close()
        await late.wait_ready(15)  # the retry loop got there without a restart
        async with late.db.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await late.stop()
