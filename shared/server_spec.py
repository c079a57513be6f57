"""How a server package tells the suite what it brings: one `ServerSpec`, exported as `SPEC`.

    # servers/notes/__init__.py
    SPEC = ServerSpec(name="notes", app="servers.notes.tools:app", summary="Notes.",
                      needs=(Need("MCP_SUITE_NOTES_DIR", "where notes live", "/srv/notes"),),
                      add_cli=add_cli)

The command line (`mcp_suite.registry`) lists the server packages and reads their `SPEC`; nothing in
the core (`shared/`) imports a server. A spec is cheap to import: the server's `SuiteServer` is named
as `module:attribute` and imported only when it is served or described, and `add_cli` imports the
command's own code only when the command runs, so `mcp-suite --help` stays fast.

A server's schema is not in its spec: its `NNNN_name.sql` files live in its own `migrations` package,
registered under the `mcp_suite.migrations` entry-point group, so the core's migration runner
(`shared.db.migrate`) finds and applies them without importing the server or the command line.

`add_cli(cli)` adds the server's command-line parts through `CliHooks`: its own top-level commands
(search's `ingest`) and targets under the shared command groups (`demo profiles`, `eval search`,
`bench search`). Each parser it adds sets `handler=` (a function of the parsed arguments returning
the exit status), like every other command.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from shared.server import SuiteServer

Group = Literal["bench", "demo", "eval"]


@dataclass(frozen=True)
class Need:
    """An environment variable a server reads to do its whole job, and what it is for.

    `mcp-suite servers`, `claude-config` and `doctor` show it, so a user learns before a tool call fails.
    """

    variable: str
    meaning: str
    example: str


class CliHooks(Protocol):
    """What the command line offers a server's `add_cli` (implemented in `mcp_suite.cli`)."""

    def command(self, name: str, *, help: str, description: str | None = None,
                example: str | None = None) -> argparse.ArgumentParser:
        """A new top-level command, `mcp-suite NAME`."""
        ...

    def target(self, group: Group, name: str, *, help: str, example: str | None = None) -> argparse.ArgumentParser:
        """A new target under a shared group: `mcp-suite demo NAME`, `eval NAME`, `bench NAME`."""
        ...

    def run_with_connection(self, work: Callable[[Any], Awaitable[int]], *, migrate_first: bool = True) -> int:
        """Run `work(conn)` on the database in use (migrated first), with the command line's error handling."""
        ...


@dataclass(frozen=True)
class ServerSpec:
    """One server's registration: its name, where its `SuiteServer` lives, what it needs, its commands."""

    name: str
    app: str  # "module:attribute" of the SuiteServer, imported on first use
    summary: str
    needs: tuple[Need, ...] = ()
    add_cli: Callable[[CliHooks], None] | None = None
    settings: tuple[type, ...] = ()  # its typed settings sections (`shared.config`), for docs and doctor

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name in ("all",):
            raise ValueError(f"server name {self.name!r} must be an identifier other than 'all'")
        module, colon, attribute = self.app.partition(":")
        if not (module and colon and attribute):
            raise ValueError(f"{self.name}: app must be 'module:attribute', got {self.app!r}")

    def load(self) -> SuiteServer:
        """Import the server's module (only this one, so start-up stays fast) and return its server."""
        module, _, attribute = self.app.partition(":")
        return getattr(importlib.import_module(module), attribute)
