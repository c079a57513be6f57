"""Interop with a client no one here wrote: the official TypeScript SDK (`@modelcontextprotocol/sdk`).

It lists and calls tools on each server over stdio, SSE and streamable HTTP, with a token and
without one (refused). The npm package is installed into `tests/interop/node_modules` (git-ignored)
on first use; the test is skipped only where Node.js or npm is absent.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta

import asyncpg
import pytest

from servers.registry import SERVERS
from shared import tokens
from tests.interop.harness import REPO, ServeProcess, base_env
from tests.test_http_app import create_notes_table

INTEROP = REPO / "tests" / "interop"
SDK_VERSION = json.loads((INTEROP / "package.json").read_text())["dependencies"]["@modelcontextprotocol/sdk"]
CALLS = {  # server → (tool, arguments, expected text) for the servers whose tools this test knows
    "notes": ("echo", {"text": "from typescript"}, "from typescript"),
    "clock": ("database_time", {"timezone": "UTC"}, None),
}
STDIO = {
    "notes": ["-m", "tests.interop.fixture_servers"],
    "clock": ["-c", "from examples.clock_server import app; app.run()"],
}


def _installed_registry_servers() -> list[str]:
    """Registry servers whose modules exist in this checkout (others are being written elsewhere)."""
    found = []
    for name, target in sorted(SERVERS.items()):
        module = target.partition(":")[0]
        try:
            if importlib.util.find_spec(module) is not None:
                found.append(name)
        except ModuleNotFoundError:
            pass
    return found


@pytest.fixture(scope="session")
def typescript_sdk() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are needed for the TypeScript SDK interop test")
    installed = INTEROP / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != SDK_VERSION:
        subprocess.run([npm, "install", "--prefix", str(INTEROP), "--no-audit", "--no-fund", "--no-package-lock"],
                       check=True, capture_output=True, timeout=300)
    return node


async def test_typescript_sdk_lists_and_calls_tools_over_every_transport(typescript_sdk, make_database, tmp_path):
    registry = _installed_registry_servers()
    async with make_database() as url:
        conn = await asyncpg.connect(url)
        try:
            await create_notes_table(conn)
            secret, _ = await tokens.create_token(conn, principal="interop", scopes="*:read *:write",
                                                  expires_in=timedelta(hours=1))
            names = ["notes", "clock", *registry]
            modules = ["tests.interop.fixture_servers:notes", "examples.clock_server:app", *registry]
            env = base_env(url, MCP_SUITE_SERVERS=",".join(modules))
            server = ServeProcess(["all", "--transport", "http"], env)
            await asyncio.to_thread(server.start, 90.0)
            try:
                plan = _plan(names, server.url, secret, env)
                (tmp_path / "plan.json").write_text(json.dumps(plan))
                done = await asyncio.to_thread(
                    subprocess.run, [typescript_sdk, str(INTEROP / "client.mjs"), str(tmp_path / "plan.json")],
                    cwd=INTEROP, capture_output=True, text=True, timeout=180,
                )
            finally:
                server.stop()
            assert done.returncode == 0, done.stderr[-2000:]
            results = {r["label"]: r for r in json.loads(done.stdout.strip().splitlines()[-1])}
            _check(results, names)
            rows = await conn.fetch("SELECT DISTINCT server, transport, principal FROM audit_log WHERE outcome = 'ok'")
        finally:
            await conn.close()
    seen = {(r["server"], r["transport"], r["principal"]) for r in rows}
    for name in CALLS:
        assert {(name, "http", "interop"), (name, "sse", "interop"), (name, "stdio", "interop-stdio")} <= seen


def _plan(names: list[str], base: str, secret: str, env: dict[str, str]) -> list[dict[str, object]]:
    stdio_env = {k: v for k, v in env.items() if k in ("PATH", "HOME", "DATABASE_URL", "PYTHONPATH", "MCP_SUITE_HOME",
                                                       "HF_HUB_OFFLINE")}
    stdio_env.update(MCP_SUITE_PRINCIPAL="interop-stdio", MCP_SUITE_SCOPES="*:read *:write")
    plan: list[dict[str, object]] = []
    for name in names:
        tool = CALLS.get(name)
        call = {"name": tool[0], "arguments": tool[1]} if tool else None
        for transport, path in (("http", "mcp"), ("sse", "sse")):
            plan.append({"label": f"{name}/{transport}/token", "transport": transport, "url": f"{base}/{name}/{path}",
                         "token": secret, "call": call})
            plan.append({"label": f"{name}/{transport}/none", "transport": transport, "url": f"{base}/{name}/{path}",
                         "call": call})
        args = STDIO.get(name, ["-m", "shared.cli", "serve", name])
        plan.append({"label": f"{name}/stdio", "transport": "stdio", "command": sys.executable, "args": args,
                     "env": stdio_env, "cwd": str(REPO), "call": call})
    return plan


def _check(results: dict[str, dict], names: list[str]) -> None:
    for name in names:
        tool = CALLS.get(name)
        for label in (f"{name}/http/token", f"{name}/sse/token", f"{name}/stdio"):
            result = results[label]
            assert result["connected"] and result.get("error") is None, result
            assert result["server"] == f"mcp-suite-{name}" and result["tools"], result
            if tool:
                assert tool[0] in result["tools"]
                assert result["isError"] is False, result
                if tool[2] is not None:
                    assert result["text"] == tool[2]
        for label in (f"{name}/http/none", f"{name}/sse/none"):
            result = results[label]
            assert not result["connected"], f"{label} connected without a token"
            refused = result.get("code") == 401 or any(m in result["error"] for m in ("401", "invalid_token"))
            assert refused, result


@pytest.mark.skipif(os.name != "posix", reason="POSIX paths")
def test_interop_files_are_ignored_by_git():
    done = subprocess.run(["git", "check-ignore", "-q", str(INTEROP / "node_modules")], cwd=REPO)
    assert done.returncode == 0, "tests/interop/node_modules must be git-ignored"
