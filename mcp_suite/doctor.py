"""`mcp-suite doctor`: is this installation ready? One line per concern, each OK or what to fix.

Checks the home folder, the database (reachable, `vector` available, migrated), the embedding model
(offline files present, libraries installed; `--deep` loads it, ~10 s), API tokens, the HTTP settings,
and each registered server's settings (its `ServerSpec.settings`, from the registry: what it needs
that is unset, and the section's own `problems()`, e.g. search roots that are not folders). Every
setting's syntax was already checked by `mcp-suite` at start (a bad value stops it with one line).
Exit status 1 when anything is wrong (`FAIL`); `WARN` lines are things that work but may not be what
the user wants. It never creates or changes anything, except that an embedded database that exists
but is stopped is started for the check (and stops again after).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from mcp_suite.cli_support import UserError, connect, describe_database
from shared.config import AuthSettings, HttpSettings, Settings, default_home, load

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True)
class Check:
    status: str
    topic: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<5} {self.topic:<11} {self.detail}"


def check_home(settings: Settings) -> Check:
    source = "MCP_SUITE_HOME" if settings.home != default_home() else "default; set MCP_SUITE_HOME to move it"
    home = settings.home
    if home.exists() and not os.access(home, os.W_OK):
        return Check(FAIL, "home", f"{home} is not writable: fix its permissions or set MCP_SUITE_HOME")
    if not home.exists():
        return Check(WARN, "home", f"{home} ({source}) does not exist yet: the first command creates it")
    return Check(OK, "home", f"{home} ({source})")


async def check_database(settings: Settings) -> list[Check]:
    """Reachable, `vector` installable, migrated; then the tokens stored in it."""
    from shared.db import embedded as embedded_db

    where = describe_database(settings)
    if settings.database_url:
        url = settings.database_url
    elif not embedded_db.is_initialised(settings.home):
        return [Check(WARN, "database", f"none yet under {embedded_db.data_dir(settings.home)}: "
                                        "`mcp-suite migrate` (or `make run`) creates it")]
    else:
        url = await asyncio.to_thread(embedded_db.resolve_database_url, settings, keep_running=False)
    try:
        async with connect(url, timeout=5.0) as conn:
            version = await conn.fetchval("SHOW server_version")
            checks = [Check(OK, "database", f"{where}: reachable, PostgreSQL {version}")]
            checks.append(await _check_migrations(conn))
            checks.append(await _check_stored_tokens(conn))
            return checks
    except UserError as exc:
        return [Check(FAIL, "database", str(exc))]


async def _check_migrations(conn: Any) -> Check:
    from shared.db.migrate import load, pending

    if not await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"):
        return Check(FAIL, "migrations", "the `vector` extension is not available on this server: install pgvector")
    missing = await pending(conn)
    if missing:
        return Check(FAIL, "migrations", f"{len(missing)} pending ({', '.join(missing)}): run `mcp-suite migrate`")
    return Check(OK, "migrations", f"up to date ({len(load())} applied)")


async def _check_stored_tokens(conn: Any) -> Check:
    from shared.auth.tokens import list_tokens

    try:
        active = [t for t in await list_tokens(conn) if t.status() == "active"]
    except Exception as exc:  # noqa: BLE001 - a doctor reports, it does not crash
        return Check(WARN, "tokens", f"could not read the token table ({type(exc).__name__})")
    env = (load(AuthSettings).api_tokens or "").strip()
    if active or env:
        where = f"{len(active)} active in the database" + (", more in MCP_SUITE_API_TOKENS" if env else "")
        return Check(OK, "tokens", where)
    return Check(WARN, "tokens", "no active API token: HTTP clients get 401 (stdio needs none); create one with "
                                 "`mcp-suite tokens create --principal you --scopes \"profiles:read\"`")


def check_jwt() -> Check | None:
    from shared.auth.jwt import JwtSettings

    try:
        jwt = JwtSettings.from_env()
    except (ValueError, OSError) as exc:
        return Check(FAIL, "jwt", str(exc))
    return Check(OK, "jwt", f"identity-provider tokens from {jwt.issuer}") if jwt else None


def check_model(*, deep: bool) -> Check:
    """The model files and libraries, without the ~8 s import unless `deep`."""
    try:
        from servers.search.embedder import model_path

        path = Path(model_path())
    except Exception as exc:  # noqa: BLE001 - any failure here means: no model
        return Check(FAIL, "model", f"the embedding model package is missing ({type(exc).__name__}): "
                                    "reinstall with `make setup`; search answers keyword-only without it")
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        return Check(FAIL, "model", f"no model files under {path}: set MCP_SUITE_EMBEDDING_MODEL to a "
                                    "sentence-transformers folder or reinstall with `make setup`")
    missing = [lib for lib in ("sentence_transformers", "torch") if find_spec(lib) is None]
    if missing:
        return Check(FAIL, "model", f"{', '.join(missing)} not installed: run `make setup`")
    if not deep:
        return Check(OK, "model", f"files at {path} (not loaded; `doctor --deep` loads it, ~10 s)")
    try:
        from servers.search.embedder import Embedder

        vectors = Embedder(path=str(path)).encode_sync(["doctor"])
    except Exception as exc:  # noqa: BLE001
        return Check(FAIL, "model", f"loading {path} failed: {type(exc).__name__}: {str(exc)[:160]}")
    return Check(OK, "model", f"loaded offline from {path} ({vectors.shape[1]} dimensions)")


def check_servers() -> list[Check]:
    """Per registered server (topic: its name): needs left unset (WARN), its sections' `problems()` (FAIL)."""
    from mcp_suite.registry import specs
    from mcp_suite.servers_cli import needs_given

    checks: list[Check] = []
    for name, spec in specs().items():
        problems: list[str] = []
        for section in spec.settings:
            values = load(section)
            problems += values.problems() if callable(getattr(values, "problems", None)) else []
        written = needs_given(name)
        checks += [Check(FAIL, name, problem) for problem in problems]
        unset = [need for need in spec.needs if need.variable not in written]
        checks += [Check(WARN, name, f"{need.variable} is not set: {need.meaning}") for need in unset]
        if not problems and not unset:
            needs = ", ".join(need.variable for need in spec.needs)
            checks.append(Check(OK, name, f"settings valid; set: {needs}" if needs else "settings valid"))
    return checks


