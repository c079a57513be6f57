"""The command line as a user meets it: `python -m mcp_suite.cli ...` in a fresh home, output and exit code.

A user's mistake gets one line saying what is wrong and what to do, never a traceback; commands print
nothing the user did not ask for; the database in use is visible.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.support.cli import run_cli, user_env

NOISE = ("Traceback", "RuntimeDirWarning", "PostmasterInfo", "Loading weights", "it/s]")


def run(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
        stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    """Run the CLI like a user in a shell without XDG_RUNTIME_DIR (containers, ssh, CI)."""
    return run_cli(*args, env=user_env(home, **(env or {})), timeout=timeout, stdin=stdin)


def assert_quiet(done: subprocess.CompletedProcess[str]) -> None:
    for noise in NOISE:
        assert noise not in done.stdout + done.stderr, (noise, done.stderr[-2000:])


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert_quiet(done)
    lines = [line for line in done.stderr.splitlines() if line.startswith("mcp-suite: error:")]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def home(tmp_path: Path):
    yield tmp_path / "home"
    run(tmp_path / "home", "db", "stop")


# --- explains itself ---------------------------------------------------------------------------------

def test_version(home: Path):
    done = run(home, "--version")
    assert done.returncode == 0
    assert done.stdout.startswith("mcp-suite ") and done.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize("command", ["serve", "db", "migrate", "audit", "demo", "servers", "claude-config",
                                     "doctor", "bench", "eval", "ingest"])
def test_every_command_help_has_an_example(home: Path, command: str):
    done = run(home, command, "--help")
    assert done.returncode == 0, done.stderr
    assert "example" in done.stdout and f"mcp-suite {command}" in done.stdout.split("example")[-1]
    assert_quiet(done)


def test_help_shows_defaults_and_tokens_help_reaches_its_own_parser(home: Path):
    serve = run(home, "serve", "--help").stdout
    assert "(default: 8765)" in serve and "(default: stdio)" in serve and "(default: 127.0.0.1)" in serve
    assert "(default: 200)" in run(home, "demo", "profiles", "--help").stdout
    tokens = run(home, "tokens", "--help")
    assert tokens.returncode == 0 and "create" in tokens.stdout and "revoke" in tokens.stdout


# --- one line, not a traceback -----------------------------------------------------------------------

@pytest.mark.parametrize("args", [["serve", "nope"], ["serve", "nope", "--transport", "http"],
                                  ["servers", "nope"], ["claude-config", "profiles", "nope"]])
def test_unknown_server_is_one_line_with_the_valid_names(home: Path, args: list[str]):
    one_line_error(run(home, *args), 2, "unknown server 'nope'", "profiles, search")
    assert not (home / "pg").exists()  # nothing was started or created


def test_token_mistakes_are_one_line_like_every_command(home: Path):
    one_line_error(run(home, "tokens", "bogus"), 2, "mcp-suite: error:", "invalid choice", "mcp-suite tokens --help")
    one_line_error(run(home, "tokens", "create", "--principal", "x", "--scopes", "bad"), 2, "mcp-suite: error:",
                   "invalid scope 'bad'")
    assert not (home / "pg").exists()


def test_bad_iso_time_is_one_line_and_touches_nothing(home: Path):
    line = one_line_error(run(home, "audit", "search", "--since", "yesterday-ish"), 2, "--since", "ISO 8601",
                          "2026-11-24")
    assert "yesterday-ish" in line
    one_line_error(run(home, "audit", "tail", "--until", "13/45/2026"), 2, "--until")
    assert not (home / "pg").exists()


@pytest.mark.parametrize("args", [["migrate"], ["audit", "tail"], ["demo", "profiles", "--count", "1"],
                                  ["tokens", "list"]])
def test_unreachable_database_url_is_one_line_without_the_password(home: Path, args: list[str]):
    url = f"postgresql://suite:hunter2-secret@127.0.0.1:{closed_port()}/suite"
    done = run(home, *args, env={"DATABASE_URL": url})
    one_line_error(done, 1, "cannot reach the database", "connection refused", "DATABASE_URL")
    assert "hunter2-secret" not in done.stdout + done.stderr
    assert "database: DATABASE_URL (postgresql://suite:***@127.0.0.1" in done.stderr  # which database: visible


# --- the database in use is visible ------------------------------------------------------------------

def test_db_url_never_starts_the_database(home: Path):
    one_line_error(run(home, "db", "url"), 1, "not running", "mcp-suite db start")
    assert not (home / "pg" / "PG_VERSION").exists()
    started = run(home, "db", "start")
    assert started.returncode == 0, started.stderr
    assert run(home, "db", "url").stdout == started.stdout


def test_new_database_warns_when_home_is_unset(tmp_path: Path):
    data = tmp_path / "xdg"  # the default home, kept inside the test's folder
    env = {"MCP_SUITE_HOME": None, "XDG_DATA_HOME": str(data)}  # type: ignore[dict-item]
    try:
        first = run(tmp_path, "migrate", env=env)  # type: ignore[arg-type]
        assert first.returncode == 0, first.stderr
        assert f"creating a new database under {data / 'mcp-suite' / 'pg'}" in first.stderr
        assert "MCP_SUITE_HOME is not set" in first.stderr
        assert "database:" not in first.stderr  # the default database is not announced
        again = run(tmp_path, "migrate", env=env)  # type: ignore[arg-type]
        assert again.returncode == 0 and again.stderr == ""
        assert_quiet(first)
    finally:
        run(tmp_path, "db", "stop", env=env)  # type: ignore[arg-type]


def test_non_default_home_is_named(home: Path):
    done = run(home, "migrate")
    assert done.returncode == 0, done.stderr
    assert f"database: the embedded database under {home / 'pg'}" in done.stderr
    assert "MCP_SUITE_HOME is not set" not in done.stderr


async def test_db_stop_warns_when_clients_are_connected(home: Path):
    started = run(home, "db", "start")
    assert started.returncode == 0, started.stderr
    conn = await asyncpg.connect(started.stdout.strip())
    try:
        done = run(home, "db", "stop")
    finally:
        conn.terminate()  # the server is gone: no goodbye message to send
    assert done.returncode == 0 and done.stdout.strip() == "stopped"
    assert re.search(r"warning: [1-9]\d* client connection\(s\) are open", done.stderr), done.stderr
    run(home, "db", "start")
    quiet = run(home, "db", "stop")
    assert quiet.stdout.strip() == "stopped" and "warning" not in quiet.stderr


def test_db_status_honours_database_url(home: Path, database_url: str):
    up = run(home, "db", "status", env={"DATABASE_URL": database_url})
    assert up.returncode == 0, up.stderr
    report = json.loads(up.stdout)
    assert report["database"] == "DATABASE_URL" and report["reachable"] is True
    down = run(home, "db", "status", env={"DATABASE_URL": f"postgresql://u:pw@127.0.0.1:{closed_port()}/x"})
    assert down.returncode == 1 and json.loads(down.stdout)["reachable"] is False
    assert not (home / "pg").exists()  # the embedded database was never involved


# --- servers, claude-config, doctor ------------------------------------------------------------------

def test_servers_lists_tools_with_their_scopes(home: Path):
    done = run(home, "servers", "--json")
    assert done.returncode == 0, done.stderr
    servers = {s["name"]: s for s in json.loads(done.stdout)}
    assert set(servers) == {"profiles", "search"}
    tools = {t["name"]: t for t in servers["profiles"]["tools"]}
    assert tools["get_profile"]["scopes"] == ["profiles:read"] and tools["get_profile"]["kind"] == "read-only"
    assert "profiles:admin" in tools["restore_profile"]["scopes"]
    assert [n["variable"] for n in servers["search"]["needs"]] == ["MCP_SUITE_SEARCH_ROOTS"]
    text = run(home, "servers")
    assert text.returncode == 0 and "hybrid_search" in text.stdout and "search:read" in text.stdout
    assert "needs MCP_SUITE_SEARCH_ROOTS (NOT SET)" in text.stdout
    assert_quiet(text)
    assert text.stderr == "" and not (home / "pg").exists()


def test_claude_config_carries_what_each_server_needs(home: Path, tmp_path: Path):
    bare = run(home, "claude-config", "search")
    assert bare.returncode == 0, bare.stderr
    entry = json.loads(bare.stdout)["mcpServers"]["mcp-suite-search"]
    assert entry["args"] == ["serve", "search"] and entry["env"]["MCP_SUITE_HOME"] == str(home)
    assert entry["env"]["MCP_SUITE_SEARCH_ROOTS"].startswith("<")  # a placeholder to fill in...
    assert "note: search: set MCP_SUITE_SEARCH_ROOTS" in bare.stderr  # ...and the user is told so
    configured = run(home, "claude-config", env={"MCP_SUITE_SEARCH_ROOTS": str(tmp_path)})
    servers = json.loads(configured.stdout)["mcpServers"]
    assert servers["mcp-suite-search"]["env"]["MCP_SUITE_SEARCH_ROOTS"] == str(tmp_path)
    assert "MCP_SUITE_SEARCH_ROOTS" not in servers["mcp-suite-profiles"]["env"]
    assert configured.stderr == ""


def doctor_lines(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    lines = [line for line in done.stdout.splitlines() if line.split(" ", 1)[0] in ("OK", "WARN", "FAIL")]
    return {line.split()[1]: line.split()[0] for line in lines}


def test_doctor_on_a_fresh_home_warns_but_passes(home: Path):
    done = run(home, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    status = doctor_lines(done)
    assert status["database"] == "WARN" and status["search"] == "WARN" and status["model"] == "OK"
    assert "`mcp-suite migrate`" in done.stdout
    assert not (home / "pg").exists()  # the doctor creates nothing
    assert_quiet(done)


def test_doctor_on_a_migrated_database(home: Path, database_url: str, tmp_path: Path):
    done = run(home, "doctor", env={"DATABASE_URL": database_url, "MCP_SUITE_SEARCH_ROOTS": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    status = doctor_lines(done)
    assert status["database"] == "OK" and status["migrations"] == "OK" and status["search"] == "OK"
    assert "tokens" in status and "http" in status


def test_doctor_fails_with_what_to_fix(home: Path):
    env = {"DATABASE_URL": f"postgresql://u:topsecret@127.0.0.1:{closed_port()}/x",
           "MCP_SUITE_SEARCH_ROOTS": "/no/such/folder", "MCP_SUITE_JWT_ISSUER": "https://id.example.com"}
    done = run(home, "doctor", env=env)
    assert done.returncode == 1
    status = doctor_lines(done)
    assert status["database"] == "FAIL" and status["search"] == "FAIL" and status["jwt"] == "FAIL"
    assert "MCP_SUITE_JWT_AUDIENCE" in done.stdout and "/no/such/folder" in done.stdout
    assert "topsecret" not in done.stdout + done.stderr
    assert_quiet(done)


@pytest.mark.slow
def test_doctor_deep_loads_the_model_quietly(home: Path):
    done = run(home, "doctor", "--deep", timeout=300)
    assert doctor_lines(done)["model"] == "OK", done.stdout
    assert "384 dimensions" in done.stdout
    assert_quiet(done)


# --- serve over stdio in a terminal ------------------------------------------------------------------

def _read_until(fd: int, needle: bytes, limit_s: float = 60.0) -> bytes:
    """Read a pipe until `needle` appears (or the process closes it / the generous limit passes)."""
    seen = b""
    while needle not in seen:
        ready, _, _ = select.select([fd], [], [], limit_s)
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            break
        seen += chunk
    return seen


def test_stdio_serve_in_a_terminal_says_it_waits_and_ctrl_c_ends_it(home: Path, database_url: str):
    env = {**os.environ, "MCP_SUITE_HOME": str(home), "DATABASE_URL": database_url}
    env.pop("XDG_RUNTIME_DIR", None)
    terminal, other_end = pty.openpty()
    # A terminal's Ctrl-C: the child gets the default SIGINT disposition even when this test runs as a
    # background job (which inherits SIGINT ignored, and Python then installs no KeyboardInterrupt).
    proc = subprocess.Popen([sys.executable, "-m", "mcp_suite.cli", "serve", "profiles"], stdin=other_end,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        told = _read_until(proc.stderr.fileno(), b"Ctrl-C")  # type: ignore[union-attr]
        assert b"waiting for an MCP client" in told, told
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(terminal)
        os.close(other_end)
    assert proc.returncode == 130, err
    assert out == b""  # stdout belongs to the protocol
    assert b"Traceback" not in told + err and b"KeyboardInterrupt" not in told + err


def test_stdio_serve_for_a_client_prints_nothing_extra(home: Path, database_url: str):
    done = run(home, "serve", "profiles", env={"DATABASE_URL": database_url}, timeout=60)  # stdin: EOF at once
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "waiting for an MCP client" not in done.stderr
    assert_quiet(done)
