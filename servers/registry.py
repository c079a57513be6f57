"""Which servers the suite can serve, by name → the module attribute holding its `SuiteServer`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.server import SuiteServer

SERVERS: dict[str, str] = {
    "profiles": "servers.profiles.tools:app",
    "search": "servers.search.tools:app",
}


def load(name: str) -> SuiteServer:
    """Import a server's module (only the one asked for, so start-up stays fast)."""
    if name not in SERVERS:
        raise KeyError(f"unknown server {name!r}; choose from {', '.join(sorted(SERVERS))}")
    module_name, _, attribute = SERVERS[name].partition(":")
    return getattr(importlib.import_module(module_name), attribute)
