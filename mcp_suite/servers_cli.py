"""`mcp-suite servers` and `mcp-suite claude-config`: what the suite serves, and how a client runs it.

`servers` lists each server's tools with the scopes a caller needs (what a token must grant) and the
environment the server reads; `claude-config` prints a Claude Desktop `mcpServers` snippet that
carries that environment, so a pasted configuration works on the first call.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from mcp_suite.registry import check, load, names, spec
from shared.config import Settings, as_written, given


def describe_server(name: str) -> dict[str, Any]:
    """One server as data: its tools (scopes, behaviour, first line of the description) and needs."""
    server = load(name)
    listed = {t.name: t for t in asyncio.run(server.mcp.list_tools())}
    tools = []
    for tool_name, policy in server.policies.items():
        description = (listed[tool_name].description or "") if tool_name in listed else ""
        kind = "destructive" if policy.destructive else "read-only" if policy.read_only else "writes"
        tools.append({"name": tool_name, "scopes": sorted(policy.scopes), "kind": kind,
                      "summary": _first_sentence(description)})
    written = needs_given(name)
    needs = [{"variable": n.variable, "meaning": n.meaning, "set": n.variable in written} for n in spec(name).needs]
    return {"name": name, "tools": tools, "needs": needs}


def needs_given(name: str) -> dict[str, str]:
    """The server's variables the user set, as written: through its `ServerSpec.settings` (checked),
    and, for a need no section describes (a plugin's), as the environment has it."""
    server = spec(name)
    written: dict[str, str] = {}
    for section in server.settings:
        written |= given(section)
    return written | as_written(n.variable for n in server.needs if n.variable not in written)


def _first_sentence(text: str, limit: int = 72) -> str:
    sentence = " ".join(text.split()).split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def _text(server: dict[str, Any]) -> list[str]:
    width = max([len(t["name"]) for t in server["tools"]] + [4])
    scope_width = max([len(" ".join(t["scopes"])) for t in server["tools"]] + [6])
    lines = [f"{server['name']}  (mcp-suite serve {server['name']})"]
    for tool in server["tools"]:
        lines.append(f"  {tool['name']:<{width}}  {' '.join(tool['scopes']):<{scope_width}}  {tool['kind']:<11}  "
                     f"{tool['summary']}")
    for need in server["needs"]:
        state = "set" if need["set"] else "NOT SET"
        lines.append(f"  needs {need['variable']} ({state}): {need['meaning']}")
    return lines


def cmd_servers(args: Any) -> int:
    chosen = [check(n) for n in args.names] if args.names else names()
    described = [describe_server(n) for n in chosen]
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    blocks = ["\n".join(_text(s)) for s in described]
    print("\n\n".join(blocks))
    print("\nA caller needs every scope listed for a tool (stdio: MCP_SUITE_SCOPES; HTTP: the token's scopes).")
    return 0


def _executable() -> str:
    return shutil.which("mcp-suite") or str(Path(sys.executable).with_name("mcp-suite"))


def server_env(name: str, settings: Settings) -> tuple[dict[str, str], list[str]]:
    """The `env` block for one server, and notes on stderr for every value the user must fill in."""
    notes: list[str] = []
    if settings.database_url:
        env = {"DATABASE_URL": "<your database url>"}
        notes.append(f"{name}: replace <your database url> with the DATABASE_URL the server should use")
    else:
        env = {"MCP_SUITE_HOME": str(settings.home)}
    written = needs_given(name)
    for need in spec(name).needs:
        value = written.get(need.variable)
        if value:
            env[need.variable] = value
        else:
            env[need.variable] = f"<{need.meaning.split(';')[0]}>"
            notes.append(f"{name}: set {need.variable} ({need.meaning}), e.g. {need.example}")
    return env, notes


def cmd_claude_config(args: Any) -> int:
    chosen = [check(n) for n in args.servers] if args.servers else names()  # UnknownServer: exit 2
    settings = Settings.from_env()
    servers: dict[str, Any] = {}
    notes: list[str] = []
    for name in chosen:
        env, todo = server_env(name, settings)
        servers[f"mcp-suite-{name}"] = {"command": _executable(), "args": ["serve", name], "env": env}
        notes += todo
    print(json.dumps({"mcpServers": servers}, indent=2))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
