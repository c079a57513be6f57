"""`mcp-suite ingest PATH…`: index files and directories from the command line, with a progress bar.

Reads go through the core's `PathJail` like the `ingest` tool's, confined to `--root` (default: each
path's own folder), so the command never follows a symlink out or blocks on a FIFO.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from servers.search.embedder import Embedder
from servers.search.ingest import files_under, ingest_content, read_text
from servers.search.query import SESSION_SETTINGS
from shared.config import Settings
from shared.embedded_db import resolve_database_url
from shared.errors import ToolFailure
from shared.migrate import prepare_database
from shared.paths import PathJail
from shared.pool import Database


def _bar(done: int, total: int, label: str) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label[:50]:50s}")
    sys.stderr.flush()


async def _run(paths: list[tuple[str, str]], roots: list[str] | None, fmt: str) -> int:
    url = resolve_database_url(Settings.from_env())
    await prepare_database(url)
    db = Database(url, session_settings=SESSION_SETTINGS)
    await db.open()
    embedder = Embedder()
    failures = 0
    try:
        for raw, absolute in paths:
            jail = PathJail(roots or [str(Path(absolute).parent)])
            files = files_under(jail, absolute)
            counts = {"created": 0, "replaced": 0, "unchanged": 0}
            for number, file_path in enumerate(files, start=1):
                _bar(number - 1, len(files), Path(file_path).name)
                try:
                    result = await ingest_content(db, embedder, read_text(jail, file_path), fmt=fmt,
                                                  name=file_path, source=file_path)
                    counts[result.status] += 1
                except ToolFailure as exc:
                    failures += 1
                    sys.stderr.write(f"\nskipped {file_path}: {exc.message}\n")
            _bar(len(files), len(files), "done")
            sys.stderr.write("\n")
            print(f"{raw}: {counts['created']} created, {counts['replaced']} replaced, "
                  f"{counts['unchanged']} unchanged, {failures} skipped")
    finally:
        await db.close()
    return 1 if failures else 0


def main(paths: list[str], *, roots: list[str] | None = None, fmt: str = "auto") -> int:
    try:
        return asyncio.run(_run([(p, os.path.abspath(p)) for p in paths], roots, fmt))
    except ToolFailure as exc:
        print(f"ingest failed: {exc.message}", file=sys.stderr)
        return 1
