"""Who is calling, and the per-call facts every layer needs.

Every tool call has a `Principal`. Over stdio it comes from configuration (`MCP_SUITE_PRINCIPAL`,
`MCP_SUITE_SCOPES`); over HTTP it comes from a verified token. Scopes are `<server>:<verb>` strings
(`profiles:read`, `profiles:admin`); a granted scope may use shell-style wildcards (`*:read`).

The active call is held in a context variable so that tool bodies, the database layer and the audit
log read the same facts without threading them through every signature.
"""

from __future__ import annotations

import contextvars
import fnmatch
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a stable id and the scopes it was granted."""

    id: str
    scopes: frozenset[str] = frozenset()
    source: str = "config"

    def has_scope(self, scope: str) -> bool:
        return any(granted == scope or fnmatch.fnmatchcase(scope, granted) for granted in self.scopes)

    def missing(self, required: frozenset[str] | set[str]) -> set[str]:
        return {scope for scope in required if not self.has_scope(scope)}


@dataclass
class CallInfo:
    """Mutable facts about the tool call in flight; the pipeline and the tool body share one instance."""

    server: str
    tool: str
    principal: Principal
    transport: str
    request_id: str
    failure: object | None = None
    notes: dict[str, object] = field(default_factory=dict)


_current_call: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar("mcp_suite_call", default=None)


def current_call() -> CallInfo:
    """The call being served. Raises if used outside a tool call (a programming error)."""
    call = _current_call.get()
    if call is None:
        raise RuntimeError("current_call() used outside a tool call")
    return call


def current_principal() -> Principal:
    return current_call().principal


def bind_call(call: CallInfo) -> contextvars.Token[CallInfo | None]:
    return _current_call.set(call)


def unbind_call(token: contextvars.Token[CallInfo | None]) -> None:
    _current_call.reset(token)
