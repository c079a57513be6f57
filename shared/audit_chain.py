"""How audit records are serialised and chained, and how a chain is verified.

A record's `body` is canonical JSON (sorted keys, no spaces, UTF-8). The database function
`audit_append` (migration 0001) assigns the gap-free `seq` and sets
`hash = sha256(prev_hash || f"{seq}\\n{body}")`. `verify` recomputes the chain from the first record,
checks that the query columns agree with the body, and compares the end with the `audit_head` row, so
an edited, deleted, inserted or reordered record is named by its sequence number.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

GENESIS = bytes(32)
FORMAT_VERSION = 1
_DERIVED = ("server", "tool", "principal", "transport", "request_id", "phase", "outcome", "error_class")


def canonical(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev: bytes, seq: int, body: str) -> bytes:
    return hashlib.sha256(prev + f"{seq}\n{body}".encode()).digest()


def arguments_digest(key: bytes, arguments: Mapping[str, Any]) -> str:
    """Keyed hash of the full arguments: proves what was sent without storing PII in the clear."""
    return hmac.new(key, canonical(arguments).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_hash: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "head_hash": self.head_hash,
        }


def _columns_match(row: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    for name in _DERIVED:
        if row[name] != body.get(name):
            return f"column {name} differs from the signed body"
    ts = datetime.fromisoformat(str(body.get("ts")))
    if row["ts"] != ts:
        return "column ts differs from the signed body"
    return None


async def verify(conn: asyncpg.Connection, *, batch: int = 5000) -> VerifyResult:
    """Walk the whole chain in sequence order; report the first record that does not check out."""
    prev = GENESIS
    expected = 1
    count = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE id")
        cursor = conn.cursor(
            "SELECT seq, ts, server, tool, principal, transport, request_id, phase, outcome, error_class,"
            " body, prev_hash, hash FROM audit_log ORDER BY seq",
            prefetch=batch,
        )
        async for row in cursor:
            seq = row["seq"]
            if seq != expected:
                problem = f"record {expected} is missing" if seq > expected else f"record {seq} is duplicated"
                return VerifyResult(False, count, expected, problem)
            if bytes(row["prev_hash"]) != prev:
                return VerifyResult(False, count, seq, "link to the previous record is broken (reordered?)")
            if chain_hash(prev, seq, row["body"]) != bytes(row["hash"]):
                return VerifyResult(False, count, seq, "record content was edited")
            try:
                mismatch = _columns_match(row, json.loads(row["body"]))
            except (ValueError, TypeError):
                mismatch = "body is not valid JSON"
            if mismatch:
                return VerifyResult(False, count, seq, mismatch)
            prev = bytes(row["hash"])
            expected += 1
            count += 1
    if head["seq"] != count:
        return VerifyResult(False, count, count + 1, f"records after {count} were deleted (head says {head['seq']})")
    if bytes(head["hash"]) != prev:
        return VerifyResult(False, count, count, "chain head does not match the last record")
    return VerifyResult(True, count, head_hash=prev.hex())
