"""The HTTP transports end to end: a real `mcp-suite serve all` subprocess, real tokens, real audit.

The auth matrix sends `tools/call add_note` (a side effect: a row in `test_notes`) as each kind of
caller that must be refused, and checks the status, that no note was written, and that the audit
log holds a refusal with the request id the response carried. A caller without a valid token is
refused from the headers alone, before its body is read, so its refusal records tool `-`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace

import asyncpg
import httpx
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.client import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from shared.auth import tokens
from shared.auth.jwt import jwt_principal
from tests.interop.harness import LEGACY_HEADERS, ServeProcess, base_env, call_body, sse_result
from tests.support.db import open_connection

SERVERS = "tests.interop.fixture_servers:notes,examples.clock_server:app"
ISSUER, AUDIENCE = "https://idp.example.test", "mcp-suite-test"


def _jwt(key: rsa.RSAPrivateKey, *, audience: str = AUDIENCE, expires_in: int = 300, scope: str = "notes:write",
         sub: str = "jwt-user") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "sub": sub, "scope": scope, "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, key, algorithm="RS256")


@pytest.fixture(scope="module")
async def site(make_database, tmp_path_factory, db_connection):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path_factory.mktemp("jwt") / "idp.pem"
    key_file.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    async with make_database() as url, db_connection(url) as conn:
        await create_notes_table(conn)
        made = {}
        for name, scopes in [("writer", "notes:read notes:write clock:read"), ("reader", "notes:read"),
                             ("expired", "notes:write"), ("revoked", "notes:write")]:
            made[name], info = await tokens.create_token(conn, principal=name, scopes=scopes,
                                                         expires_in=timedelta(days=1))
            if name == "expired":
                await conn.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
                                   info.id)
            if name == "revoked":
                assert await tokens.revoke_token(conn, info.id)
        made["env"] = tokens.new_secret()
        metrics_token = secrets.token_urlsafe(16)
        env = base_env(url, MCP_SUITE_SERVERS=SERVERS, MCP_SUITE_JWT_ISSUER=ISSUER, MCP_SUITE_JWT_AUDIENCE=AUDIENCE,
                       MCP_SUITE_JWT_KEYS_FILE=str(key_file), MCP_SUITE_MAX_BODY_BYTES="65536",
                       MCP_SUITE_API_TOKENS=f"envuser|notes:read|{made['env']}", MCP_SUITE_METRICS_TOKEN=metrics_token)
        server = ServeProcess(["all", "--transport", "http"], env)
        await asyncio.to_thread(server.start)
        try:
            yield SimpleNamespace(url=url, conn=conn, tokens=made, key=key, server=server, base=server.url,
                                  metrics_token=metrics_token)
        finally:
            server.stop()


async def create_notes_table(conn: asyncpg.Connection) -> None:
    """The notes fixture's table, made as the owner role: servers connect as the app role, which cannot."""
    await conn.execute("SET ROLE mcp_suite_owner")
    await conn.execute("CREATE TABLE IF NOT EXISTS test_notes (id bigserial PRIMARY KEY, text text NOT NULL)")
    await conn.execute("RESET ROLE")


