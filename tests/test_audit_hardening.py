"""Attacks on the audit promise ("no answered call without a durable record; any edit detected").

Each test performs one attack from the hardening review against the real embedded PostgreSQL and
real MCP sessions: poisoned arguments, a failing audit store, cancellation and hang-ups while the
record is written, a refusal flood, and rewrites of the chain by the app role and by a superuser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from servers.profiles.tools import app as profiles
from shared.audit import log as audit_module
from shared.audit.chain import SEAL_PURPOSE, chain_hash, make_checkpoint, verify
from shared.audit.encode import storable
from shared.audit.log import AuditLog
from shared.db.migrate import APP_ROLE, app_database_url
from shared.errors import Unavailable
from shared.identity import Principal
from shared.keys import KeyRing, load_keys
from tests.support.cli import run_cli, user_env
from tests.support.db import fetch_rows as rows
from tests.support.db import open_connection

USER = frozenset({"profiles:read", "profiles:write", "profiles:admin"})
KEYS = KeyRing(b"k" * 64, "test")
SEAL_KEY = KEYS.derive(SEAL_PURPOSE)


def who(name: str) -> Principal:
    return Principal(f"{name}-{uuid.uuid4().hex[:8]}", USER, "test")


def email() -> str:
    return f"p{uuid.uuid4().hex[:12]}@example.com"


async def check(url: str, **options: object):
    async with open_connection(url) as conn:
        return await verify(conn, **options)  # type: ignore[arg-type]


def sample(audit: AuditLog, i: int, **extra: object) -> dict[str, object]:
    fields: dict[str, object] = dict(server="t", tool="echo", principal=f"p{i % 3}", transport="memory",
                                     request_id=f"r{i}", phase="result", outcome="ok", error_class=None,
                                     arguments={"i": i}, arguments_hmac="")
    fields.update(extra)
    return audit.record(**fields)


# --- 1. poisoned values --------------------------------------------------------------------------------

POISON = {
    "nul": {"a": "\u0000"},
    "surrogate": "\ud800 lone",
    "nan": math.nan,
    "inf": [math.inf, -math.inf],
    "huge": 10**5000,
    "deep": json.loads("[" * 400 + "]" * 400),
    "keys": {1: "x", (2, 3): "y"},
    "bytes": b"\x00\xff",
}


def test_storable_form_is_always_valid_json_for_jsonb():
    encoded = storable(POISON)
    text = json.dumps(encoded, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogates left
    assert "\x00" not in text
    assert encoded["nan"] == "NaN" and encoded["inf"] == ["Infinity", "-Infinity"]
    assert encoded["huge"].startswith("[integer of about")
    assert set(encoded["keys"]) == {"1", "(2, 3)"}


async def test_poisoned_arguments_are_recorded_and_batch_mates_unharmed(make_database):
    async with make_database() as url:
        audit = AuditLog(app_database_url(url), keys=KEYS)
        await audit.start()
        try:
            poisoned = [sample(audit, i, arguments=storable({"zz": value})) for i, value in enumerate(POISON.values())]
            # A record the database refuses (a timestamp it cannot parse) among good ones, in one batch:
            refused = sample(audit, 99, ts="not a time", request_id="refused")
            good = [sample(audit, 100 + i) for i in range(5)]
            seqs = await asyncio.gather(*(audit.append(r) for r in [*poisoned, refused, *good]))
        finally:
            await audit.close()
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
        stored = await rows(url, "SELECT request_id, body FROM audit_log ORDER BY seq")
        bodies = {row["request_id"]: json.loads(row["body"]) for row in stored}
        assert bodies["refused"]["arguments"]["_unrecordable"].startswith("the database refused")
        assert all(f"r{100 + i}" in bodies for i in range(5))
        assert (await check(url, seal_key=SEAL_KEY)).ok


async def test_poisoned_extra_argument_through_a_real_tool_leaves_its_record(connect, make_database):
    async with make_database() as url, connect(profiles, principal=who("poison"), url=url) as client:
        created = await client.call_tool("create_profile", {"display_name": "P", "email": email()})
        assert not created.is_error, created.content[0].text
        profile = created.structured_content
        result = await client.call_tool("update_profile", {
            "profile_id": profile["id"], "expected_version": profile["version"], "display_name": "Q",
            "zz": {"a": "\u0000"}, "n": "\ud800",
        })
        assert not result.is_error, result.content[0].text
        records = await rows(url, "SELECT phase, outcome, body FROM audit_log "
                                  "WHERE tool = 'update_profile' ORDER BY seq")
        assert [(r["phase"], r["outcome"]) for r in records] == [("intent", "started"), ("result", "ok")]
        assert json.loads(records[1]["body"])["arguments"]["zz"] == {"a": "\u2400"}
        assert profiles.audit.healthy


# --- 2. no effect without a record ---------------------------------------------------------------------

async def profile_state(url: str) -> list[tuple]:
    return [tuple(r) for r in await rows(url, "SELECT id, version, display_name, deleted_at FROM profiles ORDER BY id")]


async def test_with_the_audit_store_failing_no_state_changing_tool_changes_anything(connect, make_database,
                                                                                    db_connection):
    async with make_database() as url, connect(profiles, principal=who("nofx"), url=url) as client:
        live = (await client.call_tool("create_profile", {"display_name": "A", "email": email()})).structured_content
        before = await profile_state(url)
        async with db_connection(url) as admin:
            try:
                # Fault injection: the app role loses the right to append (as if the audit store failed).
                await admin.execute(f"REVOKE EXECUTE ON FUNCTION audit_append(text[], bigint, bytea) FROM {APP_ROLE}")
                calls = [
                    ("create_profile", {"display_name": "B", "email": email()}),
                    ("update_profile", {"profile_id": live["id"], "expected_version": live["version"],
                                        "display_name": "changed"}),
                    ("delete_profile", {"profile_id": live["id"], "expected_version": live["version"]}),
                    ("restore_profile", {"profile_id": live["id"]}),
                ]
                for name, arguments in calls:
                    result = await client.call_tool(name, arguments)
                    assert result.is_error and result.content[0].text.startswith("unavailable: "), (name, result)
                assert await profile_state(url) == before
            finally:
                await admin.execute(f"GRANT EXECUTE ON FUNCTION audit_append(text[], bigint, bytea) TO {APP_ROLE}")


async def test_with_the_audit_store_failing_search_writes_change_nothing(connect, make_database, db_connection):
    from servers.search.tools import app as search

    writer = Principal(f"w-{uuid.uuid4().hex[:8]}", frozenset({"search:read", "search:write"}), "test")
    async with make_database() as url, connect(search, principal=writer, url=url) as client:
        tables = "SELECT (SELECT count(*) FROM search_documents), (SELECT count(*) FROM search_chunks)"
        before = tuple((await rows(url, tables))[0])
        async with db_connection(url) as admin:
            try:
                await admin.execute(f"REVOKE EXECUTE ON FUNCTION audit_append(text[], bigint, bytea) FROM {APP_ROLE}")
                for name, arguments in [("ingest", {"content": "a new document", "document_id": "d1"}),
                                        ("delete_document", {"document_id": "d1"})]:
                    result = await client.call_tool(name, arguments)
                    assert result.is_error and result.content[0].text.startswith("unavailable: "), (name, result)
                assert tuple((await rows(url, tables))[0]) == before
            finally:
                await admin.execute(f"GRANT EXECUTE ON FUNCTION audit_append(text[], bigint, bytea) TO {APP_ROLE}")


def test_every_shipped_tool_that_changes_state_is_declared_so():
    """The intent-first rule keys on `read_only`: no shipped tool that writes may claim to be read-only."""
    from servers.search.tools import app as search

    changing = {p.name for s in (profiles, search) for p in s.policies.values() if not p.read_only}
    assert changing == {"create_profile", "update_profile", "delete_profile", "restore_profile",
                        "ingest", "delete_document"}


# --- 3. cancellation and hang-ups ----------------------------------------------------------------------

@contextlib.asynccontextmanager
async def another_writer_holding_the_head(url: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Another replica's writer holds the chain head's row lock until `release()` (or the block ends)."""
    async with open_connection(url) as holder:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT * FROM audit_head FOR UPDATE")
        held = True

        async def release() -> None:
            nonlocal held
            if held:
                held = False
                await tx.rollback()

        try:
            yield release
        finally:
            await release()


