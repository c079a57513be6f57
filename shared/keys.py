"""The suite's secret key, held outside the database, and the per-purpose keys derived from it.

One master key seals the audit chain, keys the hash of recorded arguments and signs cursors. It is
never stored in a table: a database user who can rewrite rows must not also be able to recompute
the seals. It comes from, in order:

1. `MCP_SUITE_AUDIT_KEY` (at least 32 characters; for replicas and containers, from a secret store);
2. `MCP_SUITE_AUDIT_KEY_FILE`, or `$MCP_SUITE_HOME/audit.key`, created on first use with mode 0600.

Each purpose gets its own key, `HMAC-SHA-256(master, "mcp-suite/<purpose>")`, so a key leaked from
one use (say, a cursor signer) says nothing about another (the audit seal).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.config import MIN_KEY_CHARS, KeySettings, Settings, load

KEY_FILE_NAME = "audit.key"


class KeyProblem(RuntimeError):
    """The key is missing, unreadable or too weak; the message says what to do."""


@dataclass(frozen=True)
class KeyRing:
    """The master key and where it came from (`env` or a file path, never the key itself)."""

    master: bytes
    origin: str

    def derive(self, purpose: str) -> bytes:
        return hmac.new(self.master, f"mcp-suite/{purpose}".encode(), hashlib.sha256).digest()


def key_file(settings: Settings) -> Path:
    configured = load(KeySettings).key_file
    return Path(configured).expanduser() if configured else settings.home / KEY_FILE_NAME


def load_keys(settings: Settings | None = None, *, create: bool = True) -> KeyRing:
    """The key ring from the environment or the key file (created when missing and `create`)."""
    settings = settings or Settings.from_env()
    configured = load(KeySettings).key or ""
    if configured:
        if len(configured) < MIN_KEY_CHARS:
            raise KeyProblem(f"MCP_SUITE_AUDIT_KEY must be at least {MIN_KEY_CHARS} characters "
                            "(make one with `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        return KeyRing(configured.encode(), "env")
    path = key_file(settings)
    if not path.exists():
        if not create:
            raise KeyProblem(f"no audit key: set MCP_SUITE_AUDIT_KEY or MCP_SUITE_AUDIT_KEY_FILE ({path} is missing)")
        _create_key_file(path)
    try:
        if path.stat().st_mode & 0o077:
            raise KeyProblem(f"audit key file {path} is readable by other users; run `chmod 600 {path}`")
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyProblem(f"cannot read the audit key file {path} ({type(exc).__name__})") from None
    if len(text) < MIN_KEY_CHARS:
        raise KeyProblem(f"audit key file {path} holds fewer than {MIN_KEY_CHARS} characters")
    return KeyRing(text.encode(), str(path))


def _create_key_file(path: Path) -> None:
    """Create the key atomically with 0600; a concurrent creator wins and its key is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32) + "\n")
