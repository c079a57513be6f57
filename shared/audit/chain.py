"""How audit records are serialised, chained and sealed, and how a chain is verified.

A record's `body` is canonical JSON (sorted keys, no spaces, UTF-8). The database function
`audit_append` assigns the gap-free `seq` and sets `hash = sha256(prev_hash || f"{seq}\\n{body}")`.
That chain alone only proves order to someone who cannot recompute it; a database superuser can. So
the servers also write *seals*: `HMAC-SHA-256(seal_key, f"{seq}\\n".encode() + hash)` of a head they
committed, with a key kept outside the database (`shared.keys`). A seal vouches for every record up to
its `seq`, because each hash covers the one before.

`verify` walks the whole chain and reports the first record that does not check out: a broken link, a
body that does not hash to its stored hash, a query column that differs from the body, a missing or
moved head row, a seal that does not match (records up to it were rewritten), a tail of unsealed
records older than the grace period (seals deleted), or a checkpoint kept outside the database that
the chain no longer contains (truncated or rewritten tail). Without the key it checks the unkeyed
chain only, and says so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

GENESIS = bytes(32)
FORMAT_VERSION = 1
SEAL_PURPOSE = "audit/seal"
ARGUMENTS_PURPOSE = "audit/arguments"
UNSEALED_GRACE = timedelta(seconds=60)  # a writer seals within a second of each commit
_DERIVED = ("server", "tool", "principal", "transport", "request_id", "phase", "outcome", "error_class",
            "latency_ms", "result_bytes")


def canonical(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
                      allow_nan=False)


def chain_hash(prev: bytes, seq: int, body: str) -> bytes:
    return hashlib.sha256(prev + f"{seq}\n{body}".encode()).digest()


def seal_mac(key: bytes, seq: int, head_hash: bytes) -> bytes:
    return hmac.new(key, f"{seq}\n".encode() + head_hash, hashlib.sha256).digest()


def arguments_digest(key: bytes, arguments: Mapping[str, Any]) -> str:
    """Keyed hash of the full arguments: proves what was sent without storing PII in the clear."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """A sealed head kept outside the database (`mcp-suite audit checkpoint`)."""

    seq: int
    hash: str
    mac: str
    ts: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        data = json.loads(text)
        return cls(seq=int(data["seq"]), hash=str(data["hash"]), mac=str(data["mac"]), ts=str(data.get("ts", "")))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_hash: str | None = None
    sealed_through: int | None = None
    keyed: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _columns_match(row: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    for name in _DERIVED:
        stored, signed = row[name], body.get(name)
        if isinstance(stored, float) and isinstance(signed, int | float):
            if stored != float(signed):
                return f"column {name} differs from the signed body"
        elif stored != signed:
            return f"column {name} differs from the signed body"
    ts = datetime.fromisoformat(str(body.get("ts")))
    if row["ts"] != ts:
        return "column ts differs from the signed body"
    return None


async def make_checkpoint(conn: asyncpg.Connection, seal_key: bytes) -> Checkpoint:
    """The current head, sealed, to be written to a file outside the database."""
    head = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE id")
    if head is None:
        raise ValueError("the audit_head row is missing: run `mcp-suite audit verify`")
    digest = bytes(head["hash"])
    return Checkpoint(seq=head["seq"], hash=digest.hex(), mac=seal_mac(seal_key, head["seq"], digest).hex())


async def verify(
    conn: asyncpg.Connection,
    *,
    seal_key: bytes | None = None,
    checkpoint: Checkpoint | None = None,
    batch: int = 5000,
    now: datetime | None = None,
) -> VerifyResult:
    """Walk the whole chain in sequence order; report the first record that does not check out."""
    prev, expected, count = GENESIS, 1, 0
    keyed = seal_key is not None
    sealed_through = 0
    last_ts: datetime | None = None
    unsealed_since: datetime | None = None
    if checkpoint is not None and seal_key is not None:
        expected_mac = seal_mac(seal_key, checkpoint.seq, bytes.fromhex(checkpoint.hash))
        if not hmac.compare_digest(expected_mac.hex(), checkpoint.mac):
            return VerifyResult(False, 0, checkpoint.seq, "the checkpoint file's seal is not valid for this key")

    def fail(seq: int, problem: str) -> VerifyResult:
        return VerifyResult(False, count, seq, problem, sealed_through=sealed_through or None, keyed=keyed)

    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE id")
        seals = {row["seq"]: bytes(row["mac"]) for row in await conn.fetch("SELECT seq, mac FROM audit_seal")}
        cursor = conn.cursor(
            "SELECT seq, ts, server, tool, principal, transport, request_id, phase, outcome, error_class,"
            " latency_ms, result_bytes, body, prev_hash, hash FROM audit_log ORDER BY seq",
            prefetch=batch,
        )
        async for row in cursor:
            seq = row["seq"]
            if seq != expected:
                return fail(expected, f"record {expected} is missing" if seq > expected
                            else f"record {seq} is duplicated")
            if bytes(row["prev_hash"]) != prev:
                return fail(seq, "link to the previous record is broken (reordered?)")
            digest = chain_hash(prev, seq, row["body"])
            if digest != bytes(row["hash"]):
                return fail(seq, "record content was edited")
            try:
                mismatch = _columns_match(row, json.loads(row["body"]))
            except (ValueError, TypeError):
                mismatch = "body is not valid JSON"
            if mismatch:
                return fail(seq, mismatch)
            if seal_key is not None:
                mac = seals.pop(seq, None)
                if mac is not None:
                    if not hmac.compare_digest(mac, seal_mac(seal_key, seq, digest)):
                        return fail(seq, f"the seal at record {seq} does not match: records up to {seq} "
                                         "were rewritten, or the key is not the one that sealed them")
                    sealed_through, unsealed_since = seq, None
                elif unsealed_since is None:
                    unsealed_since = row["ts"]
            if checkpoint is not None and seq == checkpoint.seq and digest.hex() != checkpoint.hash:
                return fail(seq, f"record {seq} differs from the checkpoint taken at {checkpoint.ts}")
            prev, last_ts = digest, row["ts"]
            expected += 1
            count += 1
    if head is None:
        return fail(count + 1, "the audit_head row is missing (deleted?)")
    if head["seq"] != count:
        return fail(count + 1, f"records after {count} were deleted (head says {head['seq']})"
                    if head["seq"] > count else f"head says {head['seq']} but {count} records exist")
    if bytes(head["hash"]) != prev:
        return fail(count, "chain head does not match the last record")
    if checkpoint is not None and checkpoint.seq > count:
        return fail(count + 1, f"the log was truncated: the checkpoint taken at {checkpoint.ts} "
                               f"holds record {checkpoint.seq}, the log ends at {count}")
    if seal_key is not None:
        if seals:
            stray = min(seals)
            return fail(stray, f"a seal names record {stray}, which the log does not hold (truncated?)")
        if unsealed_since is not None and last_ts is not None:
            age = (now or datetime.now(UTC)) - unsealed_since
            if age > UNSEALED_GRACE:
                return fail(sealed_through + 1, f"records after {sealed_through} carry no seal although "
                                                f"they are {int(age.total_seconds())} s old (seals deleted?)")
    return VerifyResult(True, count, head_hash=prev.hex(), sealed_through=sealed_through or None, keyed=keyed)
