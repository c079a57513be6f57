"""Who is calling, and the per-call facts every layer needs.

Every tool call has a `Principal`. Over stdio it comes from configuration (`MCP_SUITE_PRINCIPAL`,
`MCP_SUITE_SCOPES`); over HTTP it comes from a verified token. Scopes are `<server>:<verb>` strings
(`profiles:read`, `profiles:admin`); a granted scope may use shell-style wildcards (`*:read`).

The layers of the call stack pass the `Call` explicitly. The SDK calls the tool body, so the body
reads its call (in practice: `current_principal()`) from a context variable, bound for the call's
duration; that is the only thing the variable carries, and only inward: failures come back out as
exceptions (`shared.tool.ToolFailed`).
"""

from __future__ import annotations

import contextvars
import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


def _is_pattern(scope: str) -> bool:
    return "*" in scope or "?" in scope or "[" in scope


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a stable id and the scopes it was granted."""

    id: str
    scopes: frozenset[str] = frozenset()
    source: str = "config"

    def has_scope(self, scope: str) -> bool:
        if scope in self.scopes:  # the common case, without a pattern match per granted scope
            return True
        return any(fnmatch.fnmatchcase(scope, granted) for granted in self.scopes if _is_pattern(granted))

    def missing(self, required: frozenset[str] | set[str]) -> set[str]:
        return {scope for scope in required if not self.has_scope(scope)}


@dataclass(slots=True)
class Call:
    """One tool call, passed explicitly from layer to layer (`shared.pipeline`).

    Created by the identity layer; each layer reads what it needs and the audit layers record it.
    `audited` is False for a refusal the refusal budget counts in a summary instead of one record.
    """

    server: str
    tool: str
    principal: Principal
    transport: str
    request_id: str
    arguments: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    audited: bool = True
    protocol_version: str | None = None
    dispatch: Callable[[], Awaitable[Any]] | None = None  # into the SDK: argument validation, then the tool
    arguments_digest: str | None = None  # keyed hash of the full arguments, computed once per call


_current_call: contextvars.ContextVar[Call | None] = contextvars.ContextVar("mcp_suite_call", default=None)


def active_call() -> Call | None:
    """The call being served, or None outside one (logging uses this)."""
    return _current_call.get()


def current_call() -> Call:
    """The call being served, for tool bodies. Raises if used outside a tool call (a programming error)."""
    call = _current_call.get()
    if call is None:
        raise RuntimeError("current_call() used outside a tool call")
    return call


def current_principal() -> Principal:
    """Who is calling: the one fact a tool body reads about its call (e.g. to scope a query)."""
    return current_call().principal


def bind_call(call: Call) -> contextvars.Token[Call | None]:
    """Make `call` visible to the tool body (the SDK calls the body; this is the only way in)."""
    return _current_call.set(call)


def unbind_call(token: contextvars.Token[Call | None]) -> None:
    _current_call.reset(token)
