"""Which servers the suite can serve, by name → the module attribute holding its `SuiteServer`.

Also what each server needs from its deployment to do its whole job (`NEEDS`), so `claude-config`,
`servers` and `doctor` can tell a user before a tool call fails.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.server import SuiteServer

SERVERS: dict[str, str] = {
    "profiles": "servers.profiles.tools:app",
    "search": "servers.search.tools:app",
}


@dataclass(frozen=True)
class Need:
    """An environment variable a server reads, and what it is for."""

    variable: str
    meaning: str
    example: str


# Read by servers/search/tools.py (`_jail`): without it, the `ingest` tool refuses paths.
NEEDS: dict[str, tuple[Need, ...]] = {
    "profiles": (),
    "search": (
        Need("MCP_SUITE_SEARCH_ROOTS",
             "folders the `ingest` tool may read (separated by ':'); unset, ingest from paths is disabled",
             "/home/you/Documents"),
    ),
}


class UnknownServer(KeyError):
    """A server name that is not in the registry; the message lists the valid names."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown server {self.name!r}; choose from {', '.join(names())}"


def names() -> list[str]:
    return sorted(SERVERS)


def check(name: str) -> str:
    """The name itself if it is registered, else `UnknownServer`."""
    if name not in SERVERS:
        raise UnknownServer(name)
    return name


def load(name: str) -> SuiteServer:
    """Import a server's module (only the one asked for, so start-up stays fast)."""
    module_name, _, attribute = SERVERS[check(name)].partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def load_servers(name: str) -> list[SuiteServer]:
    """`all` (the registry, or `MCP_SUITE_SERVERS`), a registry name, or `module:attribute`."""
    from shared.http.layers import split_list

    names = (split_list(os.environ.get("MCP_SUITE_SERVERS")) or sorted(SERVERS)) if name == "all" else [name]
    servers: list[SuiteServer] = []
    for entry in names:
        if ":" in entry:
            module, _, attribute = entry.partition(":")
            servers.append(getattr(importlib.import_module(module), attribute))
        else:
            servers.append(load(entry))
    if len({s.name for s in servers}) != len(servers):
        raise ValueError("two servers share a name")
    return servers
