"""The audit log: durable group commit, a gap-free hash chain, tamper detection, and the `audit` CLI's output."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from shared.audit.chain import GENESIS, canonical, chain_hash, verify
from shared.audit.log import AuditLog
from shared.errors import Unavailable
from tests.support.cli import run_cli, user_env
from tests.support.db import fetch_rows as fetch
from tests.support.db import open_connection


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
    async with open_connection(url) as conn:
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_rewrite")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_rewrite")


async def check(url: str):
    async with open_connection(url) as conn:
        return await verify(conn)


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


async def test_rows_cannot_be_rewritten_without_disabling_the_guard(filled, db_connection):
    url, _ = filled
    async with db_connection(url) as conn:
        with pytest.raises(asyncpg.RaiseError):
            await conn.execute("UPDATE audit_log SET principal = 'x' WHERE seq = 5")
        with pytest.raises(asyncpg.RaiseError):
            await conn.execute("DELETE FROM audit_log WHERE seq = 5")


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
    ok = subprocess.run([sys.executable, "-m", "mcp_suite.cli", "audit", "verify", "--json"],
                        env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    await tamper(url, "UPDATE audit_log SET body = body || ' ' WHERE seq = 3")
    bad = subprocess.run([sys.executable, "-m", "mcp_suite.cli", "audit", "verify"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "record 3" in bad.stdout



def audit_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_cli("audit", *args, env=user_env(DATABASE_URL=url), timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


TABLE_HEADER = ["seq", "ts", "server", "tool", "principal", "phase", "outcome", "error_class", "latency_ms"]
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def varied_record(audit: AuditLog, i: int, **overrides: object) -> dict[str, object]:
    """Record i of a known history: tools alpha (i < 20) and beta, every fifth call failed, latency
    i + 1 ms, one hour apart from BASE."""
    failed = i % 5 == 0
    record = audit.record(server="t", tool="alpha" if i < 20 else "beta", principal=f"p{i % 2}",
                          transport="memory", request_id=f"v{i}", phase="result",
                          outcome="error" if failed else "ok", error_class="internal" if failed else None,
                          arguments={"i": i}, arguments_hmac=audit.digest({"i": i}), latency_ms=float(i + 1),
                          result_bytes=10)
    record["ts"] = (BASE + timedelta(hours=i)).isoformat(timespec="microseconds")
    record.update(overrides)
    return record


@pytest.fixture
async def varied(make_database):
    """30 result records appended one by one (so seq order is i order), plus one intent record."""
    async with make_database() as url:
        audit = AuditLog(url)
        await audit.start()
        for i in range(30):
            await audit.append(varied_record(audit, i))
        await audit.append(varied_record(audit, 30, tool="beta", phase="intent", outcome="started",
                                         error_class=None, request_id="intent"))
        await audit.close()
        yield url


async def test_cli_tail_shows_the_newest_records_oldest_first(filled):
    url, _ = filled
    newest = list(reversed(await fetch(url, "SELECT * FROM audit_log ORDER BY seq DESC LIMIT 5")))
    lines = audit_cli(url, "tail", "-n", "5").stdout.strip().splitlines()
    assert lines[0].split() == TABLE_HEADER
    cells = [line.split() for line in lines[1:]]
    assert [int(c[0]) for c in cells] == [196, 197, 198, 199, 200]
    assert [(c[2], c[3], c[4], c[5], c[6], c[7]) for c in cells] == [
        ("t", "echo", r["principal"], "result", "ok", "-") for r in newest]
    rows = [json.loads(line) for line in audit_cli(url, "tail", "-n", "3", "--json").stdout.splitlines()]
    assert [r["seq"] for r in rows] == [198, 199, 200]
    for row, stored in zip(rows, newest[2:], strict=True):
        assert row["request_id"] == stored["request_id"] and row["principal"] == stored["principal"]
        assert row["arguments"] == {"i": int(stored["request_id"][1:])}  # request r{i} carried {"i": i}


async def test_cli_search_filters_by_principal(filled):
    url, _ = filled
    rows = [json.loads(line) for line in
            audit_cli(url, "search", "--principal", "p1", "--json", "-n", "500").stdout.splitlines()]
    stored = await fetch(url, "SELECT seq FROM audit_log WHERE principal = 'p1' ORDER BY seq DESC")
    assert [r["seq"] for r in rows] == [r["seq"] for r in stored] and len(rows) == 67  # i % 3 == 1, i < 200


async def test_cli_search_since_until_tool_outcome(varied):
    url = varied
    since = (BASE + timedelta(hours=10)).isoformat()
    alpha = [json.loads(line) for line in
             audit_cli(url, "search", "--tool", "alpha", "--since", since, "--json", "-n", "100").stdout.splitlines()]
    assert [r["request_id"] for r in alpha] == [f"v{i}" for i in range(19, 9, -1)]  # newest first
    assert all(r["tool"] == "alpha" and r["ts"] >= since for r in alpha)
    until = (BASE + timedelta(hours=3)).isoformat()
    early = [json.loads(line) for line in
             audit_cli(url, "search", "--until", until, "--json").stdout.splitlines()]
    assert [r["request_id"] for r in early] == ["v2", "v1", "v0"]
    failed = [json.loads(line) for line in audit_cli(url, "search", "--tool", "beta", "--outcome", "error",
                                                      "--json").stdout.splitlines()]
    assert [(r["request_id"], r["error_class"]) for r in failed] == [("v25", "internal"), ("v20", "internal")]
    table = audit_cli(url, "search", "--tool", "beta", "--since", since, "-n", "3").stdout.splitlines()
    assert table[0].split() == TABLE_HEADER and [line.split()[0] for line in table[1:]] == ["31", "30", "29"]
    nothing = audit_cli(url, "search", "--tool", "gamma").stdout.strip()
    assert nothing == "(no records)"


async def test_cli_stats_counts_and_percentiles(varied):
    url = varied
    stats = {r["tool"]: r for r in map(json.loads, audit_cli(url, "stats", "--json").stdout.splitlines())}
    # percentile_cont interpolates linearly: latencies 1..20 → p50 10.5, p99 1 + 0.99 * 19.
    assert stats["alpha"]["calls"] == 20 and stats["alpha"]["errors"] == 4
    assert stats["alpha"]["p50_ms"] == pytest.approx(10.5) and stats["alpha"]["p99_ms"] == pytest.approx(19.81)
    assert stats["beta"]["calls"] == 10 and stats["beta"]["errors"] == 2  # the intent record is not a call
    assert stats["beta"]["p50_ms"] == pytest.approx(25.5) and stats["beta"]["p99_ms"] == pytest.approx(29.91)
    assert datetime.fromisoformat(stats["beta"]["last_call"]) == BASE + timedelta(hours=29)
    lines = audit_cli(url, "stats").stdout.strip().splitlines()
    assert lines[0].split() == ["server", "tool", "calls", "errors", "p50_ms", "p99_ms", "last_call"]
    assert [line.split()[:6] for line in lines[1:]] == [["t", "alpha", "20", "4", "10.50", "19.81"],
                                                        ["t", "beta", "10", "2", "25.50", "29.91"]]
    since = (BASE + timedelta(hours=25)).isoformat()
    late = [json.loads(line) for line in audit_cli(url, "stats", "--since", since, "--json").stdout.splitlines()]
    assert [(r["tool"], r["calls"], r["errors"]) for r in late] == [("beta", 5, 1)]


def check_exported_chain(lines: list[dict], *, contiguous: bool) -> None:
    """Each exported line carries its chain hashes: recompute them offline, as an auditor would."""
    previous = bytes.fromhex(lines[0]["prev_hash"])
    for line in lines:
        prev = bytes.fromhex(line["prev_hash"])
        if contiguous:
            assert prev == previous, f"record {line['seq']} does not link to the one before"
        assert chain_hash(prev, line["seq"], canonical(line["record"])).hex() == line["hash"]
        previous = bytes.fromhex(line["hash"])


async def test_cli_export_writes_verifiable_json_lines(filled, tmp_path):
    url, _ = filled
    out = tmp_path / "audit.jsonl"
    done = audit_cli(url, "export", "-o", str(out))
    assert "exported 200 records" in done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, 201))
    assert bytes.fromhex(lines[0]["prev_hash"]) == GENESIS
    check_exported_chain(lines, contiguous=True)
    stored = await fetch(url, "SELECT seq, body, encode(hash, 'hex') AS hash FROM audit_log ORDER BY seq")
    assert [(line["record"], line["hash"]) for line in lines] == [(json.loads(r["body"]), r["hash"]) for r in stored]
    head = await fetch(url, "SELECT encode(hash, 'hex') AS hash FROM audit_head")
    assert lines[-1]["hash"] == head[0]["hash"]


async def test_cli_export_filters_and_writes_to_stdout(varied):
    url = varied
    since = (BASE + timedelta(hours=15)).isoformat()
    lines = [json.loads(line) for line in
             audit_cli(url, "export", "--tool", "alpha", "--since", since).stdout.splitlines()]
    assert [line["record"]["request_id"] for line in lines] == [f"v{i}" for i in range(15, 20)]
    check_exported_chain(lines, contiguous=True)  # consecutive seqs: still one unbroken stretch
    errors = [json.loads(line) for line in audit_cli(url, "export", "--outcome", "error").stdout.splitlines()]
    assert [line["seq"] for line in errors] == [1, 6, 11, 16, 21, 26]
    check_exported_chain(errors, contiguous=False)


async def test_cli_tail_follow_prints_new_records_as_they_commit(varied):
    url = varied
    follower = subprocess.Popen(
        [sys.executable, "-m", "mcp_suite.cli", "audit", "tail", "-n", "2", "--follow", "--json", "--tool", "alpha"],
        env={**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()

    def next_row() -> dict:  # the timeout only stops a hung follower from hanging the suite
        return json.loads(lines.get(timeout=60))

    try:
        assert [r["request_id"] for r in (next_row(), next_row())] == ["v18", "v19"]
        audit = AuditLog(url)
        await audit.start()
        try:
            await audit.append(varied_record(audit, 40, tool="beta", request_id="other-tool"))
            await audit.append(varied_record(audit, 41, tool="alpha", request_id="new-1"))
            await audit.append(varied_record(audit, 42, tool="alpha", request_id="new-2"))
        finally:
            await audit.close()
        fresh = [await asyncio.to_thread(next_row) for _ in range(2)]
    finally:
        follower.terminate()
        follower.wait(10)
    assert [(r["request_id"], r["tool"], r["seq"]) for r in fresh] == [("new-1", "alpha", 33), ("new-2", "alpha", 34)]
    assert lines.empty()  # the beta record was filtered out, not printed late


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{role}@{parts.netloc.rpartition('@')[2]}", parts.path, parts.query, ""))


async def test_unavailable_audit_store_refuses(make_database, db_connection):
    """A writer whose role loses the right to append refuses (nothing is half-written), then recovers.

    The writer connects as an ordinary role made here: a superuser ignores REVOKE, so revoking from
    the test's own (superuser) connection would prove nothing.
    """
    role = f"audit_writer_{os.getpid()}"
    async with make_database() as url, db_connection(url) as admin:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER")
        try:
            await admin.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
            await admin.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}")
            async with db_connection(as_role(url, role)) as probe:
                assert await probe.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
            audit = AuditLog(as_role(url, role))
            await audit.start()
            first = await audit.append(sample(audit, 1))
            await admin.execute(f"REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC, {role}")
            with pytest.raises(Unavailable, match="withheld"):
                await audit.append(sample(audit, 2))
            assert audit.healthy is False
            assert await admin.fetchval("SELECT max(seq) FROM audit_log") == first
            await admin.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}")
            assert await audit.append(sample(audit, 3)) == first + 1
            assert audit.healthy is True
            await audit.close()
            assert (await check(url)).ok
        finally:
            await admin.execute(f"DROP OWNED BY {role}")
            await admin.execute(f"DROP ROLE {role}")
