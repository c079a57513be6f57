"""The policy stack end to end over real in-memory MCP sessions and the real database.

Every test calls as its own principal (a fresh id) and reads back only that principal's audit rows, so
no test depends on what another one wrote or on the order they run in.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest
from aiolimiter import AsyncLimiter

from examples.clock_server import app as clock_app
from shared.identity import Principal
from shared.policy import Policy
from shared.server import SuiteServer
from tests.support.db import open_connection


def caller(name: str, *scopes: str) -> Principal:
    return Principal(f"{name}-{uuid.uuid4().hex[:8]}", frozenset(scopes), "test")


async def audit_rows(url: str, principal: Principal) -> list[asyncpg.Record]:
    async with open_connection(url) as conn:
        return await conn.fetch("SELECT * FROM audit_log WHERE principal = $1 ORDER BY seq", principal.id)


async def test_readme_example_tool_works(connect, database_url):
    reader = caller("reader", "clock:read")
    async with connect(clock_app, principal=reader) as client:
        tools = await client.list_tools()
        tool = next(t for t in tools.tools if t.name == "database_time")
        assert tool.annotations.read_only_hint is True
        assert tool.output_schema is not None
        result = await client.call_tool("database_time", {"timezone": "Europe/Paris"})
    assert result.is_error is False
    assert result.structured_content["timezone"] == "Europe/Paris"
    (row,) = await audit_rows(database_url, reader)
    assert (row["tool"], row["outcome"], row["error_class"], row["phase"]) == ("database_time", "ok", None, "result")
    assert row["latency_ms"] > 0 and row["result_bytes"] > 0


async def test_bad_input_is_a_clear_error_without_internals(connect, database_url):
    bad = caller("bad-input", "clock:read")
    async with connect(clock_app, principal=bad) as client:
        result = await client.call_tool("database_time", {"timezone": "Mars/Olympus'; DROP TABLE x; --"})
        wrong_type = await client.call_tool("database_time", {"timezone": 42})
    assert result.is_error
    text = result.content[0].text
    assert "invalid_input" in text and "unknown timezone" in text
    assert wrong_type.is_error and "invalid_input" in wrong_type.content[0].text
    for message in (text, wrong_type.content[0].text):
        assert "Traceback" not in message and "SELECT" not in message and "/" not in message.split(":", 1)[0]
    rows = await audit_rows(database_url, bad)
    assert [(r["outcome"], r["error_class"]) for r in rows] == [("error", "invalid_input")] * 2


async def test_missing_scope_is_refused_hidden_and_audited(connect, database_url):
    nobody = caller("nobody")
    async with connect(clock_app, principal=nobody) as client:
        listed = await client.list_tools()
        result = await client.call_tool("database_time", {})
    assert "database_time" not in {t.name for t in listed.tools}
    assert result.is_error and "permission_denied" in result.content[0].text
    (row,) = await audit_rows(database_url, nobody)
    assert (row["tool"], row["outcome"], row["error_class"]) == ("database_time", "error", "permission_denied")


class FrozenLoop:
    """The running loop as the rate limiter sees it, with time standing still (nothing drains)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._real = loop
        self.now = loop.time()

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        return getattr(self._real, name)


async def test_rate_limit_rejects_immediately_with_retry_hint(connect, database_url, monkeypatch):
    """Rate(5, per=1.0): with the limiter's clock frozen, calls 6 and 7 are refused, exactly."""
    frozen = FrozenLoop(asyncio.get_running_loop())
    monkeypatch.setattr(AsyncLimiter, "_loop", property(lambda _self: frozen))
    limited = caller("burst", "clock:read")
    async with connect(clock_app, principal=limited) as client:
        results = [await client.call_tool("database_time", {}) for _ in range(7)]
    assert [r.is_error for r in results] == [False] * 5 + [True] * 2
    for refused in results[5:]:
        # a full bucket of 5 drains at 5/s: one more call fits after 0.2 s
        assert refused.content[0].text == ("rate_limited: rate limit of 5 calls per 1s exceeded for database_time;"
                                           " retry in 0.20 s")
    rows = await audit_rows(database_url, limited)
    assert [(r["outcome"], r["error_class"]) for r in rows] == [("ok", None)] * 5 + [("error", "rate_limited")] * 2


broken = SuiteServer("broken", instructions="A tool whose body fails in a way nobody planned for.")
SECRET_DETAIL = "could not open /var/lib/secret.key: SELECT password FROM users -- token=hunter2"


@broken.tool(Policy(scopes={"broken:read"}, read_only=True, timeout=5.0))
async def explode(note: str = "") -> str:
    """Always fails with an unexpected exception carrying internal details."""
    raise RuntimeError(SECRET_DETAIL)


async def test_unexpected_exception_is_a_generic_internal_error(connect, database_url, caplog):
    crash = caller("crash", "broken:read")
    with caplog.at_level(logging.ERROR, logger="shared.tool"):
        async with connect(broken, principal=crash) as client:
            result = await client.call_tool("explode", {"note": "hello"})
    assert result.is_error
    text = result.content[0].text
    assert text == "internal: the tool failed unexpectedly; the incident was logged"
    assert result.structured_content is None
    (row,) = await audit_rows(database_url, crash)
    assert (row["server"], row["tool"], row["outcome"], row["error_class"]) == ("broken", "explode", "error",
                                                                                "internal")
    assert "secret" not in row["body"] and "hunter2" not in row["body"]
    # The details went to the server log, under the same request id as the audit record.
    logged = [r for r in caplog.records if row["request_id"] in r.getMessage()]
    assert logged and logged[0].exc_info[0] is RuntimeError and SECRET_DETAIL in str(logged[0].exc_info[1])


@pytest.mark.parametrize("payload", ["x" * 1_000_000, "a\x00b", "\ud800"])
async def test_hostile_strings_are_refused_and_audited(connect, database_url, payload):
    hostile = caller("hostile", "clock:read")
    async with connect(clock_app, principal=hostile) as client:
        result = await client.call_tool("database_time", {"timezone": payload})
    assert result.is_error and "invalid_input" in result.content[0].text
    assert len(result.content[0].text) < 300
    (row,) = await audit_rows(database_url, hostile)
    assert (row["outcome"], row["error_class"]) == ("error", "invalid_input")
