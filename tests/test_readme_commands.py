"""The README's commands work when pasted: every concrete `mcp-suite …` line in its shell blocks parses
with the real command line (a renamed command or flag fails here), and its Claude Desktop snippet has
the shape `claude-config` prints."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_suite import tokens_cli
from mcp_suite.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def shell_commands() -> list[str]:
    """`mcp-suite` lines of the ```bash blocks, comments cut; synopsis lines (with `[`, `|`, `…`) left out."""
    lines = []
    for block in re.findall(r"^```bash\n(.*?)^```", README, re.S | re.M):
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if re.match(r"(\.venv/bin/)?mcp-suite ", command) and not re.search(r"[\[|…]", command):
                lines.append(command)
    return lines


def test_the_readme_has_commands_to_check():
    assert len(shell_commands()) >= 15


@pytest.mark.parametrize("command", shell_commands())
def test_each_readme_command_parses_with_the_real_command_line(command):
    words = shlex.split(command)[1:]
    if words[0] == "tokens":
        tokens_cli._parser().parse_args(words[1:])
        return
    args = build_parser().parse_args(words)
    assert callable(args.handler)


def test_the_claude_desktop_snippet_has_the_shape_claude_config_prints(tmp_path):
    snippet = json.loads(re.search(r"```json\n(.*?)```", README, re.S).group(1))
    env = {**os.environ, "MCP_SUITE_HOME": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "mcp_suite.cli", "claude-config", "profiles"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    documented, real = snippet["mcpServers"], printed["mcpServers"]
    assert documented.keys() == real.keys()
    for name, entry in real.items():
        assert documented[name]["args"] == entry["args"]
        assert Path(entry["command"]).name == Path(documented[name]["command"]).name == "mcp-suite"
        assert documented[name]["env"].keys() == entry["env"].keys()
