"""Hybrid search: exact BM25 computed inside PostgreSQL plus pgvector embeddings, fused by RRF.

`cli` registers its commands (`ingest`, `eval search`, `bench search`); the lab tooling they run
(benchmark, evaluation, scratch databases) is in `lab/`, apart from the serving modules.
"""

from servers.search.cli import add_cli
from servers.search.settings import SearchSettings
from shared.server_spec import Need, ServerSpec

SPEC = ServerSpec(
    name="search", app="servers.search.tools:app",
    summary="hybrid search: BM25 in PostgreSQL plus pgvector embeddings, fused by RRF",
    # Read by `servers.search.roots.IngestRoots.from_env` (via `load(SearchSettings)`): without it,
    # the `ingest` tool refuses paths.
    needs=(Need("MCP_SUITE_SEARCH_ROOTS",
                "folders the `ingest` tool may read (separated by ':'); unset, ingest from paths is disabled",
                "/home/you/Documents"),),
    add_cli=add_cli,
    settings=(SearchSettings,),
)
