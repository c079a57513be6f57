"""`serve --transport http --workers N`: N processes on one port, each serving tool calls, stopped as one.

Each worker answers with `X-Worker: <index>`; new connections are spread by the kernel
(`SO_REUSEPORT`), so a client opening fresh connections reaches both workers (the loop stops as soon
as it has, a condition, not a time window). The stop tests check the workers are gone, not just the
parent, by reading the parent's children from /proc before stopping it.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import httpx
import pytest

from mcp_suite.bench_client import process_tree
from shared.http import workers
from tests.interop.harness import LEGACY_HEADERS, ServeProcess, base_env, call_body, sse_result
from tests.test_http_app import notes_database

pytestmark = pytest.mark.skipif(not workers.supported(), reason="several workers need Linux (SO_REUSEPORT)")
NOTES = ["tests.interop.fixture_servers:notes", "--transport", "http"]


@pytest.fixture(scope="module")
async def site(make_database):
    async with notes_database(make_database, "worker-test") as (url, _, secret):
        yield url, secret


def children(pid: int) -> set[int]:
    return set(process_tree(pid)) - {pid}


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def call(port: int, secret: str, tool: str, arguments: dict) -> tuple[str | None, dict]:
    """One tool call on a fresh connection: (the answering worker, the JSON-RPC result)."""
    with httpx.Client(timeout=15) as client:
        response = client.post(f"http://127.0.0.1:{port}/mcp", json=call_body(tool, arguments),
                               headers={**LEGACY_HEADERS, "authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.text[:300]
    return response.headers.get("x-worker"), sse_result(response)["result"]


def test_two_workers_answer_tool_calls_on_one_port_and_stop_together(site, tmp_path):
    url, secret = site
    # A TMPDIR too long for a unix socket path: plain HTTP workers need no socket, so it must not matter.
    long_tmp = tmp_path / ("t" * 90)
    long_tmp.mkdir()
    with ServeProcess([*NOTES, "--workers", "2"], base_env(url, TMPDIR=str(long_tmp))) as serve:
        assert serve.proc is not None
        workers_pids = children(serve.proc.pid)
        assert len(workers_pids) == 2
        served: dict[str, int] = {}
        for n in range(400):
            if len(served) == 2:
                break
            tool, arguments = ("echo", {"text": f"hi {n}"}) if n % 2 else ("add_note", {"text": f"w{n}"})
            worker, result = call(serve.port, secret, tool, arguments)
            assert result["isError"] is False, result
            assert worker in ("0", "1")
            served[worker] = served.get(worker, 0) + 1
        assert set(served) == {"0", "1"}, served  # both workers served tool calls
        code = serve.stop()
    assert code == 0
    assert not any(alive(pid) for pid in workers_pids)
    with socket.socket() as probe:  # the port is free again: no worker kept it
        probe.bind(("127.0.0.1", serve.port))


def test_ctrl_c_stops_every_worker(site):
    url, _secret = site
    serve = ServeProcess([*NOTES, "--workers", "2"], base_env(url)).start()
    assert serve.proc is not None
    workers_pids = children(serve.proc.pid)
    serve.proc.send_signal(signal.SIGINT)
    assert serve.proc.wait(20) == 0
    assert len(workers_pids) == 2 and not any(alive(pid) for pid in workers_pids)


def test_a_dead_worker_stops_the_set_with_an_error(site):
    url, _secret = site
    serve = ServeProcess([*NOTES, "--workers", "2"], base_env(url)).start()
    assert serve.proc is not None
    first, second = sorted(children(serve.proc.pid))
    os.kill(first, signal.SIGKILL)
    assert serve.proc.wait(20) != 0
    assert not alive(second)
    assert any(e.get("event") == "worker_exited" for e in serve.logs())
