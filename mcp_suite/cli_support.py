"""What every command-line module needs: the database in use, a one-connection runner, user errors.

Kept apart from `cli.py` so sub-command modules (audit, tokens) can use it without importing the
command line itself (no import cycle).

A user's mistake (an unknown name, a bad time, an unreachable database) raises `UserError`; `cli.main`
prints its one line and exits non-zero, so no traceback reaches the terminal for something the user
can fix.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shared.config import Settings, default_home


class UserError(Exception):
    """Something the user can fix; the message says what is wrong and what to do. Exit status 1."""

    exit_code = 1


def iso_time(text: str) -> str:
    """argparse `type=` for ISO 8601 times: refuses a bad one with an example, returns it unchanged."""
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time; write e.g. 2026-11-24 or 2026-11-24T09:00+00:00") from None
    return text


def safe_url(url: str) -> str:
    """A database URL fit to print: the password replaced by `***`."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable DATABASE_URL>"


def describe_database(settings: Settings) -> str:
    """One phrase naming the database commands use: `DATABASE_URL (…)` or `the embedded database under …`."""
    if settings.database_url:
        return f"DATABASE_URL ({safe_url(settings.database_url)})"
    from shared.db.embedded import data_dir

    return f"the embedded database under {data_dir(settings.home)}"


def announce_database(settings: Settings) -> None:
    """On stderr: which database, when it is not the default; a warning when a new one is created.

    A user who forgot `MCP_SUITE_HOME` (or set it in one shell only) would otherwise work on an
    empty second database without noticing.
    """
    from shared.db.embedded import is_initialised

    if settings.database_url or settings.home != default_home():
        print(f"database: {describe_database(settings)}", file=sys.stderr)
    if not settings.database_url and not is_initialised(settings.home):
        hint = "" if settings.home != default_home() else (
            " (MCP_SUITE_HOME is not set: set it to keep the suite's data elsewhere)")
        print(f"creating a new database under {settings.home / 'pg'}{hint}", file=sys.stderr)


def database_url(settings: Settings | None = None, *, announce: bool = True) -> str:
    """The URL commands connect to: `DATABASE_URL`, or the embedded server (started if needed)."""
    from shared.db.embedded import resolve_database_url

    settings = settings or Settings.from_env()
    if announce:
        announce_database(settings)
    return resolve_database_url(settings)


def unreachable(url: str, exc: BaseException) -> UserError:
    """The one-line error for a database that cannot be reached, with what to check."""
    reason = _reason(exc)
    return UserError(f"cannot reach the database at {safe_url(url)}: {reason}. Check that it runs and that "
                     "DATABASE_URL is right (or unset DATABASE_URL to use the embedded database)")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def connection_errors() -> tuple[type[BaseException], ...]:
    """What a failed connect raises: network errors, timeouts, and the server refusing us."""
    import asyncpg

    return (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidCatalogNameError, asyncpg.InvalidPasswordError, asyncpg.CannotConnectNowError)


@asynccontextmanager
async def connect(url: str, *, timeout: float = 10.0) -> AsyncIterator[Any]:
    """One asyncpg connection; an unreachable database becomes a `UserError`, not a traceback."""
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=timeout)
    except connection_errors() as exc:
        raise unreachable(url, exc) from None
    try:
        yield conn
    finally:
        await conn.close()


async def prepare(url: str) -> None:
    """Apply pending migrations, mapping an unreachable database to a `UserError`."""
    from shared.db.migrate import prepare_database

    try:
        await prepare_database(url)
    except connection_errors() as exc:
        raise unreachable(url, exc) from None


def run_with_connection(work: Callable[[Any], Awaitable[int]], *, migrate_first: bool = True) -> int:
    async def main() -> int:
        url = database_url()
        if migrate_first:
            await prepare(url)
        async with connect(url) as conn:
            return await work(conn)

    return asyncio.run(main())
