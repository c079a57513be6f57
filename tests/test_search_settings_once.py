"""Search settings are worked out once per configuration, not per call or per result row."""

from __future__ import annotations

import logging

from servers.search.roots import IngestRoots, public_bases


def test_a_bad_public_url_is_logged_once_not_per_result(caplog, monkeypatch):
    monkeypatch.setenv("MCP_SUITE_SEARCH_PUBLIC_URLS", "docs=https://example.org/docs,broken-once")
    with caplog.at_level(logging.WARNING):
        for _ in range(50):  # a search with 50 hits asks for the bases once per call
            assert public_bases() == {"docs": "https://example.org/docs/"}
    assert sum("broken-once" in r.getMessage() for r in caplog.records) == 1


def test_ingest_roots_are_built_once_per_configuration(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv("MCP_SUITE_SEARCH_ROOTS", str(tmp_path / "a"))
    first = IngestRoots.from_env()
    assert IngestRoots.from_env() is first  # the jail keeps the identity the root had when first opened
    monkeypatch.setenv("MCP_SUITE_SEARCH_ROOTS", str(tmp_path / "b"))
    assert IngestRoots.from_env() is not first and IngestRoots.from_env().given == (str(tmp_path / "b"),)
