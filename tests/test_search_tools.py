"""The search server over real MCP sessions, the real database and the real embedding model."""

from __future__ import annotations

import contextlib
import re

import pytest

from servers.search import tools as search_tools
from servers.search.embedder import Embedder
from servers.search.tools import app
from shared.identity import Principal

USER = Principal("searcher", frozenset({"search:read", "search:write"}), "test")
READER = Principal("reader", frozenset({"search:read"}), "test")

DOCS = [
    ("heart", "Cardiology notes", {"topic": "medicine", "year": 2019},
     "The heart pumps blood through the arteries. High cholesterol narrows arteries and can cause a "
     "heart attack. Exercise lowers blood pressure."),
    ("vaccine", "Vaccines", {"topic": "medicine", "year": 2021},
     "Vaccines teach the immune system to recognise a virus. After vaccination the body makes antibodies."),
    ("python", "Python asyncio", {"topic": "software", "year": 2023},
     "The asyncio event loop runs coroutines. Await yields control so other tasks can run concurrently."),
    ("postgres", "PostgreSQL indexes", {"topic": "software", "year": 2022},
     "A B-tree index speeds up equality and range queries. GIN indexes serve full text search and jsonb."),
    ("garden", "Growing tomatoes", {"topic": "garden", "year": 2020},
     "Tomatoes need full sun, regular watering and support stakes. Pinch side shoots for larger fruit."),
    ("bread", "Sourdough bread", {"topic": "cooking", "year": 2018},
     "A sourdough starter ferments flour and water with wild yeast. Bake the loaf in a hot covered pot."),
]


@pytest.fixture(scope="module")
async def indexed(make_database):
    async with make_database() as url:
        yield url


async def ingest_all(client) -> None:
    for doc_id, title, metadata, text in DOCS:
        result = await client.call_tool("ingest", {"content": text, "document_id": doc_id, "title": title,
                                                   "source": f"https://example.org/{doc_id}",
                                                   "metadata": metadata, "format": "text"})
        assert result.is_error is False, result.content


async def test_ingest_search_fetch_round_trip(connect, indexed):
    async with connect(app, principal=USER, url=indexed) as client:
        await ingest_all(client)
        again = await client.call_tool("ingest", {"content": DOCS[0][3], "document_id": "heart",
                                                  "title": DOCS[0][1], "source": "https://example.org/heart",
                                                  "metadata": DOCS[0][2], "format": "text"})
        assert again.structured_content["documents"][0]["status"] == "unchanged"

        hybrid = await client.call_tool("hybrid_search", {"query": "what lowers cholesterol in arteries",
                                                          "explain": True})
        hits = hybrid.structured_content["hits"]
        assert hybrid.structured_content["mode"] == "hybrid"
        assert hits[0]["document_id"] == "heart"
        assert hits[0]["explain"]["keyword_rank"] == 1 and hits[0]["explain"]["semantic_rank"] is not None

        semantic = await client.call_tool("hybrid_search", {"query": "immunisation and antibodies",
                                                            "mode": "semantic"})
        assert semantic.structured_content["hits"][0]["document_id"] == "vaccine"

        listing = await client.call_tool("search", {"query": "event loop coroutines"})
        first = listing.structured_content["results"][0]
        assert first == {"id": "python", "title": "Python asyncio", "url": "https://example.org/python"}
        fetched = await client.call_tool("fetch", {"id": "python"})
        assert set(fetched.structured_content) == {"id", "title", "text", "url", "metadata"}
        assert "coroutines" in fetched.structured_content["text"]

        stats = (await client.call_tool("index_stats", {})).structured_content
        assert stats["documents"] == len(DOCS) and stats["embedding_model"] == "loaded"


async def test_filters_apply_inside_each_leg(connect, indexed):
    async with connect(app, principal=READER, url=indexed) as client:
        only_software = await client.call_tool("hybrid_search", {
            "query": "heart blood arteries", "filters": {"metadata": {"topic": "software"}}})
        assert {h["document_id"] for h in only_software.structured_content["hits"]} <= {"python", "postgres"}
        recent = await client.call_tool("hybrid_search", {
            "query": "index", "filters": {"ranges": {"year": {"gte": 2022}}}, "mode": "keyword"})
        assert [h["document_id"] for h in recent.structured_content["hits"]] == ["postgres"]
        prefix = await client.call_tool("hybrid_search", {
            "query": "bread tomatoes", "filters": {"source_prefix": "https://example.org/gar"}})
        assert [h["document_id"] for h in prefix.structured_content["hits"]] == ["garden"]


