"""A throwaway, migrated database for benchmarks and evaluations, dropped afterwards.

Uses `DATABASE_URL`'s server if set, else the embedded one, so a benchmark never touches the
suite's own data.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.config import Settings
from shared.db.embedded import resolve_database_url
from shared.db.migrate import prepare_database


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    base = resolve_database_url(Settings.from_env())
    name = f"{prefix}_{os.getpid()}"
    admin = await asyncpg.connect(_with_database(base, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
        url = _with_database(base, name)
        await prepare_database(url)
        try:
            yield url
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