async def test_waiters_behind_a_cancelled_caller_complete_and_its_record_is_written(make_database):
    async with make_database() as url:
        audit = AuditLog(app_database_url(url), keys=KEYS)
        await audit.start()
        try:
            async with another_writer_holding_the_head(url) as release_head:  # while these callers queue up
                callers = [asyncio.create_task(audit.append(sample(audit, i))) for i in range(6)]
                await _until_async(lambda: _waiting_on_locks(url), 1)
                callers[0].cancel()  # the first caller (the old design's leader) hangs up
                callers[3].cancel()
                await release_head()
                done = await asyncio.gather(*callers, return_exceptions=True)
        finally:
            await audit.close()
        assert isinstance(done[0], asyncio.CancelledError) and isinstance(done[3], asyncio.CancelledError)
        assert sorted(s for s in done if isinstance(s, int)) == sorted(done[i] for i in (1, 2, 4, 5))
        ids = {r["request_id"] for r in await rows(url, "SELECT request_id FROM audit_log")}
        assert ids == {f"r{i}" for i in range(6)}  # the cancelled callers' records were written too


async def test_hang_up_while_the_head_is_locked_leaves_no_unrecorded_change(connect, make_database):
    async with make_database() as url, connect(profiles, principal=who("hangup"), url=url) as client:
        profile = (await client.call_tool("create_profile", {"display_name": "H", "email": email()})).structured_content
        async with another_writer_holding_the_head(url) as release_head:
            call = asyncio.create_task(client.call_tool("update_profile", {
                "profile_id": profile["id"], "expected_version": profile["version"], "display_name": "after"}))
            await _until_async(lambda: _waiting_on_locks(url), 1)  # the intent's write is blocked on the head
            call.cancel()  # the client hangs up while the intent's write waits for the head
            await _until(lambda: any(r.get("error_class") == "cancelled" for r, _, _ in profiles.audit._pending))
            await release_head()
        outcome = await asyncio.gather(call, return_exceptions=True)
        await _until_async(lambda: _count(url, "update_profile"), 2)
        records = await rows(url, "SELECT phase, outcome, error_class FROM audit_log "
                                  "WHERE tool = 'update_profile' ORDER BY seq")
        state = await rows(url, "SELECT display_name, version FROM profiles WHERE id = $1", uuid.UUID(profile["id"]))
        assert isinstance(outcome[0], asyncio.CancelledError)
        assert [tuple(r) for r in records] == [("intent", "started", None), ("result", "error", "cancelled")]
        assert state[0]["display_name"] == "H"  # the body never ran: no change without a record
        assert (await check(url, seal_key=profiles.audit._seal_key)).ok