async def test_pagination_is_stable(connect, indexed):
    async with connect(app, principal=READER, url=indexed) as client:
        full = await client.call_tool("hybrid_search", {"query": "index heart yeast sun", "limit": 6})
        page1 = await client.call_tool("hybrid_search", {"query": "index heart yeast sun", "limit": 3})
        page2 = await client.call_tool("hybrid_search", {"query": "index heart yeast sun", "limit": 3, "offset": 3})
    ids = [h["id"] for h in full.structured_content["hits"]]
    assert [h["id"] for h in page1.structured_content["hits"] + page2.structured_content["hits"]] == ids


async def test_replace_and_delete(connect, indexed):
    async with connect(app, principal=USER, url=indexed) as client:
        await client.call_tool("ingest", {"content": "Old text about kites.", "document_id": "kite"})
        replaced = await client.call_tool("ingest", {"content": "New text about gliders.", "document_id": "kite"})
        assert replaced.structured_content["documents"][0]["status"] == "replaced"
        old = await client.call_tool("hybrid_search", {"query": "kites", "mode": "keyword"})
        assert all(h["document_id"] != "kite" for h in old.structured_content["hits"])
        deleted = await client.call_tool("delete_document", {"document_id": "kite"})
        assert deleted.structured_content["deleted"] is True
        missing = await client.call_tool("fetch", {"id": "kite"})
        assert missing.is_error and "not_found" in missing.content[0].text


async def test_model_breaker_open_degrades_to_keyword(connect, indexed, monkeypatch):
    breaker = Embedder().breaker  # the model's own breaker, fresh; the shared one is put back untouched
    monkeypatch.setattr(search_tools.embedder, "breaker", breaker)
    async with connect(app, principal=READER, url=indexed) as client:
        for _ in range(200):  # inject model failures until the breaker opens
            if breaker.state == "open":
                break
            with contextlib.suppress(RuntimeError):
                async with breaker.guard():
                    raise RuntimeError("the model failed")
        assert breaker.state == "open"
        result = await client.call_tool("hybrid_search", {"query": "heart arteries"})
        semantic = await client.call_tool("hybrid_search", {"query": "heart arteries", "mode": "semantic"})
    assert result.structured_content["mode"] == "keyword"
    assert "keyword results only" in result.structured_content["degraded"]
    assert result.structured_content["hits"][0]["document_id"] == "heart"
    assert semantic.is_error and "unavailable" in semantic.content[0].text


BAD = [
    {"query": ""},
    {"query": "   "},
    {"query": "x" * 100_000},
    {"query": "heart\x00"},
    {"query": "heart", "filters": {"colour": "red"}},
    {"query": "heart", "filters": {"metadata": {"topic'; DROP TABLE search_chunks; --": "x"}}},
    {"query": "heart", "filters": {"ranges": {"year": {"between": 1}}}},
    {"query": "heart", "rrf_k": 0},
    {"query": "heart", "limit": 0},
    {"query": "heart", "limit": 500},
    {"query": "heart", "depth": 5},
    {"query": "heart", "offset": 95, "limit": 10},
    {"query": "heart", "mode": "fuzzy"},
    {"query": "heart", "keyword_weight": -1},
]


@pytest.mark.parametrize("arguments", BAD, ids=[str(i) for i in range(len(BAD))])
async def test_bad_queries_get_clear_errors(connect, indexed, arguments):
    async with connect(app, principal=READER, url=indexed) as client:
        result = await client.call_tool("hybrid_search", arguments)
    assert result.is_error
    text = result.content[0].text
    assert text.startswith("invalid_input") and len(text) < 1500
    for leak in ("Traceback", "SELECT", "asyncpg", "search_chunks", ".py"):
        assert leak not in text


async def test_injection_in_filter_values_is_inert(connect, indexed, db_connection):
    async with connect(app, principal=READER, url=indexed) as client:
        result = await client.call_tool("hybrid_search", {
            "query": "heart", "filters": {"metadata": {"topic": "x' OR '1'='1"},
                                          "source_prefix": "%' OR 1=1 --"}})
    assert result.is_error is False and result.structured_content["hits"] == []
    async with db_connection(indexed) as conn:
        assert await conn.fetchval("SELECT count(*) FROM search_documents") >= len(DOCS)


