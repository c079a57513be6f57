"""The recorded form of tool arguments and results: always storable, never rejected.

Anything a client sends can reach the audit log, and PostgreSQL's `jsonb`/`text` refuse some of it:
NUL characters, lone UTF-16 surrogates, NaN and ±Infinity, integers too long to print, nesting deep
enough to exhaust a parser. A record that cannot be stored would mean a call without a record, so the
recorded form is made safe here, at the root, before the record is serialised:

- strings: NUL becomes `␀`, a lone surrogate becomes `U+FFFD`, and long strings are clipped;
- numbers: NaN/±Infinity become the strings `"NaN"`, `"Infinity"`, `"-Infinity"`; integers beyond
  18 digits become strings, clipped;
- containers: keys become strings, nesting deeper than `MAX_DEPTH` and items beyond `MAX_ITEMS` are
  replaced by a marker;
- anything else (bytes, objects) is recorded as a clipped `repr`.

The keyed hash of the *full* arguments (`shared.audit.chain.arguments_digest`) still covers the original.
The standard `json` module has no option that does this (it can only reject or pass NaN through), so
it is a small walk of our own.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 8
MAX_ITEMS = 64
MAX_STRING = 512
MAX_INT_DIGITS = 18


def storable_text(text: str, limit: int | None = MAX_STRING) -> str:
    """Text PostgreSQL will store: no NUL, no lone surrogates, at most `limit` characters."""
    if "\x00" in text:
        text = text.replace("\x00", "\u2400")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a "\\ud800" JSON escape
        text = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    if limit is not None and len(text) > limit:
        return text[:limit] + f"…[{len(text) - limit} more chars]"
    return text


def storable(value: Any, *, depth: int = 0) -> Any:
    """A JSON value `jsonb` accepts, close to `value`, bounded in size."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, int):
        if -(10**MAX_INT_DIGITS) < value < 10**MAX_INT_DIGITS:
            return value
        return _big_int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            return f"[nested deeper than {MAX_DEPTH} levels]"
        if isinstance(value, dict):
            items = list(value.items())
            out = {storable_text(str(k), 128): storable(v, depth=depth + 1) for k, v in items[:MAX_ITEMS]}
            if len(items) > MAX_ITEMS:
                out["…"] = f"[{len(items) - MAX_ITEMS} more keys]"
            return out
        seq = [storable(v, depth=depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            seq.append(f"[{len(value) - MAX_ITEMS} more items]")
        return seq
    return storable_text(_safe_repr(value), 128)


def _big_int(value: int) -> str:
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    bits = magnitude.bit_length()
    digits = int(bits * math.log10(2)) + 1
    if digits <= 4000:  # below Python's int-to-str limit: show the leading digits
        text = str(magnitude)
        return f"{sign}{text[:MAX_INT_DIGITS]}…[{len(text)} digits]"
    return f"{sign}[integer of about {digits} digits]"


def _safe_repr(value: Any) -> str:
    try:
        return f"<{type(value).__name__}: {value!r}>"
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not fail the record
        return f"<{type(value).__name__}>"
