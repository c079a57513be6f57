"""A hung database opens the breaker (issue 8 §4), end to end against the real embedded PostgreSQL.

The attack: a database that accepts queries and never answers. Before the fix, the tool's deadline
(and the rate store's timeout) sat outside the breaker, so each call cut short reached the breaker as
a cancellation, which it ignores; the breaker stayed closed with 0 calls counted and every caller
kept waiting out its full deadline against the hung database.

How the database is hung: either the tool sleeps in it longer than its deadline (`pg_sleep(3)` under
a 0.5 s timeout, as in the issue), or the test's own connection holds an `ACCESS EXCLUSIVE` lock on
a table the tool reads, as a stuck migration or another replica's long transaction would.

How "did not reach the database" is proven, without timing: every call that gets a connection first
takes `nextval('hang_hits')`. A sequence is not transactional, so the bump survives the cancellation
of the query that follows, and its value, read from another connection, counts database visits.

The breaker runs on a fake clock so that "open" lasts exactly until the test says; everything else
(pool, queries, lock waits, deadlines, cancellation requests to PostgreSQL) is real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.db.migrate import APP_ROLE
from shared.db.pool import Database, database_failure
from shared.db.rate_store import SharedRateLimiter, store_key
from shared.errors import Unavailable
from shared.identity import Principal
from shared.policy import RETRY, Policy
from shared.resilience.breaker import BreakerPolicy, CircuitBreaker
from shared.resilience.limits import Rate
from shared.server import SuiteServer
from shared.tool import ToolPolicy, guard_tool
from tests.support.clock import FakeClock

CALLER = Principal("hang-tester", frozenset({"hang:read"}), "test")
POLICY = BreakerPolicy(window_seconds=30, failure_rate=0.5, minimum_calls=4, open_seconds=5, half_open_calls=1)

app = SuiteServer("hang")


@app.tool(Policy(scopes={"hang:read"}, read_only=True, timeout=0.5, retry=RETRY))
async def sleepy() -> str:
    """Sleeps in the database for 3 s, six times its deadline."""
    async with app.db.acquire() as conn:
        await conn.fetchval("SELECT nextval('hang_hits')")
        await conn.execute("SELECT pg_sleep(3)")
    return "finished"


@app.tool(Policy(scopes={"hang:read"}, read_only=True, timeout=0.5, retry=RETRY))
async def count_rows() -> int:
    """Reads a table that the test may hold locked."""
    async with app.db.acquire() as conn:
        await conn.fetchval("SELECT nextval('hang_hits')")
        return await conn.fetchval("SELECT count(*) FROM hang_target")


@pytest.fixture(scope="module")
async def hang_url(make_database, db_connection) -> AsyncIterator[str]:
    async with make_database() as url:
        async with db_connection(url) as conn:
            await conn.execute("CREATE SEQUENCE hang_hits; CREATE TABLE hang_target (id int); "
                               "INSERT INTO hang_target VALUES (1), (2); "
                               f"GRANT USAGE ON SEQUENCE hang_hits TO {APP_ROLE}; "
                               f"GRANT SELECT ON hang_target TO {APP_ROLE}")
        yield url


@pytest.fixture
async def admin(hang_url, db_connection) -> AsyncIterator[asyncpg.Connection]:
    async with db_connection(hang_url) as conn:
        yield conn


async def visits(admin: asyncpg.Connection) -> int:
    """How many calls have reached the database so far."""
    return await admin.fetchval("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM hang_hits")


def fake_breaker() -> tuple[CircuitBreaker, FakeClock, list[tuple[str, str]]]:
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    breaker = CircuitBreaker("database", POLICY, clock=clock, is_failure=database_failure,
                             on_state_change=lambda _name, old, new: changes.append((old, new)))
    return breaker, clock, changes


async def test_a_sleeping_database_opens_the_breaker_and_later_calls_fail_fast(connect, hang_url, admin):
    async with connect(app, principal=CALLER, url=hang_url) as client:
        breaker, _clock, changes = fake_breaker()
        app.db.breaker = breaker
        for _ in range(POLICY.minimum_calls):
            result = await client.call_tool("sleepy", {})
            assert result.is_error and result.content[0].text.startswith("timeout:"), result.content
        assert breaker.state == "open"
        assert changes == [("closed", "open")]
        assert breaker.snapshot()["failures"] == POLICY.minimum_calls  # every cut-short call counted
        reached = await visits(admin)
        assert reached == POLICY.minimum_calls
        for _ in range(5):
            result = await client.call_tool("sleepy", {})
            assert result.is_error
            text = result.content[0].text
            assert text.startswith("unavailable:") and "retry in 5.0 s" in text, text
        assert await visits(admin) == reached  # rejected by the breaker: no call touched the database
    rows = await admin.fetch("SELECT error_class FROM audit_log WHERE tool = 'sleepy' AND principal = $1 ORDER BY seq",
                             CALLER.id)
    assert [r["error_class"] for r in rows] == ["timeout"] * POLICY.minimum_calls + ["unavailable"] * 5


async def test_a_locked_table_opens_the_breaker_which_recovers_through_half_open(connect, hang_url, admin):
    async with connect(app, principal=CALLER, url=hang_url) as client:
        breaker, clock, changes = fake_breaker()
        app.db.breaker = breaker
        assert (await client.call_tool("count_rows", {})).structured_content == {"result": 2}
        locker = admin.transaction()
        await locker.start()
        await admin.execute("LOCK TABLE hang_target IN ACCESS EXCLUSIVE MODE")
        try:
            for _ in range(POLICY.minimum_calls):  # 1 success + 3 timeouts = 75% failures over 4 calls
                if breaker.state == "open":
                    break
                result = await client.call_tool("count_rows", {})
                assert result.is_error and result.content[0].text.startswith("timeout:"), result.content
            assert breaker.state == "open"
            reached = await visits(admin)
            result = await client.call_tool("count_rows", {})
            assert result.is_error and result.content[0].text.startswith("unavailable:")
            assert await visits(admin) == reached

            clock.advance(POLICY.open_seconds)
            assert breaker.state == "half_open"
            result = await client.call_tool("count_rows", {})  # the probe meets the still-held lock
            assert result.is_error and result.content[0].text.startswith("timeout:")
            assert breaker.state == "open"  # a timed-out probe re-opens
            assert await visits(admin) == reached + 1
        finally:
            await locker.rollback()  # the database answers again

        result = await client.call_tool("count_rows", {})
        assert result.is_error and "unavailable" in result.content[0].text  # still open: no visit
        assert await visits(admin) == reached + 1
        clock.advance(POLICY.open_seconds)
        assert (await client.call_tool("count_rows", {})).structured_content == {"result": 2}
        assert breaker.state == "closed"
        assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
                           ("open", "half_open"), ("half_open", "closed")]
        assert (await client.call_tool("count_rows", {})).structured_content == {"result": 2}


async def test_a_client_cancellation_is_not_counted_but_a_deadline_is(hang_url, admin):
    """The same hung query: cancelled by the caller it says nothing about the database; cut short by
    the tool's deadline it does."""
    db = Database(hang_url, min_size=1, max_size=4)
    breaker, _clock, _changes = fake_breaker()
    db.breaker = breaker
    await db.open()
    entered = asyncio.Event()

    async def body() -> int:
        async with db.acquire() as conn:
            entered.set()
            return await conn.fetchval("SELECT count(*) FROM hang_target")

    patient = guard_tool(body, ToolPolicy.resolve("patient", Policy(read_only=True, retry=RETRY, timeout=30)))
    hasty = guard_tool(body, ToolPolicy.resolve("hasty", Policy(read_only=True, retry=RETRY, timeout=0.3)))
    locker = admin.transaction()
    await locker.start()
    await admin.execute("LOCK TABLE hang_target IN ACCESS EXCLUSIVE MODE")
    try:
        for _ in range(POLICY.minimum_calls + 2):
            assert breaker.state == "closed"  # (were hang-ups counted, the next call would never start)
            entered.clear()
            task = asyncio.create_task(patient())
            await entered.wait()
            task.cancel()  # the client hung up while the query waited
            with pytest.raises(asyncio.CancelledError):
                await task
        assert breaker.state == "closed"
        assert breaker.snapshot()["calls"] == 0

        from mcp.server.mcpserver.exceptions import ToolError

        with pytest.raises(ToolError, match="^timeout:"):
            await hasty()
        assert breaker.snapshot()["failures"] == 1
    finally:
        await locker.rollback()
        await db.close()


