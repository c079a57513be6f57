"""A file is one document however its path is spelled, and no server path ever reaches a client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from servers.search import index
from servers.search.ingest import default_document_id
from servers.search.tools import app
from shared.db import migrate
from shared.identity import Principal
from tests.support.db import open_connection

USER = Principal("searcher", frozenset({"search:read", "search:write"}), "test")


@pytest.fixture
async def db(make_database):
    async with make_database() as url:
        yield url


@pytest.fixture
def library(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A root configured through a symlinked spelling (`link` → `library`)."""
    real = tmp_path / "library"
    (real / "notes").mkdir(parents=True)
    (real / "notes" / "kites.md").write_text("# Kites\n\nA kite_string holds the kite against the wind.")
    (real / "notes" / "big boats.txt").write_text("Boats float on water.")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    monkeypatch.setenv("MCP_SUITE_SEARCH_ROOTS", str(link))
    monkeypatch.delenv("MCP_SUITE_SEARCH_PUBLIC_URLS", raising=False)
    return link, real


async def _count(url: str, sql: str = "SELECT count(*) FROM search_documents") -> int:
    async with open_connection(url) as conn:
        return await conn.fetchval(sql)


async def test_every_spelling_of_a_file_is_one_document(connect, db, library):
    link, real = library
    spellings = ["notes/kites.md", "./notes/kites.md", f"{link}/notes/kites.md", f"{real}/notes/kites.md",
                 f"{link}/notes/../notes/./kites.md", "notes//kites.md"]
    async with connect(app, principal=USER, url=db) as client:
        outcomes = []
        for spelling in spellings:
            result = await client.call_tool("ingest", {"path": spelling})
            assert result.is_error is False, (spelling, result.content)
            outcomes += result.structured_content["documents"]
        walked = await client.call_tool("ingest", {"path": str(real)})
    assert {o["source"] for o in outcomes} == {"link/notes/kites.md"}
    assert len({o["document_id"] for o in outcomes}) == 1
    assert [o["status"] for o in outcomes] == ["created"] + ["unchanged"] * (len(spellings) - 1)
    statuses = {d["source"]: d["status"] for d in walked.structured_content["documents"]}
    assert statuses == {"link/notes/kites.md": "unchanged", "link/notes/big boats.txt": "created"}
    assert await _count(db) == 2


async def test_no_server_path_reaches_a_client(connect, db, library):
    link, real = library
    (real / "notes" / "huge.md").write_bytes(b"x" * 5_000_001)
    (real / "notes" / "data.sql").write_text("SELECT 1;")
    outputs: list[str] = []
    structured: list[dict] = []
    async with connect(app, principal=USER, url=db) as client:
        calls = [("ingest", {"path": str(link)}), ("ingest", {"path": f"{real}/notes/missing.md"}),
                 ("ingest", {"path": str(real.parent / "elsewhere.md")}), ("ingest", {"path": "notes/data.sql"}),
                 ("hybrid_search", {"query": "kite wind"}), ("search", {"query": "kite wind"})]
        for tool, arguments in calls:
            result = await client.call_tool(tool, arguments)
            structured.append(result.structured_content or {})
            outputs.append(json.dumps(result.structured_content) + " ".join(c.text for c in result.content))
        report = structured[0]
        doc_id = next(d["document_id"] for d in report["documents"] if d["source"] == "link/notes/kites.md")
        for tool, arguments in [("fetch", {"id": doc_id}), ("get_document", {"document_id": doc_id})]:
            result = await client.call_tool(tool, arguments)
            outputs.append(json.dumps(result.structured_content))
    assert any(f.startswith("link/notes/huge.md: ") and "larger than" in f for f in report["failed"])
    assert "not_found" in outputs[1] and "permission_denied" in outputs[2]
    assert "link/notes/data.sql: .sql files are not indexed" in outputs[3] and "pass a format" in outputs[3]
    hit = structured[4]["hits"][0]
    assert (hit["source"], hit["url"]) == ("link/notes/kites.md", "link/notes/kites.md")
    for output in outputs:
        for server_path in (str(real.parent), "/tmp/"):
            assert server_path not in output, output


