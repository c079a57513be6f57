"""One asyncpg pool per server (`serve all` hosts several), opened in its lifespan, guarded by its breaker.

Every connection has the pgvector codec and a `command_timeout` (measured: without it a blackholed
connection hangs each call for minutes, and `asyncio.wait_for` cannot help because asyncpg's own
cancel request is unbounded). `acquire` always has a timeout: a full pool is a clear "busy" error,
never an endless wait. The server opens it in the background (see `SuiteServer`), so discovery
answers at once even while the database is starting or down; calls wait up to their acquire timeout.

The breaker counts a timeout as a database failure in every form it takes: asyncpg's
`command_timeout` (a `TimeoutError` inside the guard), PostgreSQL's `statement_timeout`
(`QueryCanceledError`), and a caller's deadline (`shared.resilience.deadline`: the tool's time limit, the rate
store's) that expires while a call waits for or holds a connection, which reaches the guard as a
cancellation. Waiting for a connection counts too: when the database hangs, the pool fills with hung
calls, and the callers queued behind them are its victims as much as those holding connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from shared.errors import Unavailable
from shared.resilience.breaker import BreakerPolicy, CircuitBreaker
from shared.resilience.retry import is_transient

log = logging.getLogger(__name__)


def database_failure(exc: BaseException) -> bool:
    """Only a failing database opens its breaker: a lost link or a timeout, never a constraint error.

    An expired `shared.resilience.deadline` is judged here as a `TimeoutError` (see `breaker._Guard`)."""
    return is_transient(exc) or isinstance(exc, TimeoutError | asyncpg.exceptions.QueryCanceledError)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection set-up: the pgvector codec when the extension exists."""
    has_vector = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'vector')")
    if has_vector:
        from pgvector.asyncpg import register_vector

        await register_vector(conn)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's RESET ALL on release: it costs a round trip per call. Tools therefore keep
    session state transaction-local (`SET LOCAL`); an open transaction is still rolled back."""


class Database:
    """The process's database access: a pool, its breaker, and bounded waits."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = 10.0,
        acquire_timeout: float = 5.0,
        breaker: CircuitBreaker | None = None,
        session_settings: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.session_settings = dict(session_settings or {})
        self.min_size = min_size
        self.max_size = max_size
        self.command_timeout = command_timeout
        self.acquire_timeout = acquire_timeout
        self.breaker = breaker or CircuitBreaker(
            "database", BreakerPolicy(window_seconds=30, minimum_calls=10, open_seconds=5),
            is_failure=database_failure,
        )
        self._pool: asyncpg.Pool | None = None
        self._ready = asyncio.Event()
        self.last_error: str | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise Unavailable("the database is not connected yet; retry shortly", retry_after=1.0)
        return self._pool

    async def open(self) -> None:
        """Create the pool now (raises if the database is unreachable)."""
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.min_size,
                max_size=self.max_size,
                command_timeout=self.command_timeout,
                init=init_connection,
                timeout=self.acquire_timeout,
                server_settings=self.session_settings or None,
                reset=_keep_session,
            )
        self._ready.set()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._ready.clear()

    async def wait_ready(self, timeout: float | None = None) -> None:
        if self._ready.is_set():
            return
        try:
            await asyncio.wait_for(self._ready.wait(), timeout or self.acquire_timeout)
        except TimeoutError:
            raise Unavailable("the database is not reachable; retry shortly", retry_after=1.0) from None

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, guarded by the breaker; a full pool fails fast with a clear error."""
        await self.wait_ready()
        async with self.breaker.guard():
            try:
                conn_cm = self.pool.acquire(timeout=self.acquire_timeout)
                conn = await conn_cm.__aenter__()
            except TimeoutError:
                raise Unavailable("the database is busy (no free connection); retry shortly",
                                  retry_after=0.5) from None
            try:
                yield conn
            finally:
                await conn_cm.__aexit__(None, None, None)

    @asynccontextmanager
    async def transaction(self, **options: Any) -> AsyncIterator[asyncpg.Connection]:
        async with self.acquire() as conn, conn.transaction(**options):
            yield conn

    async def health(self) -> dict[str, object]:
        """Cheap liveness of the database for readiness checks and the CLI."""
        state: dict[str, object] = {"breaker": self.breaker.snapshot(), "connected": self._pool is not None}
        if self._pool is None:
            state["ok"] = False
            state["error"] = self.last_error
            return state
        try:
            async with self.acquire() as conn:
                await conn.fetchval("SELECT 1")
            state["ok"] = True
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            state["ok"] = False
            state["error"] = type(exc).__name__
        state["pool_size"] = self._pool.get_size()
        state["pool_idle"] = self._pool.get_idle_size()
        return state
