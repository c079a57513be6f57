"""`mcp-suite db` and `mcp-suite migrate`: the embedded PostgreSQL (or `DATABASE_URL`) and its schema."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
from typing import Any

from mcp_suite.cli_support import UserError, announce_database, connect, database_url, safe_url
from shared.config import Settings


def cmd_db(args: argparse.Namespace) -> int:
    from shared.db import embedded as embedded_db

    settings = Settings.from_env()
    home = settings.home
    if args.action == "start":
        if settings.database_url:
            raise UserError("DATABASE_URL is set, so the embedded database is not used; unset it to use one")
        announce_database(settings)
        print(embedded_db.start(home))
    elif args.action == "stop":
        if settings.database_url:
            print(f"note: DATABASE_URL is set; this stops only the embedded database under {home}",
                  file=sys.stderr)
        clients = embedded_db.connected_clients(home)
        if clients:
            print(f"warning: {clients} client connection(s) are open (running servers or psql sessions); "
                  "they lose the database until it is started again", file=sys.stderr)
        print("stopped" if embedded_db.stop(home) else "not running")
    elif args.action == "status":
        return _db_status(settings)
    elif args.action == "url":
        if settings.database_url:
            print(settings.database_url)
            return 0
        url = embedded_db.running_url(home)
        if url is None:
            raise UserError(f"the embedded database under {embedded_db.data_dir(home)} is not running: "
                            "`mcp-suite db start` starts it (and prints its URL)")
        print(url)
    elif args.action == "psql":
        url = database_url(settings)
        psql = shutil.which("psql") if settings.database_url else str(embedded_db.psql_path())
        if psql is None:
            raise UserError("psql is not installed: install the PostgreSQL client, or use `mcp-suite db url`")
        os.execv(psql, [psql, url])
    return 0


def _db_status(settings: Settings) -> int:
    """JSON status of the database in use: the embedded one, or `DATABASE_URL` (reachable or not)."""
    from shared.db import embedded as embedded_db

    if not settings.database_url:
        print(json.dumps(embedded_db.status(settings.home), indent=2))
        return 0

    async def probe() -> dict[str, Any]:
        report: dict[str, Any] = {"database": "DATABASE_URL", "url": safe_url(settings.database_url or "")}
        try:
            async with connect(settings.database_url or "", timeout=5.0) as conn:
                report.update(reachable=True, server_version=await conn.fetchval("SHOW server_version"))
        except UserError as exc:
            report.update(reachable=False, error=str(exc))
        return report

    report = asyncio.run(probe())
    print(json.dumps(report, indent=2))
    return 0 if report["reachable"] else 1


def cmd_migrate(_args: argparse.Namespace) -> int:
    from shared.db import migrate

    async def main() -> int:
        async with connect(database_url()) as conn:
            applied = await migrate.apply(conn)
        print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
        return 0

    return asyncio.run(main())
