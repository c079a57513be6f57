"""Running `mcp-suite` as a user would: a subprocess with a user's environment, not the developer's.

Every CLI test goes through `user_env`, so a developer's own `MCP_SUITE_*` or `DATABASE_URL` can never
change what a test sees, and `XDG_RUNTIME_DIR` is absent as in containers, ssh sessions and CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def user_env(home: Path | str | None = None, **extra: str | None) -> dict[str, str]:
    """The process environment less every suite setting, plus `MCP_SUITE_HOME` and `extra` (None removes)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MCP_SUITE_") and k not in ("DATABASE_URL", "XDG_RUNTIME_DIR")}
    if home is not None:
        env["MCP_SUITE_HOME"] = str(home)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 120, stdin: int | None = subprocess.DEVNULL,
            cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m mcp_suite.cli ARGS` with that environment; output captured as text."""
    return subprocess.run([sys.executable, "-m", "mcp_suite.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=stdin, cwd=cwd)
