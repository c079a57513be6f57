"""Ordered plain-SQL migrations, applied once each and checksummed.

Files are `NNNN_name.sql`, applied in numeric order, each in its own transaction. A table records
what ran and the file's SHA-256: editing an applied file is an error, not a silent drift. Concurrent
starts (several servers on one database) serialise on an advisory lock.

Where the files live: the core's schema (audit log, tokens, rate limits, roles) in the top-level
`migrations` package; each server's own schema in a package of its own (`servers/profiles/migrations`),
registered under the `mcp_suite.migrations` entry-point group in its distribution's metadata. The core
finds them there without importing any server, and applies all of them together in one global version
order (version numbers are unique across packages), so one database has one linear history whichever
server starts first.

Roles: the URL given to `apply` is an administrator's (the embedded superuser, or the compose
`POSTGRES_USER`). Before the files run, `ensure_roles` creates two roles: `mcp_suite_owner` (no login)
owns every object, and `mcp_suite_app` is what servers log in as (see `app_database_url`). Each
migration runs under `SET ROLE mcp_suite_owner`, so the app role can use what the migrations grant it
and nothing more: it cannot alter tables, disable triggers or rewrite the audit log. Extensions the
files need (`CREATE EXTENSION IF NOT EXISTS x`) are created first, as the administrator, since some
(pgvector) need a superuser.

A file's checksum ignores `--` comment lines, so a comment can be corrected after release.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from shared import config

if TYPE_CHECKING:
    import asyncpg  # imported where a connection is opened: `mcp-suite --help` stays light

LOCK_KEY = 0x6D6370_5375_69  # "mcpSui": any constant unique to this suite
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_EXTENSION = re.compile(r"CREATE EXTENSION IF NOT EXISTS (\w+)", re.IGNORECASE)
# Whole-file checksums recorded by earlier releases for files whose comments were corrected since.
SUPERSEDED_CHECKSUMS = {
    1: {"79c954c1802191f41c14039d184d9816f2ec7bc3b4eca6155e78819e941f7cd9"},  # 0001: audit comments
}
ENTRY_POINT_GROUP = "mcp_suite.migrations"
OWNER_ROLE = "mcp_suite_owner"
APP_ROLE = "mcp_suite_app"


class MigrationError(RuntimeError):
    """The database's migration history disagrees with the files."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the statements, comment lines left out (comments may be corrected)."""
        code = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return hashlib.sha256(code.encode()).hexdigest()

    @property
    def legacy_checksum(self) -> str:
        """What earlier releases recorded: the SHA-256 of the whole file."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """The core's migrations: the installed `migrations` package."""
    return Path(str(importlib.resources.files("migrations")))


def migration_sources() -> list[Path]:
    """`MCP_SUITE_MIGRATIONS` alone if set; else the core's folder, then each registered server's
    (`mcp_suite.migrations` entry points, by name).

    The suite's own distribution always registers its servers' packages, so finding none means its
    metadata is missing or stale (a checkout run without `pip install -e .`, or installed before the
    servers' schemas moved): that is refused, since applying the core alone would report success and
    leave the servers' tables missing.
    """
    override = config.load(config.DatabaseRoleSettings).migrations
    if override:
        return [Path(override)]
    registered = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if not registered:
        raise MigrationError("no server migrations are registered (the installed package metadata is missing "
                             "or stale): reinstall with `make setup` or `pip install -e .`")
    return [migrations_dir(), *(Path(str(importlib.resources.files(entry.value))) for entry in registered)]


def load(directory: Path | None = None) -> list[Migration]:
    """Every migration in version order: of `directory` alone when given, else of `migration_sources()`."""
    found: dict[int, tuple[Migration, Path]] = {}
    for folder in [directory] if directory is not None else migration_sources():
        for path in sorted(folder.glob("*.sql")):
            match = _NAME.match(path.name)
            if not match:
                raise MigrationError(f"migration file name must look like 0001_name.sql: {path.name}")
            migration = Migration(int(match.group(1)), path.name, path.read_text(encoding="utf-8"))
            if migration.version in found:
                other = found[migration.version][0].name
                raise MigrationError(f"two migration files share version {migration.version}: {other} and "
                                     f"{path.name}; give the newer one the next free number")
            found[migration.version] = (migration, folder)
    return [found[version][0] for version in sorted(found)]


