"""A bad setting stops every command at its start: one line naming the variable, exit 2, no traceback.

`mcp-suite` checks every settings section (the core's and each registered server's, see
`mcp_suite/configuration.py`) before a command runs, so `serve`, `doctor`, `servers`, `tokens` … all
answer a mistake the same way, before touching the database or a port; a secret's value is never
echoed. These run the real command line, like a user in a shell.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.cli import run_cli, user_env

COMMANDS = [
    ["doctor"], ["servers"], ["claude-config"], ["serve", "profiles"], ["serve", "all", "--transport", "http"],
    ["serve", "search", "--transport", "sse"], ["migrate"], ["db", "url"], ["tokens", "list"], ["audit", "tail"],
]


def run(home: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=user_env(home, **env))


def the_one_line(done: subprocess.CompletedProcess[str], home: Path) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcp-suite: error: "), done.stderr
    assert not home.exists()  # refused before anything was created (no embedded database)
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_bad_value_in_one_line(tmp_path: Path, command: list[str]):
    home = tmp_path / "home"
    line = the_one_line(run(home, *command, env={"MCP_SUITE_POOL_MAX": "lots"}), home)
    assert line == ("mcp-suite: error: MCP_SUITE_POOL_MAX='lots': must be a whole number "
                    "(most connections in the pool)")


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("MCP_SUITE_RATE_LIMIT_STORE", "redis", "must be one of local, postgres"),
    ("MCP_SUITE_MAX_BODY_BYTES", "10", "must be at least 1024"),
    ("MCP_SUITE_JSON_RESPONSE", "maybe", "must be one of 1/0, true/false, yes/no, on/off"),
    ("MCP_SUITE_ANONYMOUS_SCOPES", "everything please", "is not a scope"),
    ("MCP_SUITE_POOL_MIN", "20", "MCP_SUITE_POOL_MIN (20) is above MCP_SUITE_POOL_MAX (10)"),
    ("MCP_SUITE_SEARCH_WARMUP", "perhaps", "MCP_SUITE_SEARCH_WARMUP='perhaps'"),  # a server's own section
])
def test_serve_http_refuses_each_bad_setting_before_listening(tmp_path: Path, variable: str, value: str, says: str):
    home = tmp_path / "home"
    line = the_one_line(run(home, "serve", "all", "--transport", "http", "--port", "1", env={variable: value}), home)
    assert variable in line and says in line


@pytest.mark.parametrize(("variable", "value"), [
    ("MCP_SUITE_AUDIT_KEY", "s3cr3t-but-short"),
    ("DATABASE_URL", "mysql://admin:s3cr3t@db.example/suite"),
    ("MCP_SUITE_APP_DATABASE_URL", "s3cr3t"),
])
@pytest.mark.parametrize("command", [["doctor"], ["serve", "profiles"], ["tokens", "list"]], ids=" ".join)
def test_a_bad_secret_is_named_but_never_shown(tmp_path: Path, command: list[str], variable: str, value: str):
    home = tmp_path / "home"
    done = run(home, *command, env={variable: value})
    line = the_one_line(done, home)
    assert line.startswith(f"mcp-suite: error: {variable}=(hidden): ")
    assert "s3cr3t" not in done.stdout + done.stderr


def test_help_needs_no_valid_settings(tmp_path: Path):
    done = run(tmp_path / "home", "--help", env={"MCP_SUITE_POOL_MAX": "lots"})
    assert done.returncode == 0 and "serve" in done.stdout
