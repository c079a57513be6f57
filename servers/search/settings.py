"""The search server's settings (read by `shared.config.load`, documented in docs/configuration.md).

Listed in the search `SPEC` (`ServerSpec.settings`), so the command line checks them at start and
`mcp-suite doctor` reports `problems()`. Cheap to import (the registry imports it for `--help`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shared.config import flag, paths, setting


@dataclass(frozen=True)
class SearchSettings:
    """Where `ingest` may read, how documents' URLs are published, and the embedding model."""

    roots: tuple[str, ...] = setting(
        "MCP_SUITE_SEARCH_ROOTS", (), "folders the `ingest` tool may read, `:`-separated; unset: no paths",
        parse=paths)
    public_urls: str = setting(
        "MCP_SUITE_SEARCH_PUBLIC_URLS", "", "public base URL per root: `name=https://base/,…`")
    embedding_model: str | None = setting(
        "MCP_SUITE_EMBEDDING_MODEL", None, "folder of a sentence-transformers model",
        shown_default="the packaged all-MiniLM-L6-v2")
    warmup: bool = setting("MCP_SUITE_SEARCH_WARMUP", True, "load the model in the background at start", parse=flag)

    def problems(self) -> list[str]:
        """What is wrong beyond the syntax, for `mcp-suite doctor`: roots that are not readable folders."""
        bad = [root for root in self.roots
               if not Path(root).expanduser().is_dir() or not os.access(Path(root).expanduser(), os.R_OK)]
        return [f"search roots that are not readable folders: {', '.join(bad)}"] if bad else []
