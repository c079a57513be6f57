"""Faults injected into real calls: lost connections, slow queries, a full pool, a dead database.

Only time and faults are faked (a breaker clock, a terminated backend, a refused port); the pool,
the database and the MCP sessions are real. No assertion depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from shared.db.migrate import APP_ROLE
from shared.db.pool import Database, database_failure
from shared.errors import Unavailable
from shared.identity import Principal
from shared.policy import RETRY, Policy
from shared.resilience.breaker import BreakerPolicy, CircuitBreaker
from shared.resilience.limits import Rate
from shared.server import SuiteServer
from tests.support.clock import FakeClock

CALLER = Principal("ops", frozenset({"faults:read", "faults:write"}), "test")

app = SuiteServer("faults")
attempts: dict[str, int] = {"read": 0, "write": 0, "idempotent": 0}


@app.tool(Policy(scopes={"faults:read"}, read_only=True, timeout=5.0, rate=Rate(1000, per=1.0), retry=RETRY))
async def flaky_read() -> dict[str, int]:
    """Loses its connection on the first attempt (the backend is terminated mid-query)."""
    attempts["read"] += 1
    async with app.db.acquire() as conn:
        if attempts["read"] == 1:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return {"attempts": attempts["read"], "answer": await conn.fetchval("SELECT 42")}


@app.tool(Policy(scopes={"faults:write"}, timeout=5.0))
async def flaky_write() -> dict[str, int]:
    """Not idempotent: a lost connection must not be retried."""
    attempts["write"] += 1
    async with app.db.acquire() as conn:
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    return {"attempts": attempts["write"]}


@app.tool(Policy(scopes={"faults:write"}, idempotent=True, timeout=5.0, retry=RETRY))
async def flaky_idempotent_write(key: str) -> dict[str, int]:
    """A write that is safe to repeat (an upsert) but not read-only: a lost connection is retried."""
    attempts["idempotent"] += 1
    async with app.db.acquire() as conn:
        if attempts["idempotent"] == 1:
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        await conn.execute("INSERT INTO fault_marks (key) VALUES ($1) ON CONFLICT (key) DO NOTHING", key)
    return {"attempts": attempts["idempotent"]}


@app.tool(Policy(scopes={"faults:read"}, read_only=True, timeout=0.5, retry=RETRY))
async def slow_read() -> str:
    """Sleeps in the database far longer than its deadline: only the deadline can end the call."""
    async with app.db.acquire() as conn:
        await conn.execute("SELECT pg_sleep(3600) /* slow_read */")
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


async def test_an_idempotent_write_is_retried_after_a_lost_connection(connect, db_connection):
    """Idempotent but not read-only: the policy allows retries, and they happen."""
    async with db_connection() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS fault_marks (key text PRIMARY KEY); "
                           f"GRANT SELECT, INSERT ON fault_marks TO {APP_ROLE}")  # servers connect as the app role
        key = uuid.uuid4().hex
        attempts["idempotent"] = 0
        async with connect(app, principal=CALLER) as client:
            listed = {tool.name: tool for tool in (await client.list_tools()).tools}
            result = await client.call_tool("flaky_idempotent_write", {"key": key})
        annotations = listed["flaky_idempotent_write"].annotations
        assert annotations.idempotent_hint is True and annotations.read_only_hint is False
        assert app.policies["flaky_idempotent_write"].retry is not None
        assert result.is_error is False, result.content
        assert result.structured_content == {"attempts": 2}
        assert await conn.fetchval("SELECT count(*) FROM fault_marks WHERE key = $1", key) == 1


async def test_deadline_cuts_a_slow_query(connect, db_connection):
    """The query sleeps for an hour, so a `timeout` answer can only come from the deadline; and the
    query is cancelled in the database too, not left running on an abandoned connection."""
    async with connect(app, principal=CALLER) as client:
        result = await asyncio.wait_for(client.call_tool("slow_read", {}), 60)  # a hang guard, not a measurement
    assert result.is_error and result.content[0].text.startswith("timeout:"), result.content
    async with db_connection() as conn:
        still_running = ("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                         "AND state = 'active' AND query LIKE '%/* slow_read */'")
        for _ in range(200):  # the cancel request travels on its own connection: wait for the condition
            if await conn.fetchval(still_running) == 0:
                break
            await asyncio.sleep(0.05)
        assert await conn.fetchval(still_running) == 0


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


async def test_a_database_that_never_opened_is_a_clear_unavailable(tmp_path):
    db = Database(f"postgresql://nobody@/none?host={tmp_path}", acquire_timeout=0.3)
    with pytest.raises(Unavailable, match="not reachable"):
        async with db.acquire():
            pass
    assert db.breaker.snapshot()["calls"] == 0  # refused before the breaker: nothing was tried
    await db.close()


async def test_dead_database_opens_the_breaker():
    """The pool is up (min_size=0 connects lazily) but every connection attempt is refused."""
    db = Database("postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=2, acquire_timeout=0.3)
    await db.open()
    try:
        for _ in range(db.breaker.policy.minimum_calls):
            with pytest.raises(ConnectionRefusedError):  # each call really tried, and was refused
                async with db.acquire():
                    pass
        assert db.breaker.state == "open"
        assert db.breaker.snapshot()["failures"] == db.breaker.policy.minimum_calls
        with pytest.raises(Unavailable, match="too many recent failures") as info:
            async with db.acquire():  # refused by the breaker: no connection attempt
                pass
        assert info.value.retry_after is not None and info.value.retry_after > 0
    finally:
        await db.close()


async def test_breaker_opens_after_repeated_connection_failures_and_recovers_through_half_open(database_url):
    """A real pool whose connections keep dying; the breaker's clock is the only fake."""
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    policy = BreakerPolicy(window_seconds=30, minimum_calls=10, open_seconds=5, half_open_calls=1)
    breaker = CircuitBreaker("database", policy, clock=clock, is_failure=database_failure,
                             on_state_change=lambda _name, old, new: changes.append((old, new)))
    db = Database(database_url, min_size=1, max_size=2, breaker=breaker)
    await db.open()
    kill = "SELECT pg_terminate_backend(pg_backend_pid())"
    try:
        failures = 0
        for _ in range(12):
            try:
                async with db.acquire() as conn:
                    await conn.execute(kill)
            except Unavailable:
                break
            except Exception:  # noqa: BLE001 - the injected fault
                failures += 1
        assert breaker.state == "open"
        with pytest.raises(Unavailable, match="unavailable"):
            async with db.acquire():
                pass
        assert failures == policy.minimum_calls  # opened on the tenth failure, not later

        clock.advance(policy.open_seconds)
        assert breaker.state == "half_open"
        with pytest.raises(asyncpg.PostgresConnectionError):
            async with db.acquire() as conn:
                await conn.execute(kill)  # the probe fails: open again
        assert breaker.state == "open"
        clock.advance(policy.open_seconds)
        async with db.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1  # the probe succeeds: closed
        assert breaker.state == "closed"
        assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
                           ("open", "half_open"), ("half_open", "closed")]
        assert breaker.snapshot()["calls"] == 0  # a fresh window after recovery
    finally:
        await db.close()


async def test_server_started_while_its_database_is_missing_recovers(pg_server, database_url, db_connection):
    from tests.conftest import _url_for, test_settings

    name = f"late_{uuid.uuid4().hex[:8]}"
    url = _url_for(pg_server, name)
    late = SuiteServer("late")
    late.configure(test_settings(url), database_url=url)
    starting = asyncio.create_task(late._start_logged())
    try:
        with pytest.raises(Unavailable):
            await late.wait_ready(0.8)  # the database does not exist yet: calls are refused clearly
        async with db_connection(_url_for(pg_server, "postgres")) as admin:
            await admin.execute(f"CREATE DATABASE {name}")
        await late.wait_ready(15)  # the retry loop got there without a restart
        async with late.db.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await late.stop()
