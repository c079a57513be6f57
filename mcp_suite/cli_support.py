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
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, NoReturn
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


# --- the parsers every command uses (mcp_suite.cli, mcp_suite.tokens_cli) ---------------------------

EXAMPLES: dict[str, str] = {
    "mcp-suite": "examples:\n  mcp-suite doctor\n  mcp-suite servers\n  mcp-suite serve profiles\n"
                 "  mcp-suite serve all --transport http --port 8765\n\n"
                 "`mcp-suite COMMAND --help` shows each command's options and an example.",
    "mcp-suite serve": "examples:\n  mcp-suite serve profiles                       # stdio, for Claude Desktop\n"
                       "  mcp-suite serve all --transport http --port 8765\n"
                       "  mcp-suite serve all --transport http --workers 2\n"
                       "  mcp-suite serve search --transport sse",
    "mcp-suite db": "examples:\n  mcp-suite db start    # pin the embedded server until `db stop`\n"
                    "  mcp-suite db url      # the running database's URL (never starts it)\n"
                    "  mcp-suite db status   # JSON; with DATABASE_URL set, whether it is reachable",
    "mcp-suite migrate": "example:\n  mcp-suite migrate",
    "mcp-suite audit": "examples:\n  mcp-suite audit tail -n 20 --follow\n"
                       "  mcp-suite audit search --tool update_profile --since 2026-11-24T00:00+00:00 --json\n"
                       "  mcp-suite audit verify",
    "mcp-suite claude-config": "examples:\n  mcp-suite claude-config\n  mcp-suite claude-config search",
    "mcp-suite servers": "examples:\n  mcp-suite servers\n  mcp-suite servers search --json",
    "mcp-suite doctor": "examples:\n  mcp-suite doctor\n  mcp-suite doctor --deep",
    "mcp-suite bench": "examples:\n  mcp-suite bench overhead\n  mcp-suite bench http --json --workers 1,2",
    "mcp-suite bench overhead": "example:\n  mcp-suite bench overhead --calls 2000 --rounds 3 --json",
    "mcp-suite tokens": "examples:\n  mcp-suite tokens create --principal alice --scopes \"profiles:read\"\n"
                        "  mcp-suite tokens list\n  mcp-suite tokens revoke tok_0123456789ab",
    "mcp-suite tokens create": "example:\n  mcp-suite tokens create --principal alice --scopes \"profiles:read "
                               "profiles:write\" --expires 30d",
    "mcp-suite bench http": "examples:\n  mcp-suite bench http --json --workers 1,2\n"
                            "  mcp-suite bench http --protocol sessionless --clients 32 --seconds 30",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each option's help; descriptions and examples keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # The one hook argparse offers for this: "(default: False)" or "(default: None)" says nothing.
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class SuiteParser(argparse.ArgumentParser):
    """Every (sub-)parser, including those other modules add, gets the formatter and its examples."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        description = kwargs.get("description")
        if description and "\n" not in description:
            kwargs["description"] = textwrap.fill(description, 100)
        super().__init__(*args, **kwargs)
        if self.epilog is None:
            self.epilog = EXAMPLES.get(self.prog)

    def error(self, message: str) -> NoReturn:
        """One line that says what is wrong and where to read more, not a usage dump."""
        print(f"mcp-suite: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)
