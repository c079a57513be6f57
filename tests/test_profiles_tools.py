"""The profiles server over real in-memory MCP sessions and the real database."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg
import pytest

from servers.profiles.demo import demo_rows, load_demo
from servers.profiles.tools import app
from shared.identity import Principal

WRITE = frozenset({"profiles:read", "profiles:write"})
ADMIN = WRITE | {"profiles:admin"}


def who(name: str, scopes: frozenset[str] = WRITE) -> Principal:
    return Principal(f"{name}-{uuid.uuid4().hex[:8]}", scopes, "test")


async def table_fingerprint(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT * FROM profiles ORDER BY id")
    finally:
        await conn.close()
    return hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()


async def create(client, name: str = "Ada Lovelace", email: str | None = None, **extra):
    email = email or f"{uuid.uuid4().hex[:10]}@example.com"
    result = await client.call_tool("create_profile", {"display_name": name, "email": email, **extra})
    assert result.is_error is False, result.content
    return result.structured_content


def error_text(result) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


async def test_create_read_update_delete_restore(connect):
    alice, admin = who("alice"), who("admin", ADMIN)
    async with connect(app, principal=alice) as client:
        created = await create(client, preferences={"theme": "dark", "page_size": 50})
        assert created["version"] == 1 and created["preferences"]["theme"] == "dark"
        mine = (await client.call_tool("get_profile", {})).structured_content
        assert mine["id"] == created["id"]
        updated = await client.call_tool("update_profile", {"profile_id": created["id"], "expected_version": 1,
                                                            "bio": "Analyst", "locale": "en-GB"})
        assert updated.structured_content["version"] == 2 and updated.structured_content["bio"] == "Analyst"
        deleted = await client.call_tool("delete_profile", {"profile_id": created["id"], "expected_version": 2})
        assert deleted.structured_content["deleted"] is True
        assert "not_found" in error_text(await client.call_tool("get_profile", {}))
        assert "permission_denied" in error_text(await client.call_tool("restore_profile",
                                                                        {"profile_id": created["id"]}))
    async with connect(app, principal=admin) as client:
        restored = await client.call_tool("restore_profile", {"profile_id": created["id"]})
        assert restored.structured_content["deleted"] is False and restored.structured_content["version"] == 4


async def test_owner_only_access_without_revealing_existence(connect):
    alice, bob, admin = who("alice"), who("bob"), who("admin", ADMIN)
    async with connect(app, principal=alice) as client:
        profile = await create(client)
    async with connect(app, principal=bob) as client:
        other = await client.call_tool("get_profile", {"profile_id": profile["id"]})
        missing = await client.call_tool("get_profile", {"profile_id": str(uuid.uuid4())})
        assert error_text(other) == error_text(missing)  # same answer: existence not revealed
        edit = await client.call_tool("update_profile", {"profile_id": profile["id"], "expected_version": 1,
                                                         "bio": "hijacked"})
        assert "not_found" in error_text(edit)
        gone = await client.call_tool("delete_profile", {"profile_id": profile["id"], "expected_version": 1})
        assert "not_found" in error_text(gone)
        spoof = await client.call_tool("create_profile", {"display_name": "X", "email": "x@example.com",
                                                          "owner": alice.id})
        assert "permission_denied" in error_text(spoof)
        search = await client.call_tool("search_profiles", {"query": profile["email"]})
        assert search.structured_content["profiles"] == []
    async with connect(app, principal=admin) as client:
        seen = await client.call_tool("get_profile", {"profile_id": profile["id"]})
        assert seen.structured_content["owner"] == alice.id
        edited = await client.call_tool("update_profile", {"profile_id": profile["id"], "expected_version": 1,
                                                           "bio": "moderated"})
        assert edited.structured_content["version"] == 2


async def test_stale_version_is_a_conflict_and_changes_nothing(connect, database_url):
    alice = who("alice")
    async with connect(app, principal=alice) as client:
        profile = await create(client)
        await client.call_tool("update_profile", {"profile_id": profile["id"], "expected_version": 1, "bio": "v2"})
        before = await table_fingerprint(database_url)
        stale = await client.call_tool("update_profile", {"profile_id": profile["id"], "expected_version": 1,
                                                          "bio": "lost update"})
        assert "conflict" in error_text(stale) and "version 2" in error_text(stale)
        stale_delete = await client.call_tool("delete_profile", {"profile_id": profile["id"], "expected_version": 1})
        assert "conflict" in error_text(stale_delete)
        assert await table_fingerprint(database_url) == before


async def test_duplicate_profile_and_email_conflicts(connect):
    alice, bob = who("alice"), who("bob")
    async with connect(app, principal=alice) as client:
        profile = await create(client)
        again = await client.call_tool("create_profile", {"display_name": "Again", "email": "again@example.com"})
        assert "conflict" in error_text(again)
    async with connect(app, principal=bob) as client:
        taken = await client.call_tool("create_profile", {"display_name": "Bob",
                                                          "email": profile["email"].upper()})
        assert "conflict" in error_text(taken) and "email" in error_text(taken)


async def test_admin_search_pages_without_duplicates(connect, database_url):
    admin = who("admin", ADMIN)
    marker = uuid.uuid4().hex[:8]
    conn = await asyncpg.connect(database_url)
    try:
        for i in range(7):
            await conn.execute("INSERT INTO profiles (owner, display_name, email) VALUES ($1, $2, $3)",
                               f"page-{marker}-{i}", f"Pager {marker} {i}", f"pager{i}.{marker}@example.com")
    finally:
        await conn.close()
    seen: list[str] = []
    async with connect(app, principal=admin) as client:
        cursor = None
        while True:
            args = {"query": marker, "limit": 3} | ({"cursor": cursor} if cursor else {})
            page = (await client.call_tool("search_profiles", args)).structured_content
            seen += [p["owner"] for p in page["profiles"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        literal = await client.call_tool("search_profiles", {"query": "%"})
        assert literal.is_error is False
        assert all("%" in p["display_name"] + p["email"] for p in literal.structured_content["profiles"])
    assert sorted(seen) == sorted(f"page-{marker}-{i}" for i in range(7)) and len(set(seen)) == 7


MB = "x" * 1_000_000
INJECTION = "'; DROP TABLE profiles; --"
BAD_CALLS = [
    ("create_profile", {"display_name": 42, "email": "a@example.com"}),
    ("create_profile", {"email": "a@example.com"}),
    ("create_profile", {"display_name": MB, "email": "a@example.com"}),
    ("create_profile", {"display_name": "A\x00B", "email": "a@example.com"}),
    ("create_profile", {"display_name": "A", "email": INJECTION}),
    ("create_profile", {"display_name": "A", "email": "a@example.com", "timezone": "Mars/Base"}),
    ("create_profile", {"display_name": "A", "email": "a@example.com", "preferences": {"evil": True}}),
    ("create_profile", {"display_name": "A", "email": "a@example.com", "preferences": {"page_size": 5000}}),
    ("create_profile", {"display_name": "A", "email": "a@example.com", "locale": "en_US; DROP"}),
    ("get_profile", {"profile_id": "not-a-uuid"}),
    ("get_profile", {"profile_id": INJECTION}),
    ("search_profiles", {"query": MB}),
    ("search_profiles", {"query": "a\x00"}),
    ("search_profiles", {"limit": 0}),
    ("search_profiles", {"limit": "ten"}),
    ("search_profiles", {"cursor": "bm90IGEgY3Vyc29y"}),
    ("search_profiles", {"cursor": INJECTION}),
    ("update_profile", {"profile_id": "PROFILE", "expected_version": "one"}),
    ("update_profile", {"profile_id": "PROFILE", "expected_version": 1, "email": "no-at-sign"}),
    ("update_profile", {"profile_id": "PROFILE", "expected_version": 1, "bio": MB}),
    ("update_profile", {"profile_id": "PROFILE", "expected_version": 1, "display_name": "\x00"}),
    ("update_profile", {"profile_id": "PROFILE", "expected_version": 0, "bio": "x"}),
    ("update_profile", {"profile_id": "OTHER", "expected_version": 1, "bio": INJECTION}),
    ("delete_profile", {"profile_id": "PROFILE"}),
    ("delete_profile", {"profile_id": "OTHER", "expected_version": 1}),
    ("delete_profile", {"profile_id": INJECTION, "expected_version": 1}),
    ("restore_profile", {"profile_id": "OTHER"}),
    ("restore_profile", {"profile_id": None}),
]


@pytest.mark.parametrize(("tool", "arguments"), BAD_CALLS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(BAD_CALLS)])
async def test_bad_input_is_a_clear_error_and_changes_nothing(connect, database_url, tool, arguments):
    mallory, victim = who("mallory"), who("victim")
    async with connect(app, principal=victim) as client:
        other = await create(client)
    async with connect(app, principal=mallory) as client:
        mine = await create(client)
        ids = {"PROFILE": mine["id"], "OTHER": other["id"]}
        arguments = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in arguments.items()}
        before = await table_fingerprint(database_url)
        result = await client.call_tool(tool, arguments)
        after = await table_fingerprint(database_url)
    text = error_text(result)
    assert text.split(":", 1)[0] in {"invalid_input", "not_found", "permission_denied"}
    assert len(text) < 1000
    for leak in ("Traceback", "SELECT", "INSERT", "asyncpg", "/work", ".py", "profiles_live"):
        assert leak not in text
    assert before == after


def test_demo_rows_are_deterministic():
    assert demo_rows(5, 42) == demo_rows(5, 42)
    assert demo_rows(5, 42) != demo_rows(5, 7)


async def test_demo_loader_is_idempotent(make_database):
    async with make_database() as url:
        conn = await asyncpg.connect(url)
        try:
            assert await load_demo(conn, count=25, seed=3) == 25
            assert await load_demo(conn, count=25, seed=3) == 0
            assert await conn.fetchval("SELECT count(*) FROM profiles") == 25
        finally:
            await conn.close()
