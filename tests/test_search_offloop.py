"""Ingest blocks no other coroutine, and its deadline stops it between files with the index consistent.

Slow disks are injected (fault injection, not fakes of what users run): each directory listing or
file read waits until another coroutine on the event loop has run. Done on the loop, such a read
could never finish (the loop would be blocked waiting on itself), so these tests fail by timing out
on their condition rather than by measuring a stall.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from contextlib import contextmanager

import pytest

from servers.search import ingest as ingest_module
from servers.search import ingest_files
from servers.search.embedder import Embedder
from servers.search.index import consistency_problems
from servers.search.roots import IngestRoots
from servers.search.tools import app
from shared.fs import walk
from shared.identity import Principal

USER = Principal("searcher", frozenset({"search:read", "search:write"}), "test")


class LoopTicks:
    """Counts turns of a coroutine on the event loop; a worker thread can wait for the next turn."""

    def __init__(self) -> None:
        self.count = 0
        self.waits = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.count += 1
            await asyncio.sleep(0.001)

    def wait_for_turn(self) -> None:
        """Called in place of blocking I/O: returns once the loop has run again (or fails after 20 s)."""
        self.waits += 1
        seen, limit = self.count, time.monotonic() + 20
        while self.count <= seen + 1:
            if time.monotonic() > limit:
                raise AssertionError("the event loop did not run while blocking ingest work was in progress")
            time.sleep(0.0005)


@contextmanager
def ticking():
    ticks, stop = LoopTicks(), asyncio.Event()
    task = asyncio.get_running_loop().create_task(ticks.run(stop))
    try:
        yield ticks
    finally:
        stop.set()
        task.cancel()


@pytest.fixture
async def db(make_database):
    async with make_database() as url:
        yield url


def make_tree(root, directories: int, files_each: int) -> None:
    for d in range(directories):
        folder = root / f"d{d:03}"
        folder.mkdir(parents=True)
        for f in range(files_each):
            (folder / f"n{f}.md").write_text(f"# Note {d} {f}\n\nPebble{d}x{f} lies by river{d}.")


async def test_walks_reads_and_parsing_leave_the_loop_free(connect, db, tmp_path, monkeypatch):
    root = tmp_path / "tree"
    make_tree(root, directories=4, files_each=2)
    monkeypatch.setenv("MCP_SUITE_SEARCH_ROOTS", str(root))
    real_list, real_read, real_parse = walk.list_entries, ingest_files.read_file, ingest_module.parse_document
    async with connect(app, principal=USER, url=db) as client:
        with ticking() as ticks:
            monkeypatch.setattr(walk, "list_entries", lambda fd: (ticks.wait_for_turn(), real_list(fd))[1])
            monkeypatch.setattr(ingest_files, "read_file", lambda *a: (ticks.wait_for_turn(), real_read(*a))[1])
            monkeypatch.setattr(ingest_module, "parse_document",
                                lambda *a, **k: (ticks.wait_for_turn(), real_parse(*a, **k))[1])
            result = await client.call_tool("ingest", {"path": str(root)})
    assert result.is_error is False, result.content
    assert len(result.structured_content["documents"]) == 8
    assert ticks.waits == 5 + 8 + 8  # listings (root + 4 folders), reads, parses: each waited for the loop


async def test_deadline_stops_a_long_ingest_between_files(connect, db, tmp_path, monkeypatch, db_connection):
    root = tmp_path / "tree"
    make_tree(root, directories=1, files_each=40)
    monkeypatch.setenv("MCP_SUITE_SEARCH_ROOTS", str(root))
    reads = {"started": 0}
    reading = threading.Lock()
    real_read = ingest_files.read_file

    def slow_read(*args):  # a slow disk: every file takes 0.3 s
        with reading:
            reads["started"] += 1
            time.sleep(0.3)
            return real_read(*args)

    monkeypatch.setattr(ingest_files, "read_file", slow_read)
    declared = app.policies["ingest"]
    app.policies["ingest"] = dataclasses.replace(declared, timeout=2.0)  # the deadline, shortened for this test
    try:
        async with connect(app, principal=USER, url=db) as client:
            result = await client.call_tool("ingest", {"path": str(root)})
            stats = (await client.call_tool("index_stats", {})).structured_content
    finally:
        app.policies["ingest"] = declared
    assert result.is_error and result.content[0].text.startswith("timeout:"), result.content
    await asyncio.to_thread(lambda: (reading.acquire(), reading.release()))  # the read in flight ends
    started = reads["started"]
    assert 0 < started < 40
    await asyncio.sleep(0.7)  # room for two more reads, had the ingest carried on after its deadline
    assert reads["started"] == started
    async with db_connection(db) as conn:
        assert await consistency_problems(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM search_documents") == stats["documents"] < 40


async def test_a_cancelled_walk_stops_in_its_thread(tmp_path, monkeypatch):
    """The walk runs in one worker thread; cancelling the ingest sets its stop flag, so it ends early."""
    make_tree(tmp_path / "tree", directories=60, files_each=1)
    roots = IngestRoots([str(tmp_path / "tree")])
    listed, walk_ended = [], threading.Event()
    real_list, real_discover = walk.list_entries, ingest_files.discover

    def slow_list(fd):
        listed.append(fd)
        time.sleep(0.05)
        return real_list(fd)

    def discover(*args, **kwargs):
        try:
            return real_discover(*args, **kwargs)
        finally:
            walk_ended.set()

    monkeypatch.setattr(walk, "list_entries", slow_list)
    monkeypatch.setattr(ingest_files, "discover", discover)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await ingest_files.ingest_path(None, Embedder(), roots, ".")  # type: ignore[arg-type]
    assert await asyncio.to_thread(walk_ended.wait, 30)
    assert len(listed) < 61  # 60 folders and the root, had the walk gone on to the end
