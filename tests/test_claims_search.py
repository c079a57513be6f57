"""README claims about hybrid search, each checked end to end through real MCP sessions.

- "If the model is unavailable, hybrid search answers keyword-only and says so": with the model
  really failing to load (a `serve search` subprocess whose model path is an empty folder) and with
  the model hanging past the query's deadline (a fault-injected encoder), not only a forced breaker.
- "unchanged files are skipped": a second ingest of the same files does no embedding at all.
- `search` (the ChatGPT connector contract): at most 10 results, one per document.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from servers.search import tools as search_tools
from servers.search.embedder import Embedder
from servers.search.tools import app
from shared.identity import Principal

USER = Principal("claims-searcher", frozenset({"search:read", "search:write"}), "test")
MARKER = "zephyrine"  # a word only this file's documents use, to tell their embeddings from a warm-up


@pytest.fixture
def encode_calls(monkeypatch) -> list[list[str]]:
    """Every batch the embedding model is asked to encode (the model itself still runs)."""
    calls: list[list[str]] = []
    real = search_tools.embedder.encode_sync

    def counting(texts: list[str]):
        calls.append(list(texts))
        return real(texts)

    monkeypatch.setattr(search_tools.embedder, "encode_sync", counting)
    return calls


def ours(calls: list[list[str]]) -> list[list[str]]:
    return [batch for batch in calls if any(MARKER in text for text in batch)]


async def test_unchanged_files_are_not_embedded_again(connect, make_database, tmp_path, monkeypatch, encode_calls):
    root = tmp_path / "library"
    root.mkdir()
    (root / "a.md").write_text(f"# Kites\n\nA {MARKER} kite flies on the wind over the hills.")
    (root / "b.txt").write_text(f"Boats with {MARKER} sails float on calm water.")
    monkeypatch.setenv("MCP_SUITE_SEARCH_ROOTS", str(root))
    async with make_database() as url, connect(app, principal=USER, url=url) as client:
        first = await client.call_tool("ingest", {"path": str(root)})
        embedded_first = len(ours(encode_calls))
        second = await client.call_tool("ingest", {"path": str(root)})
        content = await client.call_tool("ingest", {"content": f"A {MARKER} note.", "document_id": "note"})
        embedded_after_content = len(ours(encode_calls))
        content_again = await client.call_tool("ingest", {"content": f"A {MARKER} note.", "document_id": "note"})
    assert sorted(d["status"] for d in first.structured_content["documents"]) == ["created", "created"]
    assert embedded_first >= 1  # the first ingest really used the model
    assert [d["status"] for d in second.structured_content["documents"]] == ["unchanged", "unchanged"]
    assert content.structured_content["documents"][0]["status"] == "created"
    assert content_again.structured_content["documents"][0]["status"] == "unchanged"
    # Between the first ingest and the content ingest the model saw none of our texts; likewise after.
    assert embedded_after_content == embedded_first + 1
    assert len(ours(encode_calls)) == embedded_after_content


async def test_search_returns_at_most_ten_documents_once_each(connect, make_database):
    # 14 documents of several chunks each, every chunk matching the query: the passage-level search
    # underneath returns many chunks of the same documents.
    paragraph = f"The {MARKER} lighthouse keeper logs every passing ship and the weather at dawn. " * 12
    async with make_database() as url, connect(app, principal=USER, url=url) as client:
        for i in range(14):
            result = await client.call_tool("ingest", {"content": "\n\n".join([paragraph] * 4),
                                                       "document_id": f"log-{i:02d}", "title": f"Log {i}",
                                                       "source": f"https://example.org/log/{i}", "format": "text"})
            assert result.structured_content["documents"][0]["chunks"] > 1
        passages = await client.call_tool("hybrid_search", {"query": f"{MARKER} lighthouse", "limit": 50,
                                                            "mode": "keyword"})
        found = await client.call_tool("search", {"query": f"{MARKER} lighthouse"})
    documents = [h["document_id"] for h in passages.structured_content["hits"]]
    assert len(documents) > len(set(documents))  # the passages repeat documents…
    results = found.structured_content["results"]
    ids = [r["id"] for r in results]
    assert len(ids) == 10 and len(set(ids)) == 10  # …the document search does not, and stops at 10
    for entry in results:
        assert set(entry) == {"id", "title", "url"}
        number = int(entry["id"].split("-")[1])
        assert entry["title"] == f"Log {number}" and entry["url"] == f"https://example.org/log/{number}"


async def test_model_timing_out_degrades_to_keyword(connect, make_database, monkeypatch):
    """The encoder hangs (fault injection): the query's 2 s embedding deadline passes and hybrid search
    answers from the keyword leg, saying why; a semantic-only query is refused as unavailable."""
    monkeypatch.setenv("MCP_SUITE_SEARCH_WARMUP", "0")  # a warm-up would hold the hanging encoder
    release = threading.Event()

    def hanging(texts: list[str]):
        release.wait(60)
        raise RuntimeError("released")

    embedder = search_tools.embedder
    monkeypatch.setattr(embedder, "breaker", Embedder().breaker)  # fresh; the shared one is put back untouched
    async with make_database() as url:
        async with connect(app, principal=USER, url=url) as client:
            await client.call_tool("ingest", {"content": f"The {MARKER} comet returns every seventy years.",
                                              "document_id": "comet"})
        monkeypatch.setattr(embedder, "encode_sync", hanging)
        try:
            async with connect(app, principal=USER, url=url) as client:
                hybrid = await client.call_tool("hybrid_search", {"query": f"{MARKER} comet"})
                semantic = await client.call_tool("hybrid_search", {"query": f"{MARKER} comet",
                                                                    "mode": "semantic"})
        finally:
            release.set()
    assert hybrid.is_error is False
    assert hybrid.structured_content["mode"] == "keyword"
    assert "too slow" in hybrid.structured_content["degraded"]
    assert [h["document_id"] for h in hybrid.structured_content["hits"]] == ["comet"]
    assert semantic.is_error and semantic.content[0].text.startswith("unavailable: ")


async def test_model_that_cannot_load_degrades_to_keyword(connect, make_database, tmp_path):
    """A real `mcp-suite serve search` over stdio whose model path is an empty folder.

    The server's background warm-up tries to load the model and fails; once `index_stats` reports the
    model unavailable (a condition, polled), queries must degrade because loading fails, not because
    the first load is merely slow."""
    empty = tmp_path / "no-model"
    empty.mkdir()
    async with make_database() as url:
        async with connect(app, principal=USER, url=url) as client:  # indexed with the real model
            await client.call_tool("ingest", {"content": f"The {MARKER} glacier moves slowly downhill.",
                                              "document_id": "glacier"})
        env = {**os.environ, "DATABASE_URL": url, "MCP_SUITE_EMBEDDING_MODEL": str(empty),
               "MCP_SUITE_SEARCH_WARMUP": "1", "MCP_SUITE_PRINCIPAL": "no-model",
               "MCP_SUITE_SCOPES": "search:read", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_suite.cli", "serve", "search"],
                                       env=env)
        async with Client(params) as client:
            for _ in range(600):  # the bound only stops a broken server from hanging the suite
                stats = await client.call_tool("index_stats", {})
                if stats.structured_content["embedding_model"] != "not loaded":
                    break
                await asyncio.sleep(0.2)
            hybrid = await client.call_tool("hybrid_search", {"query": f"{MARKER} glacier"})
            semantic = await client.call_tool("hybrid_search", {"query": f"{MARKER} glacier", "mode": "semantic"})
    assert hybrid.is_error is False, hybrid.content[0].text
    assert hybrid.structured_content["mode"] == "keyword"
    assert stats.structured_content["embedding_model"] == "unavailable"
    degraded = hybrid.structured_content["degraded"]
    assert "keyword results only" in degraded and "model is unavailable" in degraded
    assert [h["document_id"] for h in hybrid.structured_content["hits"]] == ["glacier"]
    assert semantic.is_error and semantic.content[0].text.startswith("unavailable: ")
    for result in (hybrid, semantic):
        text = str(result.content[0].text)
        assert str(empty) not in text and "Traceback" not in text and "ValueError" not in text
