"""The audit log: durable group commit, a gap-free hash chain, and tamper detection."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import asyncpg
import pytest

from shared.audit import AuditLog
from shared.audit_chain import verify


def sample(audit: AuditLog, i: int, **extra: object) -> dict[str, object]:
    return audit.record(server="t", tool="echo", principal=f"p{i % 3}", transport="memory",
                        request_id=f"r{i}", phase="result", outcome="ok", error_class=None,
                        arguments={"i": i}, arguments_hmac=audit.digest({"i": i}), **extra)


@pytest.fixture
async def filled(make_database):
    async with make_database() as url:
        audit = AuditLog(url)
        await audit.start()
        seqs = await asyncio.gather(*(audit.append(sample(audit, i)) for i in range(200)))
        await audit.close()
        yield url, seqs


async def tamper(url: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_rewrite")
    finally:
        await conn.close()


async def check(url: str):
    conn = await asyncpg.connect(url)
    try:
        return await verify(conn)
    finally:
        await conn.close()


async def test_concurrent_appends_get_gap_free_sequence_and_group_commit(filled):
    url, seqs = filled
    assert sorted(seqs) == list(range(1, 201))
    result = await check(url)
    assert result.ok and result.records == 200


async def test_group_commit_batches_concurrent_records(make_database):
    async with make_database() as url:
        audit = AuditLog(url)
        await audit.start()
        await asyncio.gather(*(audit.append(sample(audit, i)) for i in range(300)))
        writes = audit.writes
        await audit.close()
    assert writes < 300  # several records shared a commit


async def test_rows_cannot_be_rewritten_without_disabling_the_guard(filled):
    url, _ = filled
    conn = await asyncpg.connect(url)
    try:
        with pytest.raises(asyncpg.RaiseError):
            await conn.execute("UPDATE audit_log SET principal = 'x' WHERE seq = 5")
        with pytest.raises(asyncpg.RaiseError):
            await conn.execute("DELETE FROM audit_log WHERE seq = 5")
    finally:
        await conn.close()


async def test_edited_body_is_named(filled):
    url, _ = filled
    await tamper(url, "UPDATE audit_log SET body = replace(body, '\"i\":42', '\"i\":43') WHERE seq = 43")
    result = await check(url)
    assert not result.ok and result.first_bad_seq == 43 and "edited" in result.problem


async def test_edited_query_column_is_named(filled):
    url, _ = filled
    await tamper(url, "UPDATE audit_log SET principal = 'someone-else' WHERE seq = 77")
    result = await check(url)
    assert not result.ok and result.first_bad_seq == 77


async def test_deleted_record_is_named(filled):
    url, _ = filled
    await tamper(url, "DELETE FROM audit_log WHERE seq = 100")
    result = await check(url)
    assert not result.ok and result.first_bad_seq == 100 and "missing" in result.problem


async def test_deleted_tail_is_caught_by_the_head(filled):
    url, _ = filled
    await tamper(url, "DELETE FROM audit_log WHERE seq > 190")
    result = await check(url)
    assert not result.ok and result.first_bad_seq == 191


async def test_reordered_records_are_named(filled):
    url, _ = filled
    await tamper(url, """
        UPDATE audit_log a SET body = b.body, hash = b.hash, prev_hash = b.prev_hash
        FROM (SELECT seq, body, hash, prev_hash FROM audit_log WHERE seq IN (10, 11)) b
        WHERE a.seq IN (10, 11) AND a.seq <> b.seq""")
    result = await check(url)
    assert not result.ok and result.first_bad_seq == 10


async def test_cli_verify_exits_non_zero_on_tampering(filled):
    url, _ = filled
    env = {**os.environ, "DATABASE_URL": url}
    ok = subprocess.run([sys.executable, "-m", "shared.cli", "audit", "verify", "--json"],
                        env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    await tamper(url, "UPDATE audit_log SET body = body || ' ' WHERE seq = 3")
    bad = subprocess.run([sys.executable, "-m", "shared.cli", "audit", "verify"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "record 3" in bad.stdout


async def test_cli_reads_the_log(filled):
    url, _ = filled
    env = {**os.environ, "DATABASE_URL": url}
    for args in (["tail", "-n", "5"], ["search", "--principal", "p1", "--json"], ["stats"]):
        done = subprocess.run([sys.executable, "-m", "shared.cli", "audit", *args],
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip()
    rows = [json.loads(line) for line in subprocess.run(
        [sys.executable, "-m", "shared.cli", "audit", "search", "--principal", "p1", "--json", "-n", "500"],
        env=env, capture_output=True, text=True, timeout=60).stdout.splitlines()]
    assert rows and all(r["principal"] == "p1" for r in rows)


async def test_unavailable_audit_store_refuses(make_database):
    async with make_database() as url:
        audit = AuditLog(url)
        await audit.start()
        await audit.append(sample(audit, 1))
        conn = await asyncpg.connect(url)
        await conn.execute("REVOKE ALL ON audit_log FROM PUBLIC")
        await conn.execute("ALTER FUNCTION audit_append(text[]) RENAME TO audit_append_gone")
        await conn.close()
        with pytest.raises(Exception) as refused:
            await audit.append(sample(audit, 2))
        assert "withheld" in str(refused.value)
        await audit.close()
