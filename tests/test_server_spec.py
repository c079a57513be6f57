"""Servers register through one interface (`ServerSpec`): adding one touches no core file, and the
core, imported module by module, never pulls in a server or the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mcp_suite import registry
from shared.server_spec import Need, ServerSpec
from tests.support.cli import run_cli, user_env

ROOT = Path(__file__).resolve().parent.parent

IMPORT_EVERY_CORE_MODULE = """
import importlib, json, pkgutil, sys
import shared
for info in pkgutil.walk_packages(shared.__path__, "shared."):
    importlib.import_module(info.name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("servers", "mcp_suite"))))
"""


def test_importing_every_core_module_imports_no_server_and_no_command_line():
    done = subprocess.run([sys.executable, "-c", IMPORT_EVERY_CORE_MODULE], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_shipped_servers_register_their_parts():
    specs = registry.specs()
    assert sorted(specs) == ["profiles", "search"]
    assert [n.variable for n in specs["search"].needs] == ["MCP_SUITE_SEARCH_ROOTS"]
    assert registry.SERVERS == {"profiles": "servers.profiles.tools:app", "search": "servers.search.tools:app"}
    assert all(spec.add_cli is not None for spec in specs.values())


def test_the_spec_refuses_a_bad_name_or_target():
    with pytest.raises(ValueError, match="identifier"):
        ServerSpec(name="all", app="x:y", summary="")
    with pytest.raises(ValueError, match="module:attribute"):
        ServerSpec(name="notes", app="notes.tools", summary="")
    assert Need("A", "b", "c").variable == "A"


def test_a_server_installed_elsewhere_brings_its_commands_without_touching_the_suite(tmp_path: Path):
    """A distribution with an `mcp_suite.servers` entry point: listed, served, and its command runs."""
    package = tmp_path / "notes_server"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent("""
        from shared.server_spec import Need, ServerSpec

        def add_cli(cli):
            demo = cli.target("demo", "notes", help="demo notes", example="mcp-suite demo notes")
            demo.set_defaults(handler=lambda args: print("notes demo ran") or 0)

        SPEC = ServerSpec(name="notes", app="notes_server.tools:app", summary="notes",
                          needs=(Need("NOTES_DIR", "where the notes live", "/srv/notes"),), add_cli=add_cli)
    """))
    (package / "tools.py").write_text("from shared.server import SuiteServer\n\napp = SuiteServer('notes')\n")
    dist = tmp_path / "notes_server-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: notes-server\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mcp_suite.servers]\nnotes = notes_server:SPEC\n")
    env = user_env(tmp_path / "home", PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=env, cwd=ROOT)

    ran = cli("demo", "notes")
    assert ran.returncode == 0 and ran.stdout.strip() == "notes demo ran", ran.stderr[-2000:]
    listed = cli("servers", "notes", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    described = json.loads(listed.stdout)
    assert described[0]["name"] == "notes" and described[0]["needs"][0]["variable"] == "NOTES_DIR"
    assert described[0]["needs"][0]["set"] is False
    # A need no settings section describes (a plugin's) is still seen when set, and handed on as written.
    env["NOTES_DIR"] = str(tmp_path / "notes")
    assert json.loads(cli("servers", "notes", "--json").stdout)[0]["needs"][0]["set"] is True
    config = cli("claude-config", "notes")
    assert config.returncode == 0, config.stderr[-2000:]
    assert json.loads(config.stdout)["mcpServers"]["mcp-suite-notes"]["env"]["NOTES_DIR"] == str(tmp_path / "notes")
    assert "mcp-suite demo notes" in cli("demo", "--help").stdout
