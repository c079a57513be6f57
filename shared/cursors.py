"""Signed, opaque pagination cursors: a position the client round-trips and cannot forge or reuse.

A cursor is `base64url(payload) "." base64url(tag)`, where the payload is JSON and the tag is the first
16 bytes of `HMAC-SHA-256(key, binding NUL payload)`. The `binding` names what the cursor is valid for
(e.g. the caller and the search), so a cursor cannot be replayed by another caller or for another
query. Decoding accepts one spelling only (no spare base64 bits to edit) and raises `InvalidInput`
with the caller's message for anything else. Use a key derived for the purpose (`KeyRing.derive`).

```python
token = sign_cursor(key, "alice|q=smith", [1, "2026-12-01T10:00:00+00:00", "42"])
open_cursor(key, "alice|q=smith", token, "cursor is not valid for this search")   # → the list
```
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from shared.errors import InvalidInput


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _tag(key: bytes, binding: str, payload: bytes) -> bytes:
    message = binding.encode("utf-8", "surrogatepass") + b"\x00" + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:16]


def sign_cursor(key: bytes, binding: str, payload: list[Any]) -> str:
    """An opaque cursor carrying `payload` (JSON-serialisable), valid only for `binding`."""
    data = json.dumps(payload, separators=(",", ":")).encode()
    return f"{_b64(data)}.{_b64(_tag(key, binding, data))}"


def open_cursor(key: bytes, binding: str, cursor: str, message: str) -> list[Any]:
    """The payload of a cursor signed for `binding` with `key`; `InvalidInput(message)` otherwise."""
    body, dot, tag = cursor.partition(".")
    try:
        data, mac = _unb64(body), _unb64(tag)
    except (binascii.Error, ValueError):
        raise InvalidInput(message) from None
    canonical = _b64(data) == body and _b64(mac) == tag
    if not dot or not canonical or not hmac.compare_digest(mac, _tag(key, binding, data)):
        raise InvalidInput(message)
    try:
        payload = json.loads(data)
    except ValueError:
        raise InvalidInput(message) from None
    if not isinstance(payload, list):
        raise InvalidInput(message)
    return payload
