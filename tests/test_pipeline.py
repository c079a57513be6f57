"""The policy stack end to end over real in-memory MCP sessions and the real database."""

from __future__ import annotations

import asyncpg
import pytest

from examples.clock_server import app as clock_app
from shared.identity import Principal

READER = Principal("reader", frozenset({"clock:read"}), "test")
NOBODY = Principal("nobody", frozenset(), "test")


async def audit_rows(url: str, tool: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT * FROM audit_log WHERE tool = $1 ORDER BY seq", tool)
    finally:
        await conn.close()


async def test_readme_example_tool_works(connect, database_url):
    async with connect(clock_app, principal=READER) as client:
        tools = await client.list_tools()
        tool = next(t for t in tools.tools if t.name == "database_time")
        assert tool.annotations.read_only_hint is True
        assert tool.output_schema is not None
        result = await client.call_tool("database_time", {"timezone": "Europe/Paris"})
    assert result.is_error is False
    assert result.structured_content["timezone"] == "Europe/Paris"
    rows = await audit_rows(database_url, "database_time")
    assert rows[-1]["outcome"] == "ok" and rows[-1]["principal"] == "reader"


async def test_bad_input_is_a_clear_error_without_internals(connect):
    caller = Principal("bad-input", frozenset({"clock:read"}), "test")
    async with connect(clock_app, principal=caller) as client:
        result = await client.call_tool("database_time", {"timezone": "Mars/Olympus'; DROP TABLE x; --"})
        wrong_type = await client.call_tool("database_time", {"timezone": 42})
    assert result.is_error
    text = result.content[0].text
    assert "invalid_input" in text and "unknown timezone" in text
    assert wrong_type.is_error and "invalid_input" in wrong_type.content[0].text
    for message in (text, wrong_type.content[0].text):
        assert "Traceback" not in message and "SELECT" not in message and "/" not in message.split(":", 1)[0]


async def test_missing_scope_is_refused_hidden_and_audited(connect, database_url):
    before = len(await audit_rows(database_url, "database_time"))
    async with connect(clock_app, principal=NOBODY) as client:
        listed = await client.list_tools()
        result = await client.call_tool("database_time", {})
    assert "database_time" not in {t.name for t in listed.tools}
    assert result.is_error and "permission_denied" in result.content[0].text
    rows = await audit_rows(database_url, "database_time")
    assert len(rows) == before + 1
    assert rows[-1]["error_class"] == "permission_denied" and rows[-1]["principal"] == "nobody"


async def test_rate_limit_rejects_immediately_with_retry_hint(connect):
    limited = Principal("burst", frozenset({"clock:read"}), "test")
    async with connect(clock_app, principal=limited) as client:
        results = [await client.call_tool("database_time", {}) for _ in range(7)]
    errors = [r for r in results if r.is_error]
    assert len(errors) >= 1
    assert "rate_limited" in errors[0].content[0].text and "retry" in errors[0].content[0].text


@pytest.mark.parametrize("payload", ["x" * 1_000_000, "a\x00b", "\ud800"])
async def test_hostile_strings_are_refused_and_audited(connect, database_url, payload):
    caller = Principal(f"hostile-{len(payload)}-{ord(payload[-1])}", frozenset({"clock:read"}), "test")
    async with connect(clock_app, principal=caller) as client:
        result = await client.call_tool("database_time", {"timezone": payload})
    assert result.is_error and "invalid_input" in result.content[0].text
    assert len(result.content[0].text) < 300
    rows = await audit_rows(database_url, "database_time")
    assert rows[-1]["error_class"] == "invalid_input"
