"""Every message gets an answer: a JSON-RPC error for what the SDK cannot parse.

The SDK parses each incoming message with pydantic-core (`jsonrpc_message_adapter`). A message it
cannot parse (invalid JSON, a lone-surrogate escape such as `"\\ud800"`, nesting deeper than its
recursion limit of about 250 levels, a JSON value that is not a JSON-RPC message) gets no reply on
stdio and SSE, and a reply without the request's id on streamable HTTP, so the client waits for its
own timeout. `check` runs the same parser first and, when it fails, builds the reply JSON-RPC 2.0
prescribes: parse error -32700 or invalid request -32600, with the request's id when it can be
recovered (Python's parser reads lone surrogates; `recover_id` scans past any depth of nesting
without recursing), else `null`.

    checked = check(body)
    if checked.error is not None:
        answer(checked.error)      # and keep serving
    else:
        use(checked.parsed)        # plain Python data, parsed once

The reply never echoes the message or a Python exception: only the parser's position-level reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pydantic_core
from mcp_types import jsonrpc_message_adapter
from pydantic import ValidationError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
MAX_ID_CHARS = 256
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]+|[\]}]+', re.S)
_ID_VALUE = re.compile(r'\s*:\s*(-?\d{1,18}(?![\d.eE])|"(?:[^"\\]|\\.){0,' + str(MAX_ID_CHARS) + r'}")', re.S)


@dataclass(frozen=True)
class Checked:
    """A message the SDK will accept (`parsed`), or the JSON-RPC error to answer instead (`error`)."""

    parsed: Any = None
    error: dict[str, Any] | None = None


def check(message: bytes | str) -> Checked:
    """Parse like the SDK does; on failure return the error reply (see the module docstring)."""
    try:
        parsed = pydantic_core.from_json(message)
    except ValueError as exc:
        return Checked(error=error_reply(PARSE_ERROR, f"Parse error: {_reason(exc)}", recover_id(message)))
    try:
        jsonrpc_message_adapter.validate_python(parsed, by_name=False)
    except ValidationError:
        request_id = _usable_id(parsed.get("id")) if isinstance(parsed, dict) else None
        return Checked(error=error_reply(INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message", request_id))
    return Checked(parsed=parsed)


def error_reply(code: int, message: str, request_id: int | str | None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def encode(reply: dict[str, Any]) -> str:
    """One line of ASCII JSON (lone surrogates cannot reach here: `_usable_id` drops such ids)."""
    return json.dumps(reply, separators=(",", ":"))


def _reason(exc: ValueError) -> str:
    """pydantic-core's reasons are short and positional ("recursion limit exceeded at line 1 column 254")."""
    text = str(exc).splitlines()[0] if str(exc) else "invalid JSON"
    return text[:120]


def _usable_id(value: Any) -> int | str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) < 1 << 63:
        return value
    if isinstance(value, str) and len(value) <= MAX_ID_CHARS:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the client could not read its own id back
            return None
        return value
    return None


def recover_id(message: bytes | str) -> int | str | None:
    """The top-level `"id"` of a message pydantic-core refused, or None.

    Python's own parser reads lone surrogates and moderate nesting; past its recursion limit a scan
    that tracks depth without recursing finds an `"id"` member of the outermost object wherever it
    sits (runs of brackets count as one token, so a megabyte of `[[[[` costs two regex matches).
    """
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return _scan_for_id(text)
    return _usable_id(parsed.get("id")) if isinstance(parsed, dict) else None


def _scan_for_id(text: str) -> int | str | None:
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        first = token[0]
        if first in "[{":
            depth += len(token)
        elif first in "]}":
            depth -= len(token)
        elif depth == 1 and token == '"id"':
            value = _ID_VALUE.match(text, match.end())
            if value is not None:
                try:
                    return _usable_id(json.loads(value.group(1)))
                except ValueError:
                    return None
        if depth <= 0 and first in "]}":
            return None
    return None
