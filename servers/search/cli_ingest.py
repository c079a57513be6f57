"""`mcp-suite ingest PATH…`: index files and directories from the command line, path by path.

Reads go through the core's `PathJail` like the `ingest` tool's. The roots, which also name the
documents (`<root>/<path>`, see `roots`): `--root` when given; else the server's
`MCP_SUITE_SEARCH_ROOTS` when the path lies inside one, so the command and the tool name a file
alike; else the directory itself, or a file's own folder.

Each path gets its own report line as soon as it is done (created, replaced, unchanged, skipped,
failed), followed by the skipped and failed files with the reason; a path that cannot be ingested
(missing, outside the roots) is reported and the others still run. Exit status 1 if any path or file
failed; files skipped on purpose (a type that is not indexed) do not count as failures.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from servers.search.embedder import Embedder
from servers.search.ingest_files import PathReport, ingest_path
from servers.search.query import SESSION_SETTINGS
from servers.search.roots import IngestRoots
from servers.search.settings import SearchSettings
from shared.config import Settings, load
from shared.db.embedded import resolve_database_url
from shared.db.migrate import prepare_database
from shared.db.pool import Database
from shared.errors import ToolFailure

SHOWN_PER_PATH = 20


async def _bar(done: float, total: float, label: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = int(width * done / total) if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {int(done)}/{int(total)} {label[:50]:50s}")
    sys.stderr.flush()


def roots_for(absolute: str, explicit: list[str] | None, env_roots: IngestRoots | None) -> IngestRoots:
    """The roots a path is read (and named) under; see the module docstring."""
    if explicit:
        return IngestRoots(explicit)
    if env_roots is not None and env_roots.contains(absolute):
        return env_roots
    return IngestRoots([absolute if os.path.isdir(absolute) else str(Path(absolute).parent)])


def _env_roots() -> IngestRoots | None:
    try:
        return IngestRoots.from_env() if load(SearchSettings).roots else None
    except ToolFailure:
        return None


def summary(raw: str, report: PathReport) -> list[str]:
    lines = [f"{raw}: {report.count('created')} created, {report.count('replaced')} replaced, "
             f"{report.count('unchanged')} unchanged, {report.skipped_count} skipped, {report.failed_count} failed"]
    shown = [f"  failed {entry}" for entry in report.failed] + [f"  skipped {entry}" for entry in report.skipped]
    lines += shown[:SHOWN_PER_PATH]
    hidden = report.failed_count + report.skipped_count - min(len(shown), SHOWN_PER_PATH)
    if hidden > 0:
        lines.append(f"  ... and {hidden} more")
    return lines


async def _run(paths: list[tuple[str, str]], roots: list[str] | None, fmt: str) -> int:
    url = resolve_database_url(Settings.from_env())
    await prepare_database(url)
    db = Database(url, session_settings=SESSION_SETTINGS)
    await db.open()
    embedder = Embedder()
    env_roots = _env_roots()
    failed = False
    try:
        for raw, absolute in paths:
            try:
                report = await ingest_path(db, embedder, roots_for(absolute, roots, env_roots), absolute, fmt=fmt,
                                           progress=_bar)
            except (ToolFailure, ValueError) as exc:  # ValueError: a --root that is not a directory
                failed = True
                print(f"{raw}: not ingested: {exc.message if isinstance(exc, ToolFailure) else exc}", flush=True)
                continue
            finally:
                if sys.stderr.isatty():
                    sys.stderr.write("\r\x1b[K")
            failed = failed or report.failed_count > 0
            print("\n".join(summary(raw, report)), flush=True)
    finally:
        await db.close()
    return 1 if failed else 0


def main(paths: list[str], *, roots: list[str] | None = None, fmt: str = "auto") -> int:
    try:
        return asyncio.run(_run([(p, os.path.abspath(p)) for p in paths], roots, fmt))
    except ToolFailure as exc:
        print(f"ingest failed: {exc.message}", file=sys.stderr)
        return 1