BAD_INGESTS = [
    # (arguments, error class); paths resolve against a configured root, so each refusal comes from
    # the confinement itself, not from ingest-by-path being switched off.
    ({}, "invalid_input"),
    ({"content": "x", "path": "y"}, "invalid_input"),
    ({"content": "   "}, "invalid_input"),
    ({"content": "ok", "document_id": ""}, "invalid_input"),
    ({"path": "/etc/passwd"}, "permission_denied"),
    ({"path": "../outside.txt"}, "permission_denied"),
]


@pytest.mark.parametrize(("arguments", "error_class"), BAD_INGESTS, ids=[str(i) for i in range(len(BAD_INGESTS))])
async def test_bad_ingests_change_nothing(connect, indexed, tmp_path, monkeypatch, arguments, error_class,
                                          db_connection):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("outside the root")
    monkeypatch.setenv("MCP_SUITE_SEARCH_ROOTS", str(root))
    async with db_connection(indexed) as conn:
        before = await conn.fetchval("SELECT count(*) FROM search_chunks")
        async with connect(app, principal=USER, url=indexed) as client:
            result = await client.call_tool("ingest", arguments)
        assert result.is_error
        kind, _, message = result.content[0].text.partition(": ")
        assert kind == error_class, result.content[0].text
        for leak in ("/etc", "passwd", str(tmp_path), "Traceback"):
            assert leak not in message
        assert await conn.fetchval("SELECT count(*) FROM search_chunks") == before


async def test_ingest_by_path_is_off_without_roots(connect, indexed, monkeypatch):
    monkeypatch.delenv("MCP_SUITE_SEARCH_ROOTS", raising=False)
    async with connect(app, principal=USER, url=indexed) as client:
        result = await client.call_tool("ingest", {"path": "/etc/passwd"})
    assert result.is_error and result.content[0].text.startswith("invalid_input: ")
    assert "no ingest roots" in result.content[0].text and "/etc" not in result.content[0].text


async def test_ingest_from_paths_inside_roots_only(connect, indexed, tmp_path, monkeypatch):
    root = tmp_path / "library"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "kites.md").write_text("# Kites\n\nA kite flies on the wind.")
    (root / "notes" / "boats.html").write_text("<html><title>Boats</title><p>Boats float on water.</p></html>")
    (tmp_path / "secret.txt").write_text("top secret")
    (root / "notes" / "escape.txt").symlink_to(tmp_path / "secret.txt")
    monkeypatch.setenv("MCP_SUITE_SEARCH_ROOTS", str(root))
    async with connect(app, principal=USER, url=indexed) as client:
        report = await client.call_tool("ingest", {"path": str(root / "notes")})
        outside = await client.call_tool("ingest", {"path": str(tmp_path / "secret.txt")})
        link = await client.call_tool("ingest", {"path": str(root / "notes" / "escape.txt")})
        found = await client.call_tool("hybrid_search", {"query": "kite wind", "mode": "keyword"})
    titles = sorted(d["source"].rsplit("/", 1)[-1] for d in report.structured_content["documents"])
    assert titles == ["boats.html", "kites.md"]
    assert found.structured_content["hits"][0]["title"] == "Kites"
    for refused in (outside, link):
        assert refused.is_error and str(tmp_path) not in refused.content[0].text


async def test_cli_ingest_indexes_a_directory_and_skips_unchanged(make_database, tmp_path):
    import os
    import subprocess
    import sys

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Kites\n\nKites fly on the wind.")
    (docs / "b.txt").write_text("Boats float on water.")
    (docs / "ignored.bin").write_bytes(b"\x00\x01")
    async with make_database() as url:
        env = {**os.environ, "DATABASE_URL": url}
        outputs = []
        for _ in range(2):
            done = subprocess.run([sys.executable, "-m", "mcp_suite.cli", "ingest", str(docs)], env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-1500:]
            outputs.append(done.stdout.strip())
    counts = [re.search(r"(\d+) created, (\d+) replaced, (\d+) unchanged", out).groups() for out in outputs]
    assert counts == [("2", "0", "0"), ("0", "0", "2")], outputs
