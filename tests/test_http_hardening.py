"""Attacks on the HTTP hosting, each against a real `mcp-suite serve all` subprocess (raw sockets and httpx).

Slow or partial requests (slowloris), unauthenticated bodies, too many connections, messages the SDK
cannot parse, a port in use, and what an unauthenticated caller may learn from `/readyz` and the
RFC 9728 metadata. The server runs with 1 s header and body deadlines and at most 8 connections.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import subprocess
import sys
from types import SimpleNamespace

import httpx
import pytest

from tests.interop.harness import LEGACY_HEADERS, REPO, ServeProcess, base_env, call_body, sse_result
from tests.test_http_app import bearer, notes_database

SERVERS = "tests.interop.fixture_servers:notes,examples.clock_server:app"
MAX_CONNECTIONS = 8
DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture(scope="module")
async def site(make_database):
    async with notes_database(make_database, "hard") as (url, conn, token):
        metrics_token = secrets.token_urlsafe(16)
        env = base_env(url, MCP_SUITE_SERVERS=SERVERS, MCP_SUITE_HEADER_TIMEOUT_S="1", MCP_SUITE_BODY_TIMEOUT_S="1",
                       MCP_SUITE_MAX_CONNECTIONS=str(MAX_CONNECTIONS), MCP_SUITE_METRICS_TOKEN=metrics_token)
        server = ServeProcess(["all", "--transport", "http"], env)
        await asyncio.to_thread(server.start)
        try:
            yield SimpleNamespace(url=url, conn=conn, token=token, server=server, base=server.url,
                                  metrics_token=metrics_token)
        finally:
            server.stop()


def raw(site, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", site.server.port), timeout=20)
    if data:
        sock.sendall(data)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; a server that holds the connection fails the
    test with a socket timeout (20 s) instead of answering within its 1 s deadline."""
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return received


def post_head(path: str, length: int, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n{auth}"
            f"Content-Length: {length}\r\n\r\n").encode()