@contextlib.asynccontextmanager
async def notes_database(make_database, principal: str, scopes: str = "notes:read notes:write",
                         ) -> AsyncIterator[tuple[str, asyncpg.Connection, str]]:
    """A fresh database with the notes fixture's table and a token for `principal`: (url, conn, secret)."""
    async with make_database() as url, open_connection(url) as conn:
        await create_notes_table(conn)
        secret, _ = await tokens.create_token(conn, principal=principal, scopes=scopes, expires_in=timedelta(days=1))
        yield url, conn, secret


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def post(site, path: str, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as client:
        return await client.post(f"{site.base}{path}", content=json.dumps(body),
                                 headers={**LEGACY_HEADERS, **(headers or {})})


async def audit_for(site, request_id: str) -> list[asyncpg.Record]:
    """The outcome records of a request (a state-changing tool also has an `intent` record before it)."""
    return await site.conn.fetch("SELECT * FROM audit_log WHERE request_id = $1 AND phase = 'result' ORDER BY seq",
                                 request_id)


async def notes_with(site, text: str) -> int:
    exists = await site.conn.fetchval("SELECT to_regclass('test_notes') IS NOT NULL")
    return await site.conn.fetchval("SELECT count(*) FROM test_notes WHERE text = $1", text) if exists else 0


async def test_a_valid_token_calls_a_tool_and_the_audit_has_its_principal_and_request_id(site):
    response = await post(site, "/notes/mcp", call_body("add_note", {"text": "allowed"}), bearer(site.tokens["writer"]))
    assert response.status_code == 200
    assert sse_result(response)["result"]["isError"] is False
    assert await notes_with(site, "allowed") == 1
    rows = await audit_for(site, response.headers["x-request-id"])
    assert [(r["principal"], r["outcome"], r["transport"]) for r in rows] == [("writer", "ok", "http")]


DESCRIPTIONS = {  # what the 401's error_description says (same status and challenge for all)
    "no token": "no bearer token was sent", "wrong token": "the token is not known to this server",
    "malformed token": "the token is not known to this server", "expired": "the token has expired",
    "revoked": "the token has been revoked", "expired jwt": "the token has expired",
    "wrong audience": "the token is not valid for this server (signature, issuer, audience or format)",
}


def _cases(site) -> dict[str, tuple[dict[str, str], int, str]]:
    t = site.tokens
    return {
        "no token": ({}, 401, "unauthenticated"),
        "wrong token": (bearer("mcps_" + secrets.token_urlsafe(32)), 401, "unauthenticated"),
        "malformed token": (bearer("not-a-token"), 401, "unauthenticated"),
        "expired": (bearer(t["expired"]), 401, "unauthenticated"),
        "revoked": (bearer(t["revoked"]), 401, "unauthenticated"),
        "wrong scope": (bearer(t["reader"]), 403, "permission_denied"),
        "wrong audience": (bearer(_jwt(site.key, audience="another-service")), 401, "unauthenticated"),
        "expired jwt": (bearer(_jwt(site.key, expires_in=-120)), 401, "unauthenticated"),
        "bad origin": ({**bearer(t["writer"]), "origin": "http://evil.example"}, 403, "transport_refused"),
        "bad host": ({**bearer(t["writer"]), "host": "evil.example:80"}, 421, "transport_refused"),
        "no token, bad host": ({"host": "evil.example:80"}, 421, "transport_refused"),
    }


@pytest.mark.parametrize("case", ["no token", "wrong token", "malformed token", "expired", "revoked", "wrong scope",
                                  "wrong audience", "expired jwt", "bad origin", "bad host", "no token, bad host"])
async def test_auth_matrix_refuses_runs_nothing_and_audits(site, case):
    headers, status, error_class = _cases(site)[case]
    response = await post(site, "/notes/mcp", call_body("add_note", {"text": f"refused: {case}"}), headers)
    assert response.status_code == status, response.text
    if status == 401:
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
        assert "resource_metadata=" in challenge and "/.well-known/oauth-protected-resource/notes/mcp" in challenge
        assert response.json()["error_description"] == DESCRIPTIONS[case]
        assert f'error_description="{DESCRIPTIONS[case]}"' in challenge
    if case == "wrong scope":
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and 'scope="notes:write"' in challenge
    assert await notes_with(site, f"refused: {case}") == 0
    rows = await audit_for(site, response.headers["x-request-id"])
    assert len(rows) == 1, f"one refusal record expected, got {len(rows)}"
    row = rows[0]
    unread = status == 401 or case == "no token, bad host"  # refused before the body was read
    assert (row["tool"], row["outcome"], row["error_class"]) == ("-" if unread else "add_note", "error", error_class)
    body = json.loads(row["body"])
    assert body["http_status"] == status
    if unread:
        assert row["principal"] == "anonymous" and body["arguments"] == {}  # no unauthenticated input stored
    else:
        assert row["principal"] == ("reader" if case == "wrong scope" else "writer")


async def test_a_jwt_from_the_configured_issuer_and_audience_is_accepted(site):
    response = await post(site, "/notes/mcp", call_body("add_note", {"text": "via jwt"}), bearer(_jwt(site.key)))
    assert response.status_code == 200 and sse_result(response)["result"]["isError"] is False
    rows = await audit_for(site, response.headers["x-request-id"])
    assert rows[0]["principal"] == jwt_principal(ISSUER, "jwt-user") and rows[0]["outcome"] == "ok"


async def test_a_token_from_the_environment_is_registered_at_start(site):
    for _ in range(50):
        response = await post(site, "/notes/mcp", call_body("echo", {"text": "env"}), bearer(site.tokens["env"]))
        if response.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert response.status_code == 200 and sse_result(response)["result"]["isError"] is False
    rows = await audit_for(site, response.headers["x-request-id"])
    assert rows[0]["principal"] == "envuser"


async def test_tools_the_caller_may_not_use_are_hidden(site):
    client = httpx2.AsyncClient(headers=bearer(site.tokens["reader"]), timeout=15)
    async with Client(streamable_http_client(f"{site.base}/notes/mcp", http_client=client)) as mcp:
        names = {tool.name for tool in (await mcp.list_tools()).tools}
        result = await mcp.call_tool("echo", {"text": "seen"})
    assert names == {"echo", "count_notes"}
    assert result.is_error is False and result.content[0].text == "seen"


async def test_sse_needs_a_token_and_leaves_the_server_running_after_it_closes(site):
    async with httpx.AsyncClient(timeout=5) as client:
        refused = await client.get(f"{site.base}/notes/sse")
    assert refused.status_code == 401 and "resource_metadata=" in refused.headers["www-authenticate"]
    transport = sse_client(f"{site.base}/notes/sse", headers=bearer(site.tokens["writer"]))
    async with Client(transport, mode="legacy") as mcp:
        result = await mcp.call_tool("add_note", {"text": "over sse"})
    assert result.is_error is False
    rows = await site.conn.fetch("SELECT transport, principal FROM audit_log WHERE tool = 'add_note' "
                                 "AND outcome = 'ok' AND transport = 'sse'")
    assert [(r["transport"], r["principal"]) for r in rows] == [("sse", "writer")]
    # the SSE connection's lifespan reference is gone; the process-wide one keeps the server up
    response = await post(site, "/clock/mcp", call_body("database_time"), bearer(site.tokens["writer"]))
    assert response.status_code == 200 and sse_result(response)["result"]["isError"] is False


async def test_protected_resource_metadata(site):
    async with httpx.AsyncClient(timeout=5) as client:
        meta = (await client.get(f"{site.base}/.well-known/oauth-protected-resource/notes/mcp")).json()
    assert meta["resource"] == f"{site.base}/notes/mcp"
    assert meta["authorization_servers"] == [ISSUER]  # the identity provider; see test_http_hardening without one
    assert {"notes:read", "notes:write"} <= set(meta["scopes_supported"])


async def test_request_body_limit(site):
    big = call_body("echo", {"text": "x" * 100_000})
    response = await post(site, "/notes/mcp", big, bearer(site.tokens["writer"]))
    assert response.status_code == 413


async def test_health_readiness_and_metrics(site):
    await post(site, "/notes/mcp", call_body("echo", {"text": "m"}), bearer(site.tokens["writer"]))
    async with httpx.AsyncClient(timeout=5) as client:
        health = await client.get(f"{site.base}/healthz")
        ready = await client.get(f"{site.base}/readyz", headers=bearer(site.metrics_token))
        scraped = (await client.get(f"{site.base}/metrics", headers=bearer(site.metrics_token))).text
    assert health.status_code == 200
    report = ready.json()
    assert ready.status_code == 200 and report["pending_migrations"] == []
    assert report["servers"]["notes"]["database"]["breaker"]["state"] == "closed"
    for needle in ('mcp_suite_tool_calls_total{error_class="",outcome="ok",server="notes",tool="echo"}',
                   'mcp_suite_http_refusals_total{reason="unauthenticated",server="notes"}',
                   'mcp_suite_breaker_state{breaker="database",server="notes"} 0.0',
                   'mcp_suite_pool_connections{server="notes",state="idle"}',
                   "mcp_suite_audit_write_duration_seconds_bucket", "mcp_suite_tool_call_duration_seconds_bucket",
                   'mcp_suite_rate_limit_rejections_total{server="clock"}'):
        assert needle in scraped, needle


async def test_json_logs_carry_the_request_id_of_the_audit_record(site):
    response = await post(site, "/notes/mcp", call_body("echo", {"text": "logged"}), bearer(site.tokens["writer"]))
    request_id = response.headers["x-request-id"]
    rows = await audit_for(site, request_id)
    assert len(rows) == 1
    for _ in range(50):
        entries = [e for e in site.server.logs() if e.get("request_id") == request_id]
        if entries:
            break
        await asyncio.sleep(0.05)
    assert entries and entries[0]["event"] == "http_request" and entries[0]["principal"] == "writer"
    assert entries[0]["tool"] == "echo" and entries[0]["status"] == 200
    logs = site.server.logs()
    first_json = next(i for i, e in enumerate(logs) if "raw" not in e)  # the CLI may say which database first
    assert all("raw" not in e for e in logs[first_json:]), "every log line is JSON"


async def test_anonymous_only_with_the_flag_and_a_bad_token_is_still_refused(site):
    """Anonymous callers are the distinct principal `anonymous` with read-only scopes by default,
    not the operator's stdio principal (here `guest` with notes:write, which they must not get)."""
    env = {**site.server.env, "MCP_SUITE_SCOPES": "notes:read notes:write", "MCP_SUITE_PRINCIPAL": "guest"}
    anonymous = ServeProcess(["tests.interop.fixture_servers:notes", "--transport", "http", "--allow-anonymous"], env)
    await asyncio.to_thread(anonymous.start)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            ok = await client.post(f"{anonymous.url}/mcp", json=call_body("echo", {"text": "hi"}),
                                   headers=LEGACY_HEADERS)
            denied = await client.post(f"{anonymous.url}/mcp", json=call_body("add_note", {"text": "anon"}),
                                       headers=LEGACY_HEADERS)
            bad = await client.post(f"{anonymous.url}/mcp", json=call_body("echo", {"text": "hi"}),
                                    headers={**LEGACY_HEADERS, **bearer("mcps_" + secrets.token_urlsafe(32))})
    finally:
        anonymous.stop()
    assert ok.status_code == 200 and sse_result(ok)["result"]["isError"] is False
    assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
    assert bad.status_code == 401
    assert await notes_with(site, "anon") == 0
    for response, tool, outcome in [(ok, "echo", "ok"), (denied, "add_note", "error")]:
        rows = await audit_for(site, response.headers["x-request-id"])
        assert [(r["principal"], r["tool"], r["outcome"]) for r in rows] == [("anonymous", tool, outcome)]
        assert json.loads(rows[0]["body"])["principal_source"] == "anonymous"
