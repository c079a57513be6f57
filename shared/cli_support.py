"""What every command-line module needs: the database URL in use and a one-connection runner.

Kept apart from `cli.py` so sub-command modules (audit, tokens) can use it without importing the
command line itself (no import cycle).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from shared.config import Settings


def database_url(settings: Settings | None = None) -> str:
    from shared.embedded_db import resolve_database_url

    return resolve_database_url(settings or Settings.from_env())


def run_with_connection(work: Callable[[Any], Awaitable[int]], *, migrate_first: bool = True) -> int:
    import asyncpg

    from shared.migrate import prepare_database

    async def main() -> int:
        url = database_url()
        if migrate_first:
            await prepare_database(url)
        conn = await asyncpg.connect(url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(main())
