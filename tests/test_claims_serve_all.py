"""The shipped servers behind a real `mcp-suite serve all` (no test-only server), over streamable HTTP
and SSE, with the auth matrix: no token, wrong token, wrong scope, good token.

README: "A remote client connects to `http://HOST:8765/profiles/mcp` with `Authorization: Bearer
<token>` … Without a token the server answers 401 with a `WWW-Authenticate` challenge and RFC 9728
metadata; a tool the token's scopes do not allow answers 403 `insufficient_scope` and is hidden from
`tools/list`." Each refused call must change nothing and leave an audit record.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from datetime import timedelta
from types import SimpleNamespace

import asyncpg
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from shared.auth import tokens
from tests.interop.harness import LEGACY_HEADERS, ServeProcess, base_env, call_body, sse_result

# server → (a write call the reader token may not make, a read call it may, the reader's scope)
CALLS = {
    "profiles": (("create_profile", {"display_name": "Refused", "email": "refused@example.com"}),
                 ("search_profiles", {"limit": 1}), "profiles:read"),
    "search": (("ingest", {"content": "refused content", "document_id": "refused-doc"}),
               ("hybrid_search", {"query": "lighthouse", "mode": "keyword"}), "search:read"),
}
WRITE_SCOPES = "profiles:read profiles:write search:read search:write"


@pytest.fixture(scope="module")
async def suite(make_database, db_connection):
    async with make_database() as url, db_connection(url) as conn:
        made = {}
        for name, scopes in [("full", WRITE_SCOPES), ("reader", "profiles:read search:read")]:
            made[name], _ = await tokens.create_token(conn, principal=f"serve-all-{name}", scopes=scopes,
                                                      expires_in=timedelta(hours=1))
        made["wrong"] = "mcps_" + secrets.token_urlsafe(32)
        # the shipped registry (MCP_SUITE_SERVERS unset); keyword search needs no model, so no warm-up
        env = base_env(url, MCP_SUITE_SEARCH_WARMUP="0")
        env.pop("MCP_SUITE_SERVERS", None)
        server = ServeProcess(["all", "--transport", "http"], env)
        await asyncio.to_thread(server.start, 90.0)
        try:
            yield SimpleNamespace(url=url, conn=conn, tokens=made, base=server.url, server=server)
        finally:
            server.stop()


def bearer(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


async def post(suite, path: str, body: object, token: str | None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{suite.base}{path}", content=json.dumps(body),
                                 headers={**LEGACY_HEADERS, **bearer(token)})


async def audit_for(suite, request_id: str) -> list[asyncpg.Record]:
    return await suite.conn.fetch("SELECT * FROM audit_log WHERE request_id = $1 ORDER BY seq", request_id)


async def side_effects(suite) -> tuple[int, int]:
    profiles = await suite.conn.fetchval("SELECT count(*) FROM profiles WHERE email = 'refused@example.com'")
    documents = await suite.conn.fetchval("SELECT count(*) FROM search_documents WHERE id = 'refused-doc'")
    return profiles, documents


async def test_both_shipped_servers_are_served(suite):
    async with httpx.AsyncClient(timeout=10) as client:
        ready = await client.get(f"{suite.base}/readyz")
        for name in CALLS:
            meta = await client.get(f"{suite.base}/.well-known/oauth-protected-resource/{name}/mcp")
            assert meta.status_code == 200 and meta.json()["resource"] == f"{suite.base}/{name}/mcp"
            assert f"{name}:write" in meta.json()["scopes_supported"]
        missing = await client.post(f"{suite.base}/notes/mcp", headers=bearer(suite.tokens["full"]))
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert missing.status_code == 404  # only the registry's servers are mounted


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("who", ["no token", "wrong token"])
async def test_http_without_a_valid_token_is_401_with_challenge(suite, name, who):
    write, _, _ = CALLS[name]
    token = None if who == "no token" else suite.tokens["wrong"]
    response = await post(suite, f"/{name}/mcp", call_body(*write), token)
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert f"/.well-known/oauth-protected-resource/{name}/mcp" in challenge
    async with httpx.AsyncClient(timeout=10) as client:
        metadata = (await client.get(f"{suite.base}/.well-known/oauth-protected-resource/{name}/mcp")).json()
    assert metadata["resource"] == f"{suite.base}/{name}/mcp"
    assert await side_effects(suite) == (0, 0)
    (row,) = await audit_for(suite, response.headers["x-request-id"])
    assert (row["server"], row["principal"], row["outcome"], row["error_class"]) == (
        name, "anonymous", "error", "unauthenticated")


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_http_wrong_scope_is_403_insufficient_scope(suite, name):
    (tool, arguments), _, _ = CALLS[name]
    response = await post(suite, f"/{name}/mcp", call_body(tool, arguments), suite.tokens["reader"])
    assert response.status_code == 403, response.text
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and f'scope="{name}:write"' in challenge
    assert await side_effects(suite) == (0, 0)
    (row,) = await audit_for(suite, response.headers["x-request-id"])
    assert (row["tool"], row["principal"], row["error_class"]) == (tool, "serve-all-reader", "permission_denied")


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_http_good_token_calls_and_tools_list_hides_what_the_scope_forbids(suite, name):
    (write, _), (read, read_args), _ = CALLS[name]
    response = await post(suite, f"/{name}/mcp", call_body(read, read_args), suite.tokens["reader"])
    assert response.status_code == 200 and sse_result(response)["result"]["isError"] is False
    (row,) = await audit_for(suite, response.headers["x-request-id"])
    assert (row["tool"], row["principal"], row["transport"], row["outcome"]) == (read, "serve-all-reader", "http",
                                                                                 "ok")
    names = {}
    for who in ("reader", "full"):
        client = httpx2.AsyncClient(headers=bearer(suite.tokens[who]), timeout=30)
        async with Client(streamable_http_client(f"{suite.base}/{name}/mcp", http_client=client)) as mcp:
            names[who] = {tool.name for tool in (await mcp.list_tools()).tools}
    assert read in names["reader"] and write not in names["reader"]
    assert names["reader"] < names["full"] and write in names["full"]


async def sse_messages_url(client: httpx.AsyncClient, suite, name: str, token: str):
    """Open an SSE stream; return (the stream's context, the URL its messages are posted to)."""
    stream = client.stream("GET", f"{suite.base}/{name}/sse", headers=bearer(token))
    response = await stream.__aenter__()
    assert response.status_code == 200
    lines = response.aiter_lines()
    async for line in lines:
        if line.startswith("data:"):
            return stream, suite.base + line[5:].strip()
    raise AssertionError("no endpoint event on the SSE stream")


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_sse_auth_matrix(suite, name):
    (write, write_args), (read, read_args), _ = CALLS[name]
    async with httpx.AsyncClient(timeout=30) as client:
        for token in (None, suite.tokens["wrong"]):
            refused = await client.get(f"{suite.base}/{name}/sse", headers=bearer(token))
            assert refused.status_code == 401 and "resource_metadata=" in refused.headers["www-authenticate"]
        stream, messages = await sse_messages_url(client, suite, name, suite.tokens["reader"])
        try:
            scoped = await client.post(messages, content=json.dumps(call_body(write, write_args)),
                                       headers={"content-type": "application/json", **bearer(suite.tokens["reader"])})
        finally:
            await stream.__aexit__(None, None, None)
    assert scoped.status_code == 403 and 'error="insufficient_scope"' in scoped.headers["www-authenticate"]
    assert await side_effects(suite) == (0, 0)
    (row,) = await audit_for(suite, scoped.headers["x-request-id"])
    assert (row["tool"], row["transport"], row["error_class"]) == (write, "sse", "permission_denied")
    marker = uuid.uuid4().hex[:8]
    async with Client(sse_client(f"{suite.base}/{name}/sse", headers=bearer(suite.tokens["full"])),
                      mode="legacy") as mcp:
        listed = {tool.name for tool in (await mcp.list_tools()).tools}
        result = await mcp.call_tool(read, read_args)
        if name == "search":
            written = await mcp.call_tool("ingest", {"content": f"sse {marker} document", "document_id": marker})
        else:
            written = await mcp.call_tool("create_profile", {"display_name": "Over SSE",
                                                             "email": f"sse-{marker}@example.com"})
    assert {read, write} <= listed
    assert result.is_error is False and written.is_error is False, written.content[0].text
    rows = await suite.conn.fetch("SELECT tool, outcome FROM audit_log WHERE server = $1 AND phase = 'result'"
                                  " AND principal = 'serve-all-full' AND transport = 'sse' ORDER BY seq", name)
    assert [(r["tool"], r["outcome"]) for r in rows][-2:] == [(read, "ok"), (write, "ok")]