async def test_public_base_url_per_root(connect, db, library, monkeypatch):
    monkeypatch.setenv("MCP_SUITE_SEARCH_PUBLIC_URLS", "link=https://docs.example.org/base/, bad-entry")
    async with connect(app, principal=USER, url=db) as client:
        await client.call_tool("ingest", {"path": "notes"})
        hits = (await client.call_tool("hybrid_search", {"query": "boats water"})).structured_content["hits"]
        listing = (await client.call_tool("search", {"query": "boats water"})).structured_content["results"]
        fetched = (await client.call_tool("fetch", {"id": hits[0]["document_id"]})).structured_content
        content = await client.call_tool("ingest", {"content": "Gliders soar.", "source": "https://x.org/g"})
        glider = (await client.call_tool("fetch", {"id": content.structured_content["documents"][0]["document_id"]}))
    url = "https://docs.example.org/base/notes/big%20boats.txt"
    assert hits[0]["source"] == "link/notes/big boats.txt" and hits[0]["url"] == url
    assert listing[0]["url"] == url and fetched["url"] == url
    assert glider.structured_content["url"] == "https://x.org/g"  # a caller's own source is kept as given


async def test_bad_path_ingests_are_refused_and_change_nothing(connect, db, library):
    async with connect(app, principal=USER, url=db) as client:
        for arguments, error in [({"path": "notes/kites.md", "document_id": "mine"}, "invalid_input"),
                                 ({"path": "notes/kites.md", "source": "https://x"}, "invalid_input"),
                                 ({"path": "notes/nope.md"}, "not_found"),
                                 ({"path": "../outside.md"}, "permission_denied"),
                                 ({"path": "notes/kites.md\x00"}, "invalid_input")]:
            result = await client.call_tool("ingest", arguments)
            assert result.is_error and result.content[0].text.startswith(error), (arguments, result.content)
        assert await _count(db) == 0
        forced = await client.call_tool("ingest", {"path": "notes/big boats.txt", "format": "text"})
        assert forced.structured_content["documents"][0]["status"] == "created"


async def test_migration_moves_old_absolute_sources_out_of_sight(connect, make_database, library, tmp_path,
                                                                 db_connection):
    """Rows stored before 0008 (absolute source, id hashed from it) lose the path; re-ingest replaces them."""
    link, real = library
    old = tmp_path / "migrations-before-0008"
    old.mkdir()
    for path in migrate.load():
        if path.version < 8:
            (old / path.name).write_text(path.sql)
    async with make_database() as template:
        name = f"legacy_{os.getpid()}"
        async with db_connection(template) as admin:
            await admin.execute(f"DROP DATABASE IF EXISTS {name}")
            await admin.execute(f"CREATE DATABASE {name}")
        url = urlunsplit(urlsplit(template)._replace(path=f"/{name}"))
        async with db_connection(url) as conn:
            await migrate.apply(conn, old)
            absolute = f"{link}/notes/kites.md"
            await conn.execute(
                "INSERT INTO search_documents (id, source, title, content_hash, body, chunk_count)"
                " VALUES ($1, $2, 'Kites', 'old', 'A kite', 0)", default_document_id(absolute, ""), absolute)
            await migrate.apply(conn)
            row = await conn.fetchrow("SELECT source, legacy_path FROM search_documents")
            assert (row["source"], row["legacy_path"]) == ("kites.md", absolute)
        async with connect(app, principal=USER, url=url) as client:
            result = await client.call_tool("ingest", {"path": "notes/kites.md"})
        assert result.structured_content["documents"][0]["status"] == "replaced"
        async with db_connection(url) as conn:
            assert [r["source"] for r in await conn.fetch("SELECT source FROM search_documents")] == [
                "link/notes/kites.md"]
            assert await index.consistency_problems(conn) == []


async def test_cli_reports_each_path_and_fails_when_one_fails(make_database, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(Path(__file__).parent / "fixtures" / "search" / "schema.sql", docs)
    (docs / "a.md").write_text("# Kites\n\nKites fly on the wind.")
    (tmp_path / "b.txt").write_text("Boats float on water.")
    async with make_database() as url:
        env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(Path(__file__).parent.parent)}
        env.pop("MCP_SUITE_SEARCH_ROOTS", None)
        command = [sys.executable, "-m", "mcp_suite.cli", "ingest", str(docs), str(tmp_path / "missing.md"),
                   str(tmp_path / "b.txt")]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=Path.cwd())
        again = subprocess.run(command[:5] + ["docs/a.md"], env=env, capture_output=True, text=True,
                               timeout=300, cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stderr[-1500:]
    assert lines[0] == f"{docs}: 1 created, 0 replaced, 0 unchanged, 1 skipped, 0 failed"
    assert lines[1].startswith("  skipped docs/schema.sql: .sql files are not indexed")
    assert lines[2] == f"{tmp_path / 'missing.md'}: not ingested: 'missing.md' does not exist"
    assert lines[3] == f"{tmp_path / 'b.txt'}: 1 created, 0 replaced, 0 unchanged, 0 skipped, 0 failed"
    assert "Traceback" not in done.stderr
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == (
        "docs/a.md: 0 created, 0 replaced, 1 unchanged, 0 skipped, 0 failed")  # same file, other spelling
