"""Which servers the suite serves: each server package's `SPEC` (`shared.server_spec.ServerSpec`).

The shipped servers are listed in `PACKAGES`; an installed distribution can add one without
touching this file through the entry-point group `mcp_suite.servers` (`name = "package:SPEC"`).
A spec names its `SuiteServer` as `module:attribute`, imported only when that server is served or
described, so listing the servers stays fast.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from shared.server_spec import Need, ServerSpec

if TYPE_CHECKING:
    from shared.server import SuiteServer

__all__ = ["Need", "ServerSpec", "UnknownServer", "check", "load", "load_servers", "names", "spec", "specs"]

PACKAGES: tuple[str, ...] = ("servers.profiles", "servers.search")
ENTRY_POINT_GROUP = "mcp_suite.servers"


class UnknownServer(KeyError):
    """A server name that is not in the registry; the message lists the valid names."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown server {self.name!r}; choose from {', '.join(names())}"


@functools.cache
def specs() -> dict[str, ServerSpec]:
    """Every registered server by name: `PACKAGES`, then the `mcp_suite.servers` entry points."""
    found = [importlib.import_module(package).SPEC for package in PACKAGES]
    found += [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)]
    registered: dict[str, ServerSpec] = {}
    for one in found:
        if not isinstance(one, ServerSpec):
            raise TypeError(f"{one!r} is not a ServerSpec")
        if one.name in registered and registered[one.name] != one:
            raise ValueError(f"two servers are registered as {one.name!r}")
        registered[one.name] = one
    return registered


def names() -> list[str]:
    return sorted(specs())


def check(name: str) -> str:
    """The name itself if it is registered, else `UnknownServer`."""
    if name not in specs():
        raise UnknownServer(name)
    return name


def spec(name: str) -> ServerSpec:
    return specs()[check(name)]


def load(name: str) -> SuiteServer:
    """Import one registered server's module (only the one asked for) and return its server."""
    return spec(name).load()


def __getattr__(attribute: str) -> object:
    """`SERVERS` (name → `module:attribute`), read from the specs."""
    if attribute == "SERVERS":
        return {name: one.app for name, one in specs().items()}
    raise AttributeError(attribute)


def load_servers(name: str) -> list[SuiteServer]:
    """`all` (the registry, or `MCP_SUITE_SERVERS`), a registry name, or `module:attribute`."""
    from shared.config import HttpSettings
    from shared.config import load as load_settings

    chosen = (list(load_settings(HttpSettings).servers) or names()) if name == "all" else [name]
    servers: list[SuiteServer] = []
    for entry in chosen:
        if ":" in entry:
            module, _, attribute = entry.partition(":")
            servers.append(getattr(importlib.import_module(module), attribute))
        else:
            servers.append(load(entry))
    if len({s.name for s in servers}) != len(servers):
        raise ValueError("two servers share a name")
    return servers