async def test_asyncpg_command_timeout_counts_as_a_failure(hang_url, admin):
    db = Database(hang_url, min_size=1, max_size=2, command_timeout=0.3)
    breaker, _clock, _changes = fake_breaker()
    db.breaker = breaker
    await db.open()
    locker = admin.transaction()
    await locker.start()
    await admin.execute("LOCK TABLE hang_target IN ACCESS EXCLUSIVE MODE")
    try:
        for _ in range(POLICY.minimum_calls):
            with pytest.raises(TimeoutError):
                async with db.acquire() as conn:
                    await conn.fetchval("SELECT count(*) FROM hang_target")
        assert breaker.state == "open"
        with pytest.raises(Unavailable, match="too many recent failures"):
            async with db.acquire():
                pass
    finally:
        await locker.rollback()
        await db.close()


async def test_the_rate_store_timeout_counts_and_an_open_breaker_skips_the_store(hang_url, admin):
    db = Database(hang_url, min_size=1, max_size=4)
    breaker, clock, _changes = fake_breaker()
    db.breaker = breaker
    await db.open()
    limiter = SharedRateLimiter(db, timeout_s=0.3)
    key, rate = ("rate-hang", "t"), Rate(1000, per=1.0)
    stored = "SELECT count(*) FROM rate_limits WHERE key = $1"
    locker = admin.transaction()
    await locker.start()
    await admin.execute("LOCK TABLE rate_limits IN ACCESS EXCLUSIVE MODE")
    try:
        for n in range(POLICY.minimum_calls):
            await limiter.check(key, rate)  # the store hangs: per-process limit after 0.3 s
            assert limiter.fallbacks == n + 1
        assert breaker.state == "open"
        assert breaker.snapshot()["failures"] == POLICY.minimum_calls
    finally:
        await locker.rollback()
    try:
        # The store answers again, but the open breaker keeps the limiter off it: no row is written.
        await limiter.check(key, rate)
        assert limiter.fallbacks == POLICY.minimum_calls + 1
        assert await admin.fetchval(stored, store_key(key)) == 0
        clock.advance(POLICY.open_seconds)
        await limiter.check(key, rate)  # the half-open probe reaches the store and succeeds
        assert limiter.fallbacks == POLICY.minimum_calls + 1
        assert await admin.fetchval(stored, store_key(key)) == 1
        assert breaker.state == "closed"
    finally:
        await db.close()