async def test_a_partial_header_block_is_cut_off(site):
    sock = await asyncio.to_thread(raw, site, b"POST /notes/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    answer = await asyncio.to_thread(read_until_closed, sock)
    assert answer.startswith(b"HTTP/1.1 408")


async def test_a_connection_that_sends_nothing_is_cut_off(site):
    sock = await asyncio.to_thread(raw, site, b"")
    assert (await asyncio.to_thread(read_until_closed, sock)).startswith(b"HTTP/1.1 408")


async def test_a_partial_body_is_cut_off(site):
    body = json.dumps(call_body("echo", {"text": "slow"})).encode()
    sock = await asyncio.to_thread(raw, site, post_head("/notes/mcp", len(body), site.token) + body[:10])
    answer = await asyncio.to_thread(read_until_closed, sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]


async def test_an_unauthenticated_request_is_refused_before_its_body_is_read(site):
    """Headers promising a body that never comes: the 401 is sent at once, not after the body deadline."""
    sock = await asyncio.to_thread(raw, site, post_head("/notes/mcp", 100_000) + b'{"jsonrpc":')
    answer = await asyncio.to_thread(read_until_closed, sock)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"no bearer token was sent" in answer


async def test_connections_beyond_the_limit_are_refused(site):
    """Held-open streams (authenticated SSE) fill the connection cap; the next connection gets 503."""
    streams = []
    try:
        for _ in range(MAX_CONNECTIONS):
            sock = await asyncio.to_thread(raw, site, (
                "GET /notes/sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                f"Authorization: Bearer {site.token}\r\n\r\n").encode())
            streams.append(sock)
            assert b"200 OK" in await asyncio.to_thread(sock.recv, 65536)
        extra = await asyncio.to_thread(raw, site, b"")  # refused on accept, before it could send anything
        assert (await asyncio.to_thread(read_until_closed, extra)).startswith(b"HTTP/1.1 503")
    finally:
        for sock in streams:
            sock.close()
    for _ in range(100):  # the slots free up once the streams are gone
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                if (await client.get(f"{site.base}/healthz")).status_code == 200:
                    break
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the server did not accept connections again")


BAD_BODIES = {
    "deep nesting": ('{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{"text":'
                     + DEEP + "}}}", -32700, 41),
    "lone surrogate": ('{"jsonrpc":"2.0","id":"s-1","method":"tools/call","params":{"name":"echo",'
                       '"arguments":{"text":"\\ud800"}}}', -32700, "s-1"),
    "invalid json": ('{"jsonrpc":"2.0","id":43,', -32700, 43),
    "not json-rpc": ('{"id":44,"hello":"world"}', -32600, 44),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
async def test_streamable_http_answers_what_the_sdk_cannot_parse_and_keeps_serving(site, case):
    body, code, request_id = BAD_BODIES[case]
    async with httpx.AsyncClient(timeout=15) as client:
        bad = await client.post(f"{site.base}/notes/mcp", content=body.encode(),
                                headers={**LEGACY_HEADERS, **bearer(site.token)})
        good = await client.post(f"{site.base}/notes/mcp", json=call_body("echo", {"text": "still here"}),
                                 headers={**LEGACY_HEADERS, **bearer(site.token)})
    assert bad.status_code == 400, bad.text[:300]
    assert bad.json() == {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": bad.json()["error"]
                                                                         ["message"]}}
    assert "Traceback" not in bad.text and "RecursionError" not in bad.text
    assert sse_result(good)["result"]["content"][0]["text"] == "still here"
    assert not any("Traceback" in line.get("raw", "") or "exc" in line for line in site.server.logs())


async def test_the_sse_post_endpoint_answers_what_the_sdk_cannot_parse(site):
    """The legacy SSE transport has no reply channel for a message it cannot read; the POST carries it."""
    async with httpx.AsyncClient(timeout=15, headers=bearer(site.token)) as client:
        async with client.stream("GET", f"{site.base}/notes/sse") as stream:  # noqa: SIM117 - client used below
            endpoint = None
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    endpoint = line[5:].strip()
                    break
            assert endpoint is not None
            for body, code, request_id in BAD_BODIES.values():
                bad = await client.post(f"{site.base}{endpoint}", content=body.encode(),
                                        headers={"content-type": "application/json"})
                assert bad.status_code == 400 and bad.json()["error"]["code"] == code
                assert bad.json()["id"] == request_id
        after = await client.post(f"{site.base}/notes/mcp", json=call_body("echo", {"text": "after sse"}),
                                  headers=LEGACY_HEADERS)
    assert sse_result(after)["result"]["content"][0]["text"] == "after sse"


async def test_readiness_tells_strangers_only_ready_or_not(site):
    async with httpx.AsyncClient(timeout=5) as client:
        stranger = await client.get(f"{site.base}/readyz")
        wrong = await client.get(f"{site.base}/readyz", headers=bearer("x" * len(site.metrics_token)))
        operator = await client.get(f"{site.base}/readyz", headers=bearer(site.metrics_token))
        metrics_refused = await client.get(f"{site.base}/metrics", headers=bearer("nope"))
    assert stranger.status_code == 200 and stranger.json() == {"status": "ready"}
    assert wrong.json() == {"status": "ready"}
    details = operator.json()
    assert details["status"] == "ready" and details["pending_migrations"] == []
    assert {name: entry["ready"] for name, entry in details["servers"].items()} == {"notes": True, "clock": True}
    assert metrics_refused.status_code == 401


async def test_without_an_identity_provider_the_metadata_names_no_authorization_server(site):
    async with httpx.AsyncClient(timeout=5) as client:
        meta = (await client.get(f"{site.base}/.well-known/oauth-protected-resource/notes/mcp")).json()
    assert meta["resource"] == f"{site.base}/notes/mcp"
    assert "authorization_servers" not in meta
    assert {"notes:read", "notes:write"} <= set(meta["scopes_supported"])


async def test_start_up_logs_the_url_of_every_endpoint(site):
    urls = {line["url"] for line in site.server.logs() if line.get("event") == "endpoint"}
    base = site.base
    assert {f"{base}/notes/mcp", f"{base}/notes/sse", f"{base}/clock/mcp", f"{base}/clock/sse",
            f"{base}/healthz", f"{base}/readyz", f"{base}/metrics"} <= urls


def test_a_port_in_use_is_one_clear_line_and_a_non_zero_exit(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env("postgresql://nobody@127.0.0.1:1/none", MCP_SUITE_SERVERS=SERVERS)
        done = subprocess.run([sys.executable, "-m", "mcp_suite.cli", "serve", "all", "--transport", "http",
                               "--port", str(port)], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr[-2000:]
    errors = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in errors if e.get("level") == "error"] == ["port_unavailable"]
    assert "choose another --port" in errors[-1]["msg"]
    assert not any(e.get("event") == "started" for e in errors)
    assert "Traceback" not in done.stderr


async def _anonymous_refusals(site) -> tuple[int, int]:
    """(refusals recorded one by one, refusals counted in summary records) of the principal `anonymous`."""
    rows = await site.conn.fetch("SELECT phase, body FROM audit_log WHERE principal = 'anonymous'")
    singles = sum(1 for row in rows if row["phase"] == "result")
    summed = sum(json.loads(row["body"])["arguments"]["suppressed_refusals"] for row in rows
                 if row["phase"] == "summary")
    return singles, summed


async def test_an_unauthenticated_flood_cannot_flood_the_audit_log(site):
    """Every unauthenticated refusal is accounted for, but only the refusal budget's worth one by one."""
    before = await _anonymous_refusals(site)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with httpx.AsyncClient(timeout=20) as client:
        for i in range(40):
            answer = await client.post(f"{site.base}/notes/mcp", json={
                "jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "add_note", "arguments": {}}})
            assert answer.status_code == 401
    elapsed = loop.time() - started
    for _ in range(200):  # until the summary record of the suppressed ones is written
        after = await _anonymous_refusals(site)
        if sum(after) - sum(before) == 40:
            break
        await asyncio.sleep(0.05)
    singles = after[0] - before[0]
    assert sum(after) - sum(before) == 40
    assert singles <= 10 + 10 * elapsed + 1  # the budget's burst plus what drained meanwhile
