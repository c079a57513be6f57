"""Every message gets an answer: unparsable JSON-RPC on stdio (a real `serve` subprocess) and the parser rules.

Each bad line below got no reply at all from the bare SDK over stdio (the client waited for its own
timeout); now each gets its JSON-RPC error, with its id where one can be read, and the server keeps
answering the next request.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading

import pytest

from shared import jsonrpc_guard
from tests.interop.harness import REPO

DEEP = "[" * 5000 + "]" * 5000
BAD_LINES = {
    "lone surrogate": ('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_profile",'
                       '"arguments":{"profile_id":"\\ud800"}}}', -32700, 7),
    "deep nesting": ('{"jsonrpc":"2.0","id":"deep-1","method":"ping","params":{"a":' + DEEP + "}}", -32700, "deep-1"),
    "id after deep params": ('{"jsonrpc":"2.0","method":"ping","params":{"a":' + DEEP + '},"id":8}', -32700, 8),
    "invalid json": ('{"jsonrpc":"2.0","id":9,"method":', -32700, 9),
    "garbage": ("not json at all", -32700, None),
    "not json-rpc": ('{"id":10,"hello":"world"}', -32600, 10),
    "a bare number": ("42", -32600, None),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_check_answers_what_the_sdk_cannot_parse(case):
    line, code, request_id = BAD_LINES[case]
    error = jsonrpc_guard.check(line).error
    assert error is not None and error["error"]["code"] == code and error["id"] == request_id
    assert "Traceback" not in json.dumps(error) and len(jsonrpc_guard.encode(error)) < 400


def test_check_passes_good_messages_through_parsed_once():
    checked = jsonrpc_guard.check(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}')
    assert checked.error is None and checked.parsed["params"]["name"] == "x"


def test_an_id_that_is_itself_a_lone_surrogate_is_not_echoed():
    error = jsonrpc_guard.check('{"jsonrpc":"2.0","id":"\\ud800","method":"ping","params":{"a":"\\udc00"}}').error
    assert error is not None and error["id"] is None


class StdioServer:
    """`python -m mcp_suite.cli serve profiles` with raw line access to its stdin and stdout."""

    def __init__(self, database_url: str, home: str) -> None:
        env = {**os.environ, "DATABASE_URL": database_url, "MCP_SUITE_HOME": home, "PYTHONPATH": str(REPO),
               "MCP_SUITE_PRINCIPAL": "guard-user", "MCP_SUITE_SCOPES": "profiles:read profiles:write"}
        self.proc = subprocess.Popen([sys.executable, "-m", "mcp_suite.cli", "serve", "profiles"], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode("utf-8", "surrogatepass") + b"\n")
        self.proc.stdin.flush()

    def receive(self) -> dict:
        return json.loads(self.lines.get(timeout=30))  # a missing reply fails here instead of hanging

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def test_stdio_answers_every_line_and_keeps_serving(database_url, tmp_path):
    server = StdioServer(database_url, str(tmp_path))
    try:
        server.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}))
        assert server.receive()["id"] == 1
        server.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        for case in sorted(BAD_LINES):
            line, code, request_id = BAD_LINES[case]
            server.send(line)
            reply = server.receive()
            assert reply["error"]["code"] == code and reply["id"] == request_id, (case, reply)
            server.send(json.dumps({"jsonrpc": "2.0", "id": f"after {case}", "method": "ping"}))
            assert server.receive() == {"jsonrpc": "2.0", "id": f"after {case}", "result": {}}
        server.send(json.dumps({"jsonrpc": "2.0", "id": 99, "method": "tools/list"}))
        assert any(t["name"] == "get_profile" for t in server.receive()["result"]["tools"])
    finally:
        server.close()
    assert server.proc.returncode == 0
