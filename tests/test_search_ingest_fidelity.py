"""Ingest keeps what a document says: identifiers, code and text survive; only markup goes.

The fixtures under tests/fixtures/search are a README-like Markdown file (code spans, fenced and
indented code, a table, emphasis, links, an image) and an HTML page (script, style, entities, <pre>).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from servers.search.parse_html import html_to_text
from servers.search.parse_markdown import markdown_to_text
from servers.search.parsers import parse
from servers.search.tools import app
from shared.identity import Principal

FIXTURES = Path(__file__).parent / "fixtures" / "search"
USER = Principal("searcher", frozenset({"search:read", "search:write"}), "test")
README = (FIXTURES / "README.md").read_text()
GUIDE = (FIXTURES / "guide.html").read_text()
CODE_BLOCK = '''result = await client.call_tool("hybrid_search", {"query": "rank fusion", "explain": True})
for hit in result.structured_content["hits"]:
    print(hit["document_id"], hit["score"])  # *not* emphasis, __init__ stays'''
PRE_BLOCK = '''def rrf(ranks, k=60):
    return sum(1 / (k + rank) for rank in ranks)

print(rrf([1, 2]))  # <float>'''


def test_markdown_keeps_identifiers_and_code_and_drops_markup():
    title, text = parse(README, name="README.md")
    assert title == "mcp-suite search"
    for identifier in ("hybrid_search", "MCP_SUITE_API_TOKENS", "MCP_SUITE_SEARCH_ROOTS", "MCP_SUITE_HOME",
                       "max_chunk_words", "snake_case", "get_document", "index_stats", "delete_document"):
        assert identifier in text, identifier
    assert CODE_BLOCK in text  # fenced code verbatim, emphasis-like characters and indentation included
    assert "$ mcp-suite ingest docs/ --root docs" in text  # indented code block
    assert "MCP_SUITE_API_TOKENS\tstatic tokens, name=secret pairs" in text  # a table row, cells kept
    assert "reciprocal rank fusion" in text and "the logo" in text  # link text and image alt text
    assert "Hybrid search for MCP clients" in text and "*.md, *.html and *.txt" in text
    for markup in ("**", "](", "![", "```", "~~", "|---", "*Hybrid*", "## ", "> ", "https://plg"):
        assert markup not in text, markup


def test_markdown_edge_cases():
    title, text = markdown_to_text(
        "---\ntitle: From front matter\ntags: [a]\n---\nSetext heading\n==============\n\n"
        "Intraword foo_bar_baz and 2 * 3 * 4 stay; <span>inline html</span> &amp; entities decode.\n\n"
        "* item_one\n* item_two\n")
    assert title == "From front matter"
    assert "tags:" not in text and "Setext heading" in text
    assert "foo_bar_baz" in text and "2 * 3 * 4" in text and "inline html & entities decode" in text
    assert "<span>" not in text and "item_one\n\nitem_two" in text
    assert markdown_to_text("Just text with `code_span`.")[0] == ""  # no heading: parse() falls back
    assert parse("Just text with `code_span`.", "markdown")[0] == "Just text with code_span."


def test_html_drops_scripts_and_styles_keeps_code_and_decodes_entities():
    title, text = parse(GUIDE, name="guide.html")
    assert title == "Hybrid search \u2014 operator's guide"
    assert "Operator\u2019s guide to hybrid_search" in text
    assert "Queries like a < b && c are passed as text; results carry a url & a source." in text
    assert "\nSet MCP_SUITE_SEARCH_PUBLIC_URLS to publish them." in text  # <br> is a line break
    assert PRE_BLOCK in text  # <pre> verbatim: indentation, blank line, decoded entities
    assert "Mode\tLegs\nhybrid\tkeyword + semantic" in text
    assert "first item" in text and "second item" in text
    for dropped in ("trackingSecret", "analytics_key", "hidden_style_rule", "comment_that_must_not_appear",
                    "JavaScript_for_nothing", "<code>", "&lt;", "&amp;"):
        assert dropped not in text, dropped


def test_html_without_head_end_tag_or_title_keeps_its_body():
    title, text = html_to_text("<html><head><meta charset=utf-8><body><h1>Only <b>heading</b></h1>"
                               "<p>Body text_with_identifier</p><p>unclosed <i>tags")
    assert title == "Only heading"
    assert "Body text_with_identifier" in text and "unclosed tags" in text


@pytest.fixture(scope="module")
async def fidelity_db(make_database):
    async with make_database() as url:
        yield url


async def test_indexed_readme_is_found_by_identifier_and_fetched_intact(connect, fidelity_db, tmp_path,
                                                                       monkeypatch):
    root = tmp_path / "docs"
    shutil.copytree(FIXTURES, root)
    monkeypatch.setenv("MCP_SUITE_SEARCH_ROOTS", str(root))
    async with connect(app, principal=USER, url=fidelity_db) as client:
        report = await client.call_tool("ingest", {"path": str(root)})
        assert report.is_error is False, report.content
        documents = {d["source"]: d["document_id"] for d in report.structured_content["documents"]}
        assert set(documents) == {"docs/README.md", "docs/guide.html"}
        assert any(s.startswith("docs/schema.sql: .sql files are not indexed")
                   for s in report.structured_content["skipped"])

        for query in ("hybrid_search", "MCP_SUITE_API_TOKENS", "max_chunk_words"):
            found = await client.call_tool("hybrid_search", {"query": query, "mode": "keyword"})
            hits = found.structured_content["hits"]
            assert documents["docs/README.md"] in {h["document_id"] for h in hits}, query
        listing = await client.call_tool("search", {"query": "MCP_SUITE_API_TOKENS static tokens"})
        assert listing.structured_content["results"][0]["id"] == documents["docs/README.md"]

        fetched = (await client.call_tool("fetch", {"id": documents["docs/README.md"]})).structured_content
        assert CODE_BLOCK in fetched["text"] and "MCP_SUITE_API_TOKENS" in fetched["text"]
        assert fetched["title"] == "mcp-suite search" and fetched["url"] == "docs/README.md"
        guide = (await client.call_tool("get_document", {"document_id": documents["docs/guide.html"]}))
        assert PRE_BLOCK in guide.structured_content["text"]
        assert "trackingSecret" not in guide.structured_content["text"]
