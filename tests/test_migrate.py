"""Migrations: ordered, recorded with checksums, edits refused, concurrent starts serialised."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from shared.db import migrate


async def test_all_migrations_applied_once(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate.pending(conn) == []
        assert await migrate.apply(conn) == []  # second run: nothing to do
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == sorted(versions) and versions[0] == 1
    finally:
        await conn.close()


async def test_edited_applied_migration_is_an_error(make_database, tmp_path: Path):
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), copy)
    async with make_database() as url:
        conn = await asyncpg.connect(url)
        try:
            first = sorted(copy.glob("*.sql"))[0]
            first.write_text(first.read_text() + "\n-- edited\n")
            with pytest.raises(migrate.MigrationError, match="edited"):
                await migrate.apply(conn, copy)
        finally:
            await conn.close()


async def test_concurrent_starts_apply_each_migration_once(make_database, tmp_path: Path):
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.migrations_dir(), copy)
    (copy / "9000_probe.sql").write_text("CREATE TABLE probe_once (id int);")
    async with make_database() as url:
        conns = [await asyncpg.connect(url) for _ in range(4)]
        try:
            results = await asyncio.gather(*(migrate.apply(c, copy) for c in conns))
            assert sum(r.count("9000_probe.sql") for r in results) == 1
        finally:
            for c in conns:
                await c.close()


def test_bad_file_names_are_rejected(tmp_path: Path):
    (tmp_path / "1_bad.sql").write_text("SELECT 1;")
    with pytest.raises(migrate.MigrationError):
        migrate.load(tmp_path)
