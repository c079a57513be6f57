"""Settings read once from the environment, so every module agrees on one configuration.

Policy lives in code as data (see `tool.ToolPolicy`); only deployment facts come from the environment:
where the database is, who the stdio caller is, and the pool's bounds.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STDIO_SCOPES = "*:read *:write"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "mcp-suite"


@dataclass(frozen=True)
class Settings:
    """Deployment settings. `database_url=None` means: run the embedded PostgreSQL under `home`."""

    database_url: str | None = None
    home: Path = field(default_factory=default_home)
    principal: str = "local"
    scopes: frozenset[str] = frozenset(DEFAULT_STDIO_SCOPES.split())
    pool_min_size: int = 1
    pool_max_size: int = 10
    command_timeout_s: float = 10.0
    acquire_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0
    audit_key: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        home = os.environ.get("MCP_SUITE_HOME")
        scopes = os.environ.get("MCP_SUITE_SCOPES", DEFAULT_STDIO_SCOPES)
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            home=Path(home).expanduser() if home else default_home(),
            principal=os.environ.get("MCP_SUITE_PRINCIPAL") or _os_user(),
            scopes=frozenset(scopes.replace(",", " ").split()),
            pool_min_size=_int("MCP_SUITE_POOL_MIN", 1),
            pool_max_size=_int("MCP_SUITE_POOL_MAX", 10),
            command_timeout_s=_float("MCP_SUITE_DB_COMMAND_TIMEOUT", 10.0),
            acquire_timeout_s=_float("MCP_SUITE_DB_ACQUIRE_TIMEOUT", 5.0),
            connect_timeout_s=_float("MCP_SUITE_DB_CONNECT_TIMEOUT", 10.0),
            audit_key=os.environ.get("MCP_SUITE_AUDIT_KEY") or None,
        )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"