def check_http(host: str = "127.0.0.1", port: int = 8765) -> Check:
    from shared.http.layers import HttpConfig, is_loopback

    args = argparse.Namespace(host=host, port=port, transport="http", name="all", allow_anonymous=False)
    try:
        config = HttpConfig.from_args(args)
    except ValueError as exc:
        return Check(FAIL, "http", f"bad HTTP setting: {exc}")
    if not is_loopback(host) and not load(HttpSettings).allowed_hosts:
        return Check(FAIL, "http", "serving beyond localhost needs MCP_SUITE_ALLOWED_HOSTS (and TLS in front)")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return Check(WARN, "http", f"port {port} on {host} is in use (a server running already?): "
                                       "`serve --port N` picks another")
    return Check(OK, "http", f"`serve all --transport http` would listen on {config.public_url}")


def _safely(topic: str, check: Callable[[], Any]) -> list[Check]:
    """Run one check; a check that crashes is itself a FAIL line (a bug to report), not a traceback."""
    try:
        result = check()
    except Exception as exc:  # noqa: BLE001 - the doctor must finish and report every other check
        return [Check(FAIL, topic, f"the check itself failed ({type(exc).__name__}: {str(exc)[:160]}); "
                                   "please report this")]
    if result is None:
        return []
    return result if isinstance(result, list) else [result]


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    checks = [
        *_safely("home", lambda: check_home(settings)),
        *_safely("database", lambda: asyncio.run(check_database(settings))),
        *_safely("jwt", check_jwt),
        *_safely("model", lambda: check_model(deep=args.deep)),
        *_safely("http", check_http),
        *_safely("servers", check_servers),
    ]
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.status == FAIL]
    warned = sum(c.status == WARN for c in checks)
    print(f"\n{len(failed)} problem(s) to fix" if failed else f"\nno problems ({warned} warning(s))")
    return 1 if failed else 0