async def _waiting_on_locks(url: str) -> int:
    return len(await rows(url, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"))


async def _count(url: str, tool: str) -> int:
    return len(await rows(url, "SELECT 1 FROM audit_log WHERE tool = $1", tool))


async def _until(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)


async def _until_async(probe, expected: int, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while await probe() != expected:
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.02)


# --- 4. refusals cannot flood the log ------------------------------------------------------------------

async def test_a_principal_without_scopes_cannot_flood_the_audit_log(connect, make_database):
    nobody = Principal(f"nobody-{uuid.uuid4().hex[:8]}", frozenset(), "test")
    async with make_database() as url, connect(profiles, principal=nobody, url=url) as client:
        texts = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(60):
            name = "get_profile" if i % 2 else f"no_such_tool_{i}"
            texts.append((await client.call_tool(name, {})).content[0].text)
        elapsed = loop.time() - started
        await profiles.refusals.drain()
        recorded = await rows(url, "SELECT phase, body FROM audit_log WHERE principal = $1", nobody.id)
        singles = [r for r in recorded if r["phase"] == "result"]
        summaries = [json.loads(r["body"])["arguments"]["suppressed_refusals"] for r in recorded
                     if r["phase"] == "summary"]
        rate = profiles.refusals.rate
        budget = rate.calls + rate.calls / rate.per * elapsed + 1  # the burst plus what drained meanwhile
        assert len(singles) <= budget
        assert sum(t.startswith("rate_limited: ") for t in texts) == 60 - len(singles)
        assert len(singles) + sum(summaries) == 60  # every refusal is accounted for


async def test_one_principal_cannot_exhaust_the_queue_for_others(make_database, monkeypatch):
    monkeypatch.setattr(audit_module, "MAX_PENDING_PER_PRINCIPAL", 20)
    async with make_database() as url:
        audit = AuditLog(app_database_url(url), keys=KEYS)
        await audit.start()
        try:
            async with another_writer_holding_the_head(url) as release_head:
                flood = [asyncio.create_task(audit.append(sample(audit, i, principal="flooder"))) for i in range(20)]
                await asyncio.sleep(0)
                with pytest.raises(Unavailable, match="too many of this caller"):
                    await audit.append(sample(audit, 21, principal="flooder"))
                other = asyncio.create_task(audit.append(sample(audit, 22, principal="someone-else")))
                await release_head()
                assert isinstance(await other, int)
                assert all(isinstance(s, int) for s in await asyncio.gather(*flood))
        finally:
            await audit.close()


# --- 5. the chain against the database's own users -----------------------------------------------------

@pytest.fixture
async def sealed_log(make_database):
    async with make_database() as url:
        audit = AuditLog(app_database_url(url), keys=KEYS)
        await audit.start()
        for start in range(0, 60, 10):  # several batches, so several seals
            await asyncio.gather(*(audit.append(sample(audit, i, latency_ms=1.5, result_bytes=10))
                                   for i in range(start, start + 10)))
        await audit.close()
        yield url


APP_ROLE_ATTACKS = [
    "UPDATE audit_log SET principal = 'x' WHERE seq = 3",
    "DELETE FROM audit_log WHERE seq = 60",
    "TRUNCATE audit_log",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite",
    "UPDATE audit_head SET seq = 1",
    "DELETE FROM audit_seal",
    "INSERT INTO audit_seal (seq, mac) VALUES (1000, '\\x00')",
    "INSERT INTO audit_log SELECT * FROM audit_log WHERE seq = 1",
    "DROP FUNCTION audit_append(text[], bigint, bytea)",
    "CREATE OR REPLACE FUNCTION audit_log_immutable() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$",
]


@pytest.mark.parametrize("attack", APP_ROLE_ATTACKS)
async def test_the_app_role_cannot_rewrite_the_audit_log(sealed_log, attack, db_connection):
    async with db_connection(app_database_url(sealed_log)) as conn:
        assert await conn.fetchval("SELECT current_user") == APP_ROLE
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(attack)
    assert (await check(sealed_log, seal_key=SEAL_KEY)).ok


async def rewrite_as_superuser(url: str, seq: int, new_principal: str) -> None:
    """What an attacker with the database's superuser but without the key can do: edit a record and
    recompute every hash after it, and the head, so the unkeyed chain checks out again."""
    async with open_connection(url) as conn:
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite")
        await conn.execute("ALTER TABLE audit_head DISABLE TRIGGER audit_head_only_forward")
        records = await conn.fetch("SELECT seq, body, prev_hash FROM audit_log WHERE seq >= $1 ORDER BY seq", seq)
        prev = bytes(records[0]["prev_hash"])
        for row in records:
            body = row["body"]
            if row["seq"] == seq:
                data = json.loads(body)
                data["principal"] = new_principal
                body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            digest = chain_hash(prev, row["seq"], body)
            await conn.execute("UPDATE audit_log SET body = $2, principal = $3, prev_hash = $4, hash = $5 "
                               "WHERE seq = $1", row["seq"], body, json.loads(body)["principal"], prev, digest)
            prev = digest
        await conn.execute("UPDATE audit_head SET hash = $1", prev)


async def test_a_superuser_rewrite_passes_the_unkeyed_chain_but_not_the_seals(sealed_log):
    await rewrite_as_superuser(sealed_log, 5, "innocent")
    assert (await check(sealed_log)).ok  # the unkeyed chain alone is fooled, as documented
    result = await check(sealed_log, seal_key=SEAL_KEY)
    assert not result.ok and "seal" in result.problem and result.first_bad_seq >= 5


async def test_deleting_the_seals_too_is_reported_once_the_grace_period_has_passed(sealed_log, db_connection):
    await rewrite_as_superuser(sealed_log, 5, "innocent")
    async with db_connection(sealed_log) as conn:
        await conn.execute("ALTER TABLE audit_seal DISABLE TRIGGER audit_seal_no_rewrite")
        await conn.execute("DELETE FROM audit_seal")
    later = datetime.now(UTC) + timedelta(minutes=5)  # a fake clock: verify run five minutes later
    result = await check(sealed_log, seal_key=SEAL_KEY, now=later)
    assert not result.ok and "no seal" in result.problem


async def test_truncating_the_tail_is_caught_against_a_checkpoint(sealed_log, db_connection):
    async with db_connection(sealed_log) as conn:
        checkpoint = await make_checkpoint(conn, SEAL_KEY)
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite")
        await conn.execute("ALTER TABLE audit_seal DISABLE TRIGGER audit_seal_no_rewrite")
        await conn.execute("ALTER TABLE audit_head DISABLE TRIGGER audit_head_only_forward")
        await conn.execute("DELETE FROM audit_log WHERE seq > 50")
        await conn.execute("DELETE FROM audit_seal WHERE seq > 50")
        last = await conn.fetchval("SELECT hash FROM audit_log WHERE seq = 50")
        await conn.execute("UPDATE audit_head SET seq = 50, hash = $1", last)
    assert checkpoint.seq == 60
    assert (await check(sealed_log, seal_key=SEAL_KEY)).ok  # truncation to a seal: only a checkpoint sees it
    result = await check(sealed_log, seal_key=SEAL_KEY, checkpoint=checkpoint)
    assert not result.ok and "truncated" in result.problem


@pytest.mark.parametrize(("column", "value"), [("latency_ms", 99.0), ("result_bytes", 1)])
async def test_verify_compares_every_stored_column(sealed_log, column, value, db_connection):
    async with db_connection(sealed_log) as conn:
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite")
        await conn.execute(f"UPDATE audit_log SET {column} = $1 WHERE seq = 7", value)
    result = await check(sealed_log, seal_key=SEAL_KEY)
    assert not result.ok and result.first_bad_seq == 7 and column in result.problem


async def test_a_missing_head_row_is_reported_not_a_crash(sealed_log, db_connection):
    async with db_connection(sealed_log) as conn:
        await conn.execute("ALTER TABLE audit_head DISABLE TRIGGER audit_head_only_forward")
        await conn.execute("DELETE FROM audit_head")
    result = await check(sealed_log, seal_key=SEAL_KEY)
    assert not result.ok and "audit_head row is missing" in result.problem


async def test_an_inserted_record_is_detected(sealed_log, db_connection):
    async with db_connection(sealed_log) as conn:
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite")
        await conn.execute("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 30")
        await conn.execute("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000")  # room at 30
        await conn.execute("INSERT INTO audit_log SELECT 30, ts, server, tool, principal, transport, request_id,"
                           " phase, outcome, error_class, latency_ms, result_bytes, body, prev_hash, hash"
                           " FROM audit_log WHERE seq = 10")
    result = await check(sealed_log, seal_key=SEAL_KEY)
    assert not result.ok and result.first_bad_seq == 30


# --- 6. the key lives outside the database -------------------------------------------------------------

def test_the_key_file_is_created_private_and_reused(tmp_path, monkeypatch):
    from shared.config import Settings

    monkeypatch.delenv("MCP_SUITE_AUDIT_KEY", raising=False)
    monkeypatch.delenv("MCP_SUITE_AUDIT_KEY_FILE", raising=False)
    settings = Settings(home=tmp_path)
    first = load_keys(settings)
    assert stat.S_IMODE(os.stat(tmp_path / "audit.key").st_mode) == 0o600
    assert load_keys(settings).master == first.master
    assert first.derive("a") != first.derive("b")


async def test_no_key_is_stored_in_the_database(sealed_log):
    tables = {r["relname"] for r in await rows(sealed_log, "SELECT relname FROM pg_class WHERE relkind = 'r'")}
    assert "audit_secret" not in tables
    dumped = " ".join(str(tuple(r)) for r in await rows(sealed_log, "SELECT * FROM audit_seal"))
    assert KEYS.master.hex() not in dumped and SEAL_KEY.hex() not in dumped


# --- 7. all of it at once ------------------------------------------------------------------------------

async def test_mixed_workload_with_poison_cancellations_and_hang_ups_keeps_every_record(connect, make_database,
                                                                                         db_connection):
    """Writers race with poisoned arguments, cancelled calls and a lock held by "another replica";
    afterwards every committed change has its intent and outcome, and the keyed chain verifies."""
    principal = who("mixed")
    async with make_database() as url, connect(profiles, principal=principal, url=url) as client:
        profile = (await client.call_tool("create_profile", {"display_name": "M", "email": email()})).structured_content

        async def writer(i: int) -> None:
            for attempt in range(6):
                current = (await client.call_tool("get_profile", {"profile_id": profile["id"]})).structured_content
                arguments = {"profile_id": profile["id"], "expected_version": current["version"],
                             "display_name": f"w{i}-{attempt}", "poison": [math.nan, "\u0000", "\ud800"][attempt % 3]}
                task = asyncio.create_task(client.call_tool("update_profile", arguments))
                if (i + attempt) % 4 == 0:
                    await asyncio.sleep(0)
                    task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        async with db_connection(url) as holder:
            async def replica_holding_the_head() -> None:
                for _ in range(3):
                    async with holder.transaction():
                        await holder.execute("SELECT * FROM audit_head FOR UPDATE")
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.05)

            await asyncio.gather(replica_holding_the_head(), *(writer(i) for i in range(4)))
        await _until(lambda: not profiles.audit._pending and (profiles.audit._writer is None
                                                               or profiles.audit._writer.done()))
        version = (await rows(url, "SELECT version FROM profiles WHERE id = $1", uuid.UUID(profile["id"])))[0][0]
        records = await rows(url, "SELECT request_id, phase, outcome FROM audit_log "
                                  "WHERE tool = 'update_profile' ORDER BY seq")
        intents = {r["request_id"] for r in records if r["phase"] == "intent"}
        results = {r["request_id"]: r["outcome"] for r in records if r["phase"] == "result"}
        assert sum(outcome == "ok" for outcome in results.values()) == version - 1  # each change, one ok record
        assert {rid for rid, outcome in results.items() if outcome == "ok"} <= intents  # no change without intent
        assert intents <= set(results)  # every intent has its outcome (ok, error or cancelled)
        assert (await check(url, seal_key=profiles.audit._seal_key)).ok


# --- 8. the operator's commands ------------------------------------------------------------------------

def audit_cli(url: str, home, *args: str, key: str | None) -> subprocess.CompletedProcess[str]:
    return run_cli("audit", *args, env=user_env(home, DATABASE_URL=url, MCP_SUITE_AUDIT_KEY=key))


async def test_checkpoint_and_verify_commands(make_database, tmp_path, db_connection):
    key = "c" * 64
    async with make_database() as url:
        audit = AuditLog(app_database_url(url), keys=KeyRing(key.encode(), "env"))
        await audit.start()
        await asyncio.gather(*(audit.append(sample(audit, i)) for i in range(20)))
        await audit.close()
        ok = audit_cli(url, tmp_path, "verify", key=key)
        assert ok.returncode == 0 and "audit chain OK (keyed): 20 records, sealed through 20" in ok.stdout, ok
        unkeyed = audit_cli(url, tmp_path / "elsewhere", "verify", key=None)
        assert unkeyed.returncode == 0 and "UNKEYED" in unkeyed.stdout and "no audit key" in unkeyed.stderr
        saved = tmp_path / "checkpoint.json"
        made = audit_cli(url, tmp_path, "checkpoint", "-o", str(saved), key=key)
        assert made.returncode == 0 and json.loads(saved.read_text())["seq"] == 20, made
        wrong = audit_cli(url, tmp_path, "verify", "--checkpoint", str(saved), key="d" * 64)
        assert wrong.returncode == 1 and "not valid for this key" in wrong.stdout
        async with db_connection(url) as conn:
            for sql in ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite",
                        "ALTER TABLE audit_seal DISABLE TRIGGER audit_seal_no_rewrite",
                        "ALTER TABLE audit_head DISABLE TRIGGER audit_head_only_forward",
                        "DELETE FROM audit_log WHERE seq > 10", "DELETE FROM audit_seal WHERE seq > 10"):
                await conn.execute(sql)
            await conn.execute("UPDATE audit_head SET seq = 10, hash = (SELECT hash FROM audit_log WHERE seq = 10)")
        caught = audit_cli(url, tmp_path, "verify", "--checkpoint", str(saved), key=key)
        assert caught.returncode == 1 and "truncated" in caught.stdout, caught
        missing = audit_cli(url, tmp_path, "verify", "--checkpoint", str(tmp_path / "nope.json"), key=key)
        assert missing.returncode == 2 and "Traceback" not in missing.stderr