_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def apply(conn: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; return the names applied. Safe to call from many processes at once."""
    pending = load(directory)
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(_HISTORY)
        await ensure_roles(conn, pending)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {row["version"]: row for row in rows}
        for migration in pending:
            row = done.get(migration.version)
            if row is not None:
                accepted = {migration.checksum, migration.legacy_checksum,
                            *SUPERSEDED_CHECKSUMS.get(migration.version, ())}
                if row["checksum"] not in accepted:
                    raise MigrationError(
                        f"migration {migration.name} was edited after it was applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f"SET LOCAL ROLE {OWNER_ROLE}")
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now


async def pending(conn: asyncpg.Connection, directory: Path | None = None, *,
                  migrations: list[Migration] | None = None) -> list[str]:
    """Names of migrations not yet applied (for readiness checks). A caller that asks often passes the
    `migrations` it loaded once, so the files and the package metadata are not read each time."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied = set()
    if exists:
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    known = load(directory) if migrations is None else migrations
    return [m.name for m in known if m.version not in applied]


async def ensure_roles(conn: asyncpg.Connection, migrations: list[Migration]) -> None:
    """Create the owner and app roles, the extensions the files need, and hand every object to the owner.

    Idempotent; also upgrades a database migrated before the roles existed (its objects belonged to
    the administrator). The app role's password comes from `MCP_SUITE_APP_DB_PASSWORD` when set.
    """
    await conn.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
                CREATE ROLE {OWNER_ROLE} NOLOGIN;
            END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} LOGIN NOINHERIT;
            END IF;
        END $$""")
    if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        await conn.execute(f"GRANT {OWNER_ROLE} TO current_user")
    password = config.load(config.DatabaseRoleSettings).app_password
    if password:
        await conn.execute(f"ALTER ROLE {APP_ROLE} PASSWORD {_literal(password)}")
    await conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {OWNER_ROLE}")
    await conn.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {APP_ROLE}")
    for name in sorted({m.lower() for migration in migrations for m in _EXTENSION.findall(migration.sql)}):
        await conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}"')
    rows = await conn.fetch(f"""
        SELECT 'TABLE' AS kind, format('%I', c.relname) AS name FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
           AND pg_get_userbyid(c.relowner) <> '{OWNER_ROLE}'
           AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
        UNION ALL
        SELECT 'FUNCTION', p.oid::regprocedure::text FROM pg_proc p
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> '{OWNER_ROLE}'
           AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""")
    for row in rows:
        await conn.execute(f"ALTER {row['kind']} {row['name']} OWNER TO {OWNER_ROLE}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def app_database_url(admin_url: str) -> str:
    """The URL servers connect with: `MCP_SUITE_APP_DATABASE_URL`, or the admin URL as `mcp_suite_app`.

    With the embedded database (local socket, trust authentication) no password is needed; elsewhere set
    `MCP_SUITE_APP_DB_PASSWORD` for both `mcp-suite migrate` (which sets it) and the servers.
    """
    roles = config.load(config.DatabaseRoleSettings)
    if roles.app_database_url:
        return roles.app_database_url
    parts = urlsplit(admin_url)
    if parts.username == APP_ROLE:  # already the app role's URL (a server given no administrator URL)
        return admin_url
    host = parts.netloc.rpartition("@")[2]
    password = roles.app_password
    user = APP_ROLE + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


async def prepare_database(url: str) -> list[str]:
    """Connect, apply pending migrations, disconnect (serialised across processes by the lock).

    Connected as the app role (a deployment that gives servers no administrator URL), nothing can be
    applied: pending migrations are reported as an error telling the operator what to run.
    """
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("SELECT current_user") == APP_ROLE:
            missing = await pending(conn)
            if missing:
                raise MigrationError(f"migrations {', '.join(missing)} are pending; "
                                     "run `mcp-suite migrate` with an administrator DATABASE_URL")
            return []
        return await apply(conn)
    finally:
        await conn.close()
