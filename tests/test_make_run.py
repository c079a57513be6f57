"""`make run` is itself a working stdio server command: a real client lists and calls profiles tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
async def test_make_run_serves_profiles_with_demo_data(tmp_path):
    env = {**os.environ, "MCP_SUITE_HOME": str(tmp_path), "MCP_SUITE_PRINCIPAL": "demo-user-0007",
           "MCP_SUITE_SCOPES": "profiles:read profiles:write"}
    env.pop("DATABASE_URL", None)
    params = StdioServerParameters(command="make", args=["-s", "--no-print-directory", "run"], env=env,
                                   cwd=str(ROOT))
    try:
        async with Client(params, read_timeout_seconds=60) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            mine = await client.call_tool("get_profile", {})
    finally:  # `make run` pins the embedded server (like `mcp-suite db start`): stop it
        subprocess.run([sys.executable, "-m", "mcp_suite.cli", "db", "stop"], env=env, timeout=60,
                       capture_output=True)
    assert "get_profile" in tools
    assert mine.is_error is False, mine.content
    assert mine.structured_content["owner"] == "demo-user-0007"
