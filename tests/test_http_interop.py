"""Interop with a client no one here wrote: the official TypeScript SDK (`@modelcontextprotocol/sdk`).

It lists and calls tools on each server over stdio, SSE and streamable HTTP, with a token and
without one (refused). The npm package is installed on first use into a cache outside the checkout
(`$XDG_CACHE_HOME/mcp-suite/interop`, default `~/.cache/mcp-suite/interop`; `MCP_SUITE_INTEROP_CACHE`
overrides it), never into the source tree. The test is skipped, saying why, where Node.js or npm is
absent or the package cannot be installed (e.g. no route to the npm registry).
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_suite.registry import SERVERS
from tests.interop.harness import REPO, ServeProcess, base_env
from tests.test_http_app import notes_database

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


def interop_cache() -> Path:
    configured = os.environ.get("MCP_SUITE_INTEROP_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcp-suite" / "interop"


def _install_sdk(npm: str, cache: Path) -> str | None:
    """Install the pinned SDK into `cache` (once; under a lock). Returns why it could not, or None."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        installed = cache / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
        if installed.exists() and json.loads(installed.read_text())["version"] == SDK_VERSION:
            return None
        shutil.copyfile(INTEROP / "package.json", cache / "package.json")
        try:
            done = subprocess.run([npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund",
                                   "--no-package-lock"], capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return "npm install timed out after 300 s"
        if done.returncode != 0:
            return f"npm install failed ({done.stderr.strip().splitlines()[-1:] or 'no message'})"
    return None


@pytest.fixture(scope="session")
def typescript_sdk() -> tuple[str, Path]:
    """(node, the client script) with the SDK installed beside the script, outside the checkout."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are needed for the TypeScript SDK interop test")
    cache = interop_cache()
    problem = _install_sdk(npm, cache)
    if problem:
        pytest.skip(f"cannot install @modelcontextprotocol/sdk@{SDK_VERSION} into {cache}: {problem}")
    client = cache / "client.mjs"  # ES modules resolve imports beside the script, so it runs from the cache
    shutil.copyfile(INTEROP / "client.mjs", client)
    return node, client


async def test_typescript_sdk_lists_and_calls_tools_over_every_transport(typescript_sdk, make_database, tmp_path):
    node, client_script = typescript_sdk
    registry = _installed_registry_servers()
    async with notes_database(make_database, "interop", scopes="*:read *:write") as (url, conn, secret):
        names = ["notes", "clock", *registry]
        modules = ["tests.interop.fixture_servers:notes", "examples.clock_server:app", *registry]
        env = base_env(url, MCP_SUITE_SERVERS=",".join(modules))
        server = ServeProcess(["all", "--transport", "http"], env)
        await asyncio.to_thread(server.start, 90.0)
        try:
            plan = _plan(names, server.url, secret, env)
            (tmp_path / "plan.json").write_text(json.dumps(plan))
            done = await asyncio.to_thread(
                subprocess.run, [node, str(client_script), str(tmp_path / "plan.json")],
                cwd=client_script.parent, capture_output=True, text=True, timeout=180,
            )
        finally:
            server.stop()
        assert done.returncode == 0, done.stderr[-2000:]
        results = {r["label"]: r for r in json.loads(done.stdout.strip().splitlines()[-1])}
        _check(results, names)
        rows = await conn.fetch("SELECT DISTINCT server, transport, principal FROM audit_log WHERE outcome = 'ok'")
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
        args = STDIO.get(name, ["-m", "mcp_suite.cli", "serve", name])
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


def test_interop_installs_outside_the_checkout(monkeypatch, tmp_path):
    assert not interop_cache().resolve().is_relative_to(REPO)
    monkeypatch.delenv("MCP_SUITE_INTEROP_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert interop_cache() == tmp_path / "mcp-suite" / "interop"


def test_unreachable_registry_is_a_skip_reason_not_an_error(tmp_path):
    """An npm that cannot reach its registry: the fixture gets a reason to skip with, not an exception."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    fake = tmp_path / "npm"
    fake.write_text("#!/bin/sh\necho 'npm error network request failed, reason: getaddrinfo ENOTFOUND' >&2\nexit 1\n")
    fake.chmod(0o755)
    problem = _install_sdk(str(fake), tmp_path / "cache")
    assert problem is not None and "ENOTFOUND" in problem
    assert not (tmp_path / "cache" / "node_modules").exists()
