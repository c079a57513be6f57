"""Migrations: ordered, recorded with checksums, edits refused, concurrent starts serialised."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from shared.db import migrate
from tests.support.db import open_connections


async def test_all_migrations_applied_once(db_connection):
    async with db_connection() as conn:
        assert await migrate.pending(conn) == []
        assert await migrate.apply(conn) == []  # second run: nothing to do
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == sorted(versions) and versions[0] == 1


async def test_edited_applied_migration_is_an_error(make_database, tmp_path: Path, db_connection):
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), copy)
    async with make_database() as url, db_connection(url) as conn:
        first = sorted(copy.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        with pytest.raises(migrate.MigrationError, match="edited"):
            await migrate.apply(conn, copy)


async def test_concurrent_starts_apply_each_migration_once(make_database, tmp_path: Path):
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), copy)
    (copy / "9000_probe.sql").write_text("CREATE TABLE probe_once (id int);")
    async with make_database() as url, open_connections(url, 4) as conns:
        results = await asyncio.gather(*(migrate.apply(c, copy) for c in conns))
        assert sum(r.count("9000_probe.sql") for r in results) == 1


def test_bad_file_names_are_rejected(tmp_path: Path):
    (tmp_path / "1_bad.sql").write_text("SELECT 1;")
    with pytest.raises(migrate.MigrationError):
        migrate.load(tmp_path)
