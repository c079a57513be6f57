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


def test_each_server_registers_its_own_migrations():
    """A server's schema lives in its package and reaches the runner through the entry-point group."""
    root = Path(__file__).resolve().parent.parent
    owned = {p.parent.parent.name for p in (root / "servers").glob("*/migrations/__init__.py")}
    assert owned == {"profiles", "search"}
    sources = {path.resolve() for path in migrate.migration_sources()}
    assert {(root / "servers" / name / "migrations").resolve() for name in owned} <= sources
    assert (root / "migrations").resolve() in sources
    names = [m.name for m in migrate.load()]
    assert names == sorted(names)  # one global order across the packages
    assert {"0001_core.sql", "0002_user_profiles.sql", "0003_search.sql"} <= set(names)


def test_a_version_used_twice_across_packages_is_refused(tmp_path: Path, monkeypatch):
    core, server = tmp_path / "core", tmp_path / "server"
    core.mkdir()
    server.mkdir()
    (core / "0001_core.sql").write_text("SELECT 1;")
    (server / "0001_notes.sql").write_text("SELECT 2;")
    monkeypatch.setattr(migrate, "migration_sources", lambda: [core, server])
    with pytest.raises(migrate.MigrationError, match="0001_core.sql and 0001_notes.sql"):
        migrate.load()


def test_the_override_folder_is_used_alone(tmp_path: Path, monkeypatch):
    """`MCP_SUITE_MIGRATIONS` replaces the installed files, the servers' included (a full copy works)."""
    for source in migrate.migration_sources():
        for path in source.glob("*.sql"):
            shutil.copy(path, tmp_path / path.name)
    monkeypatch.setenv("MCP_SUITE_MIGRATIONS", str(tmp_path))
    assert migrate.migration_sources() == [tmp_path]
    assert [m.name for m in migrate.load()][:3] == ["0001_core.sql", "0002_user_profiles.sql", "0003_search.sql"]


def test_missing_package_metadata_is_refused_not_half_applied(monkeypatch):
    """Without the entry points (a checkout never installed, or a stale install) the core alone would
    migrate "successfully" and leave the servers' tables missing: refuse, saying how to fix it."""
    monkeypatch.setattr(migrate, "entry_points", lambda group: [])
    with pytest.raises(migrate.MigrationError, match="pip install -e"):
        migrate.load()
