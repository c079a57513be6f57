"""The tool-call audit log: one durable, hash-chained, sealed record per call, written with group commit.

Rules it enforces (ops rely on them):
- a call's response leaves only after its record is committed (`append` returns after COMMIT);
- a state-changing tool's intent is recorded before it runs (the pipeline calls `append` twice);
- if the audit store cannot write, the call is refused rather than run unrecorded;
- once `append` has queued a record, the caller's cancellation or hang-up cannot stop it being written
  (the write runs in the writer's own task; callers wait on a shielded future);
- one record the database refuses never fails its batch-mates: the batch is retried record by
  record, and a record that still fails is replaced by one that says its content was unrecordable;
- no principal can hold more than `MAX_PENDING_PER_PRINCIPAL` queued records, so one flooding caller
  cannot make everyone else's calls fail with "overloaded".

Group commit: records from concurrent calls queue up while a batch is being written, and the next
batch takes them all in one round trip (`SELECT * FROM audit_append($1, $2, $3)`), which also carries
the seal of the head the previous batch produced (see `shared.audit.chain`). A writer that goes idle
seals its last head after `SEAL_DELAY_S`. The writer holds one dedicated connection so an exhausted
pool never blocks audit.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg

from shared.audit.chain import ARGUMENTS_PURPOSE, FORMAT_VERSION, SEAL_PURPOSE, arguments_digest, canonical, seal_mac
from shared.audit.encode import storable_text
from shared.errors import Unavailable
from shared.keys import KeyRing, load_keys

log = logging.getLogger(__name__)

MAX_BATCH = 512
MAX_PENDING = 10_000
MAX_PENDING_PER_PRINCIPAL = 1_000
SEAL_DELAY_S = 0.25
_Pending = tuple[dict[str, Any], str, "asyncio.Future[int]"]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _data_error(exc: BaseException) -> bool:
    """The database refused this content (as opposed to being unreachable or busy)."""
    return isinstance(exc, asyncpg.DataError | asyncpg.exceptions.UntranslatableCharacterError) or (
        isinstance(exc, asyncpg.PostgresError) and str(getattr(exc, "sqlstate", "")).startswith(("22", "23"))
    )


class AuditLog:
    """Durable, ordered, tamper-evident call records for one process."""

    def __init__(self, url: str, *, keys: KeyRing | None = None, command_timeout: float = 5.0) -> None:
        self.url = url
        self.command_timeout = command_timeout
        self._keys = keys
        self._seal_key = b""
        self._arguments_key = b""
        self._pending: list[_Pending] = []
        self._per_principal: Counter[str] = Counter()
        self._writer: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._unsealed: tuple[int, bytes] | None = None
        self._seal_timer: asyncio.TimerHandle | None = None
        self._open = False
        self.healthy = False
        self.writes = 0

    @property
    def keys(self) -> KeyRing:
        if self._keys is None:
            raise Unavailable("the audit log is not ready; the call was refused", retry_after=1.0)
        return self._keys

    async def start(self) -> None:
        if self._keys is None:
            self._keys = await asyncio.to_thread(load_keys)
        self._seal_key = self._keys.derive(SEAL_PURPOSE)
        self._arguments_key = self._keys.derive(ARGUMENTS_PURPOSE)
        self._conn = await asyncpg.connect(self.url, command_timeout=self.command_timeout)
        self._open = self.healthy = True

    async def close(self) -> None:
        self._open = False
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._seal_timer is not None:
            self._seal_timer.cancel()
            self._seal_timer = None
        if self._conn is not None:
            try:
                await self._write_idle_seal()
            finally:
                await self._conn.close()
                self._conn = None
        self.healthy = False

    def record(self, **fields: Any) -> dict[str, Any]:
        """A record with the fields every entry carries."""
        return {"v": FORMAT_VERSION, "ts": utc_now_iso(), **fields}

    def digest(self, arguments: dict[str, Any]) -> str:
        if not self._arguments_key:
            self._arguments_key = self.keys.derive(ARGUMENTS_PURPOSE)
        return arguments_digest(self._arguments_key, arguments)

    async def append(self, record: dict[str, Any]) -> int:
        """Commit a record (possibly with others queued alongside); returns its sequence number.

        The record is queued before the first await, so it is written even if the caller is cancelled.
        """
        if not self._open:
            raise Unavailable("the audit log is unavailable, so the call was refused", retry_after=1.0)
        if len(self._pending) >= MAX_PENDING:
            raise Unavailable("the audit log is overloaded, so the call was refused", retry_after=1.0)
        principal = str(record.get("principal", ""))
        if self._per_principal[principal] >= MAX_PENDING_PER_PRINCIPAL:
            raise Unavailable("too many of this caller's calls are waiting to be recorded; slow down",
                              retry_after=1.0)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        body = canonical(record)
        self._per_principal[principal] += 1
        self._pending.append((record, body, future))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(), name="audit-writer")
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_retrieve)  # the caller is gone; the outcome is still logged
            raise

    async def _drain(self) -> None:
        """Write batches until the queue is empty; every waiter is completed whatever happens."""
        batch: list[_Pending] = []
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._commit(batch)
                batch = []
        except BaseException as exc:  # noqa: BLE001 - no waiter may be left hanging, even on cancellation
            failure = Unavailable("the audit log could not record the call, so its result was withheld",
                                  retry_after=1.0)
            for _, _, future in [*batch, *self._pending]:
                self._settle(future, None, failure)
            self._pending = []
            self._per_principal.clear()
            if not isinstance(exc, Exception):
                raise

    def _settle(self, future: asyncio.Future[int], seq: int | None, failure: Exception | None) -> None:
        if future.done():
            return
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(seq)  # type: ignore[arg-type]

    def _release(self, batch: list[_Pending]) -> None:
        for record, _, _ in batch:
            principal = str(record.get("principal", ""))
            self._per_principal[principal] -= 1
            if self._per_principal[principal] <= 0:
                del self._per_principal[principal]

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            try:
                last_seq = await self._write([body for _, body, _ in batch])
            except Exception as exc:  # noqa: BLE001 - decide below whether the content was at fault
                if not _data_error(exc):
                    raise
                await self._commit_one_by_one(batch)
                return
        except Exception as exc:  # noqa: BLE001 - every waiter must learn the write failed
            self.healthy = False
            log.error("audit write failed (%s); refusing the affected calls", type(exc).__name__)
            failure = Unavailable("the audit log could not record the call, so its result was withheld",
                                  retry_after=1.0)
            for _, _, future in batch:
                self._settle(future, None, failure)
            return
        finally:
            self._release(batch)
        self.healthy = True
        first = last_seq - len(batch) + 1
        for offset, (_, _, future) in enumerate(batch):
            self._settle(future, first + offset, None)

    async def _commit_one_by_one(self, batch: list[_Pending]) -> None:
        """Isolate the record the database refused; its batch-mates are written as they were."""
        for record, body, future in batch:
            try:
                seq = await self._write([body])
            except Exception as exc:  # noqa: BLE001
                if not _data_error(exc):
                    raise
                log.error("audit record refused by the database (%s); recording it as unrecordable",
                          type(exc).__name__)
                seq = await self._write([canonical(unrecordable(record, type(exc).__name__))])
            self._settle(future, seq, None)
        self.healthy = True

    async def _write(self, bodies: list[str]) -> int:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.url, command_timeout=self.command_timeout)
        seal = self._unsealed
        self._unsealed = None
        row = await self._conn.fetchrow(
            "SELECT head_seq, head_hash FROM audit_append($1::text[], $2, $3)",
            bodies, seal[0] if seal else None, seal_mac(self._seal_key, *seal) if seal else None,
        )
        self.writes += 1
        head_seq, head_hash = row["head_seq"], bytes(row["head_hash"])
        self._unsealed = (head_seq, head_hash)
        self._schedule_idle_seal()
        return head_seq

    def _schedule_idle_seal(self) -> None:
        if self._seal_timer is None:
            loop = asyncio.get_running_loop()
            self._seal_timer = loop.call_later(SEAL_DELAY_S, self._idle_seal_due)

    def _idle_seal_due(self) -> None:
        self._seal_timer = None
        if self._unsealed is None:
            return
        if self._writer is not None and not self._writer.done():
            self._schedule_idle_seal()  # the next batch will carry it
            return
        self._writer = asyncio.get_running_loop().create_task(self._seal_then_drain(), name="audit-seal")

    async def _seal_then_drain(self) -> None:
        """The idle seal runs as the writer, so records that arrive meanwhile are drained by it."""
        await self._write_idle_seal()
        await self._drain()

    async def _write_idle_seal(self) -> None:
        seal, self._unsealed = self._unsealed, None
        if seal is None or self._conn is None or self._conn.is_closed():
            return
        try:
            await self._conn.execute("SELECT audit_seal_put($1, $2)", seal[0], seal_mac(self._seal_key, *seal))
        except Exception as exc:  # noqa: BLE001 - a later batch or checkpoint seals the same records
            log.warning("could not write an audit seal (%s)", type(exc).__name__)


def _retrieve(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()


def unrecordable(record: dict[str, Any], reason: str) -> dict[str, Any]:
    """The stand-in for a record the database refused: who, what and when, without the content.

    Only fields that cannot be refused are kept: identities as short text, a fresh timestamp if the
    original does not parse, measurements only when they are finite and in range.
    """
    kept: dict[str, Any] = {key: storable_text(str(record.get(key) or ""), 200) for key in (
        "server", "tool", "principal", "principal_source", "transport", "request_id", "phase", "outcome")}
    kept["v"] = FORMAT_VERSION
    kept["ts"] = record.get("ts") if _parses_as_time(record.get("ts")) else utc_now_iso()
    kept["error_class"] = storable_text(str(record["error_class"]), 64) if record.get("error_class") else None
    latency, size = record.get("latency_ms"), record.get("result_bytes")
    if isinstance(latency, int | float) and math.isfinite(latency) and abs(latency) < 1e12:
        kept["latency_ms"] = latency
    if isinstance(size, int) and 0 <= size < 2**31:
        kept["result_bytes"] = size
    kept["arguments"] = {"_unrecordable": f"the database refused the recorded arguments ({reason})"}
    return kept


def _parses_as_time(value: Any) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False
