"""Scale-out: two `serve` processes on one database behind a round-robin balancer with no stickiness.

The balancer is an httpx transport that sends each request to the next replica in turn, so one
client's consecutive requests (the `initialize` of a legacy session included) land on different
processes. Calls must all succeed, the shared rate limit must hold across both, and the audit chain
must stay whole, with records written by both processes.
"""

from __future__ import annotations

import asyncio
import itertools

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from shared.audit import chain as audit_chain
from tests.interop.harness import ServeProcess, base_env
from tests.test_http_app import notes_database


class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer without sticky sessions: request n goes to replica n mod N."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = itertools.cycle(ports)
        self.inner = httpx2.AsyncHTTPTransport()
        self.sent: list[int] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = next(self.ports)
        self.sent.append(port)
        request.url = request.url.copy_with(port=port)
        request.headers["host"] = f"127.0.0.1:{port}"
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
async def replicas(make_database):
    async with notes_database(make_database, "scaler") as (url, conn, secret):
        env = base_env(url, MCP_SUITE_RATE_LIMIT_STORE="postgres")
        args = ["tests.interop.fixture_servers:notes", "--transport", "http"]
        processes = [ServeProcess(args, env) for _ in range(2)]
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in processes))
        try:
            yield conn, secret, processes
        finally:
            for process in processes:
                process.stop()


def balanced_client(processes: list[ServeProcess], secret: str) -> tuple[Client, RoundRobin]:
    balancer = RoundRobin([p.port for p in processes])
    http = httpx2.AsyncClient(transport=balancer, headers={"authorization": f"Bearer {secret}"}, timeout=15)
    return Client(streamable_http_client(f"{processes[0].url}/mcp", http_client=http), mode="legacy"), balancer


async def test_calls_spread_over_both_replicas_and_the_audit_chain_holds(replicas):
    conn, secret, processes = replicas
    client, balancer = balanced_client(processes, secret)
    async with client as mcp:
        tools = await mcp.list_tools()
        results = [await mcp.call_tool("add_note", {"text": f"n{i}"}) for i in range(20)]
    assert "add_note" in {t.name for t in tools.tools}
    assert all(not r.is_error for r in results)
    assert set(balancer.sent) == {p.port for p in processes}
    rows = await conn.fetch("SELECT request_id FROM audit_log WHERE tool = 'add_note' AND outcome = 'ok'")
    assert len(rows) == 20
    served_by = [{e.get("request_id") for e in p.logs() if e.get("tool") == "add_note"} for p in processes]
    assert all(len(ids & {r["request_id"] for r in rows}) >= 5 for ids in served_by), "both replicas wrote"
    verdict = await audit_chain.verify(conn)
    assert verdict.ok, verdict


async def test_the_shared_rate_limit_holds_across_replicas(replicas):
    conn, secret, processes = replicas
    client, balancer = balanced_client(processes, secret)
    async with client as mcp:
        results = [await mcp.call_tool("count_notes", {}) for _ in range(12)]
    admitted = [r for r in results if not r.is_error]
    refused = [r for r in results if r.is_error]
    # 5 per minute per caller in total (no refill during the test, however slow the machine);
    # per-process limiters would have admitted 10 (5 on each replica)
    assert len(admitted) == 5, [r.content[0].text for r in results]
    assert all("rate_limited" in r.content[0].text for r in refused)
    assert len(set(balancer.sent)) == 2
    errors = await conn.fetchval("SELECT count(*) FROM audit_log WHERE tool = 'count_notes' "
                                 "AND error_class = 'rate_limited'")
    assert errors == len(refused)
