"""The profiles server's contract, over real in-memory MCP sessions and the real embedded database.

Covers: declared policies, owner/admin access without revealing existence, optimistic concurrency,
soft delete and admin restore, keyset pagination and its signed cursor, literal search, a matrix of
hostile input per tool (clear error, nothing changed), audit redaction, and the demo loader.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest

from servers.profiles.demo import demo_rows, load_demo
from servers.profiles.models import BAD_CURSOR, decode_cursor, encode_cursor
from servers.profiles.store import escape_like
from servers.profiles.tools import app
from shared.errors import InvalidInput
from shared.identity import Principal
from tests.support.db import open_connection

USER = frozenset({"profiles:read", "profiles:write"})
ADMIN = USER | {"profiles:admin"}
MB = "x" * 1_000_000
INJECTION = "'; DROP TABLE profiles; --"
LEAKS = ("Traceback", "SELECT", "INSERT", "UPDATE profiles", "asyncpg", "/work", ".py", "profiles_live", 'File "')


def who(name: str, scopes: frozenset[str] = USER) -> Principal:
    """A principal unique to one test, so rate limits and one-profile-per-owner never cross tests."""
    return Principal(f"{name}-{uuid.uuid4().hex[:8]}", frozenset(scopes), "test")


def email() -> str:
    return f"p{uuid.uuid4().hex[:12]}@example.com"


async def call(client, tool: str, arguments: dict | None = None) -> dict:
    result = await client.call_tool(tool, arguments or {})
    assert result.is_error is False, result.content[0].text
    return result.structured_content


async def fail(client, tool: str, arguments: dict, error_class: str) -> str:
    """Call, expect an error of `error_class`, check the message is short and reveals no internals."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error is True, result.structured_content
    text = result.content[0].text
    assert text.startswith(f"{error_class}: "), text
    assert len(text) < 500, len(text)
    for leak in LEAKS:
        assert leak not in text, text
    return text


async def snapshot(url: str) -> tuple[int, str]:
    """Row count and a checksum of every profile row (live and deleted)."""
    async with open_connection(url) as conn:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, coalesce(md5(string_agg(p::text, '|' ORDER BY id)), '') AS sum FROM profiles p")
    return row["n"], row["sum"]


async def insert_rows(url: str, rows: list[tuple[str, str, str]]) -> list[str]:
    """(owner, display_name, email) rows written directly, for setups that need many owners."""
    async with open_connection(url) as conn:
        return [str(await conn.fetchval(
            "INSERT INTO profiles (owner, display_name, email) VALUES ($1, $2, $3) RETURNING id", *row))
            for row in rows]


# --- policies ----------------------------------------------------------------------------------------

async def test_tools_declare_their_policies(connect):
    policies = app.policies
    assert set(policies) == {"get_profile", "search_profiles", "create_profile", "update_profile",
                             "delete_profile", "restore_profile"}
    assert policies["get_profile"].read_only and policies["search_profiles"].read_only
    assert policies["delete_profile"].destructive and not policies["delete_profile"].idempotent
    assert policies["restore_profile"].scopes == {"profiles:write", "profiles:admin"}
    assert policies["update_profile"].retry is None  # a replayed update would only conflict
    pii = {"display_name", "email", "bio", "preferences"}
    assert pii <= policies["create_profile"].redact and pii <= policies["update_profile"].redact
    assert "query" in policies["search_profiles"].redact
    async with connect(app, principal=who("admin", ADMIN)) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert listed["delete_profile"].annotations.destructive_hint is True
    assert listed["get_profile"].annotations.read_only_hint is True
    create = listed["create_profile"].input_schema
    assert sorted(create["required"]) == ["display_name", "email"]
    assert create["$defs"]["Preferences"]["additionalProperties"] is False
    async with connect(app, principal=who("reader", frozenset({"profiles:read"}))) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        denied = await fail(client, "create_profile", {"display_name": "R", "email": email()}, "permission_denied")
    assert names == {"get_profile", "search_profiles"} and "profiles:write" in denied


# --- own profile, access control --------------------------------------------------------------------

async def test_create_with_defaults_then_read_and_update(connect):
    async with connect(app, principal=(alice := who("alice"))) as client:
        await fail(client, "get_profile", {}, "not_found")
        address = email()
        created = await call(client, "create_profile", {"display_name": "Alice", "email": address})
        assert created["owner"] == alice.id and created["version"] == 1 and created["deleted_at"] is None
        assert (created["locale"], created["timezone"], created["bio"]) == ("en", "UTC", "")
        assert created["preferences"] == {"theme": "system", "notifications": {"email": True, "sms": False},
                                          "language": None, "page_size": 20}
        assert await call(client, "get_profile", {}) == created
        assert await call(client, "get_profile", {"profile_id": created["id"]}) == created
        updated = await call(client, "update_profile", {
            "profile_id": created["id"], "expected_version": 1, "display_name": "Alice L.", "timezone": "Asia/Tokyo",
            "preferences": {"theme": "dark", "notifications": {"email": False, "sms": True}, "page_size": 50}})
        assert updated["version"] == 2 and updated["display_name"] == "Alice L." and updated["email"] == address
        assert updated["preferences"]["notifications"] == {"email": False, "sms": True}
        assert updated["updated_at"] >= created["updated_at"] and updated["created_at"] == created["created_at"]
        await fail(client, "update_profile", {"profile_id": created["id"], "expected_version": 2}, "invalid_input")


async def test_others_profiles_are_invisible_but_admins_see_and_edit_them(connect, database_url):
    alice, bob, admin = who("alice"), who("bob"), who("admin", ADMIN)
    async with connect(app, principal=alice) as client:
        profile = await call(client, "create_profile", {"display_name": "Alice", "email": email()})
    before = await snapshot(database_url)
    async with connect(app, principal=bob) as client:
        absent = str(uuid.uuid4())
        for tool, extra in (("get_profile", {}), ("update_profile", {"expected_version": 1, "bio": "mine now"}),
                            ("delete_profile", {"expected_version": 1})):
            other = await fail(client, tool, {"profile_id": profile["id"], **extra}, "not_found")
            missing = await fail(client, tool, {"profile_id": absent, **extra}, "not_found")
            assert other == missing  # the same words whether or not the profile exists
        spoof = {"display_name": "Alice?", "email": email(), "owner": alice.id}
        assert "admin" in await fail(client, "create_profile", spoof, "permission_denied")
        search = await call(client, "search_profiles", {"query": profile["email"]})
        assert search["profiles"] == []
        await fail(client, "restore_profile", {"profile_id": profile["id"]}, "permission_denied")
    assert await snapshot(database_url) == before
    async with connect(app, principal=admin) as client:
        assert (await call(client, "get_profile", {"profile_id": profile["id"]}))["owner"] == alice.id
        edited = await call(client, "update_profile", {"profile_id": profile["id"], "expected_version": 1,
                                                       "bio": "moderated"})
        found = await call(client, "search_profiles", {"query": profile["email"]})
        carol = f"carol-{uuid.uuid4().hex[:8]}"
        made = await call(client, "create_profile", {"display_name": "Carol", "email": email(), "owner": carol})
    assert edited["version"] == 2 and edited["bio"] == "moderated"
    assert [p["id"] for p in found["profiles"]] == [profile["id"]]
    assert made["owner"] == carol
    async with connect(app, principal=Principal(carol, USER, "test")) as client:
        assert (await call(client, "get_profile", {}))["id"] == made["id"]


# --- concurrency, delete, restore -------------------------------------------------------------------

async def test_stale_version_conflicts_and_changes_nothing(connect, database_url):
    alice, admin = who("alice"), who("admin", ADMIN)
    async with connect(app, principal=alice) as mine, connect(app, principal=admin) as theirs:
        profile = await call(mine, "create_profile", {"display_name": "Alice", "email": email()})
        await call(theirs, "update_profile", {"profile_id": profile["id"], "expected_version": 1, "bio": "admin"})
        before = await snapshot(database_url)
        text = await fail(mine, "update_profile", {"profile_id": profile["id"], "expected_version": 1,
                                                   "bio": "lost update"}, "conflict")
        assert "version 2" in text
        assert "version 2" in await fail(mine, "delete_profile", {"profile_id": profile["id"], "expected_version": 1},
                                         "conflict")
        assert await snapshot(database_url) == before
        # Two writers racing on the same version: exactly one wins.
        race = await asyncio.gather(
            mine.call_tool("update_profile", {"profile_id": profile["id"], "expected_version": 2, "bio": "a"}),
            theirs.call_tool("update_profile", {"profile_id": profile["id"], "expected_version": 2, "bio": "b"}))
        assert sorted(r.is_error for r in race) == [False, True]
        assert "conflict" in next(r for r in race if r.is_error).content[0].text
        assert (await call(mine, "get_profile", {}))["version"] == 3


async def test_soft_delete_and_admin_restore(connect, database_url):
    alice, bob, admin = who("alice"), who("bob"), who("admin", ADMIN)
    old_email = email()
    async with connect(app, principal=alice) as client:
        first = await call(client, "create_profile", {"display_name": "Alice", "email": old_email})
        gone = await call(client, "delete_profile", {"profile_id": first["id"], "expected_version": 1})
        assert gone["deleted_at"] is not None and gone["deleted"] is True and gone["version"] == 2
        await fail(client, "get_profile", {}, "not_found")
        assert "deleted" in await fail(client, "get_profile", {"profile_id": first["id"]}, "not_found")
        await fail(client, "delete_profile", {"profile_id": first["id"], "expected_version": 2}, "not_found")
        await fail(client, "update_profile", {"profile_id": first["id"], "expected_version": 2, "bio": "x"},
                   "not_found")
        second = await call(client, "create_profile", {"display_name": "Alice 2", "email": email()})
    async with connect(app, principal=admin) as client:
        seen = await call(client, "get_profile", {"profile_id": first["id"]})
        assert seen["deleted_at"] is not None
        assert not (await call(client, "search_profiles", {"query": old_email}))["profiles"]
        owner_taken = await fail(client, "restore_profile", {"profile_id": first["id"]}, "conflict")
        assert "principal already has a profile" in owner_taken
    async with connect(app, principal=alice) as client:
        await call(client, "delete_profile", {"profile_id": second["id"], "expected_version": 1})
    async with connect(app, principal=bob) as client:
        squatter = await call(client, "create_profile", {"display_name": "Bob", "email": old_email.upper()})
    before = await snapshot(database_url)
    async with connect(app, principal=admin) as client:
        assert "email" in await fail(client, "restore_profile", {"profile_id": first["id"]}, "conflict")
        assert await snapshot(database_url) == before
        await call(client, "update_profile", {"profile_id": squatter["id"], "expected_version": 1,
                                              "email": email()})
        restored = await call(client, "restore_profile", {"profile_id": first["id"]})
        again = await call(client, "restore_profile", {"profile_id": first["id"]})
        await fail(client, "restore_profile", {"profile_id": str(uuid.uuid4())}, "not_found")
    assert restored["deleted_at"] is None and restored["version"] == 3 and again == restored
    async with connect(app, principal=alice) as client:
        assert (await call(client, "get_profile", {}))["id"] == first["id"]


# --- search and pagination --------------------------------------------------------------------------

async def test_pages_cover_everything_once_in_order(connect, make_database, db_connection):
    async with make_database() as url:
        async with db_connection(url) as conn:
            assert await load_demo(conn, count=45, seed=11) == 45
            expected = [str(r["id"]) for r in await conn.fetch("SELECT id FROM profiles ORDER BY created_at, id")]
            french = {str(r["id"]) for r in await conn.fetch("SELECT id FROM profiles WHERE locale = 'fr'")}
        async with connect(app, principal=who("admin", ADMIN), url=url) as client:
            seen, cursor, pages = [], None, 0
            while True:
                page = await call(client, "search_profiles", {"limit": 10} | ({"cursor": cursor} if cursor else {}))
                seen += [p["id"] for p in page["profiles"]]
                pages, cursor = pages + 1, page["next_cursor"]
                if cursor is None:
                    break
            by_locale = await call(client, "search_profiles", {"locale": "fr", "limit": 100})
    assert seen == expected and len(set(seen)) == 45 and pages == 5
    assert {p["id"] for p in by_locale["profiles"]} == french


async def test_cursor_is_signed_and_bound_to_the_search(connect, database_url):
    admin = who("admin", ADMIN)
    marker = uuid.uuid4().hex[:10]
    await insert_rows(database_url, [(f"c-{marker}-{i}", f"Cursor {marker} {i}", f"c{i}.{marker}@example.com")
                                     for i in range(3)])
    async with connect(app, principal=admin) as client:
        first = await call(client, "search_profiles", {"query": marker, "limit": 1})
        cursor = first["next_cursor"]
        second = await call(client, "search_profiles", {"query": marker, "limit": 1, "cursor": cursor})
        assert second["profiles"][0]["id"] != first["profiles"][0]["id"]
        body, _, tag = cursor.partition(".")
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        payload[1] = "1970-01-01T00:00:00+00:00"  # rewind to the start: a plausible edit
        forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=") + "." + tag
        flipped = [cursor[:i] + ("A" if cursor[i] != "A" else "B") + cursor[i + 1:] for i in (3, -1)]
        for bad in (forged, *flipped):  # (malformed cursors are in the bad-input matrix; calls are rate limited)
            assert BAD_CURSOR in await fail(client, "search_profiles", {"query": marker, "cursor": bad},
                                            "invalid_input")
        await fail(client, "search_profiles", {"query": marker + "x", "cursor": cursor}, "invalid_input")
        await fail(client, "search_profiles", {"query": marker, "locale": "en", "cursor": cursor}, "invalid_input")
    async with connect(app, principal=who("other-admin", ADMIN)) as client:
        await fail(client, "search_profiles", {"query": marker, "cursor": cursor}, "invalid_input")


async def test_sql_metacharacters_are_literal_in_search_and_storage(connect, database_url):
    admin, m = who("admin", ADMIN), uuid.uuid4().hex[:10]
    names = [f"{m} 100% sure", f"{m} under_score", f"{m} back\\slash", f"{m} o'brien", f"{m} plain"]
    await insert_rows(database_url, [(f"meta-{m}-{i}", name, f"meta{i}.{m}@example.com")
                                     for i, name in enumerate(names)])
    expectations = {f"{m} %": [], f"{m} _": [], f"{m} 100%": [names[0]], f"{m} under_": [names[1]],
                    f"{m} back\\": [names[2]], f"{m} o'brien": [names[3]], f"{m} \\": [], INJECTION: [],
                    m.upper(): names}
    async with connect(app, principal=admin) as client:
        for query, wanted in expectations.items():
            page = await call(client, "search_profiles", {"query": query, "limit": 100})
            assert sorted(p["display_name"] for p in page["profiles"]) == sorted(wanted), query
    async with connect(app, principal=who("mallory")) as client:
        stored = await call(client, "create_profile", {"display_name": INJECTION, "email": email(),
                                                       "bio": "50% off_sale \\ 'quoted' \"double\"\n-- comment"})
        assert (await call(client, "get_profile", {})) == stored
    assert stored["display_name"] == INJECTION and stored["bio"].startswith("50% off_sale \\ 'quoted'")
    assert (await snapshot(database_url))[0] > 0  # the table is still there


def test_like_escaping_and_cursor_round_trip():
    assert escape_like("a%b_c\\d") == "a\\%b\\_c\\\\d"
    key, binding = b"k" * 32, '["alice", null, null]'
    from datetime import UTC, datetime

    position = (datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), uuid.uuid4())
    cursor = encode_cursor(key, binding, *position)
    assert decode_cursor(key, binding, cursor) == position
    for bad_key, bad_binding in ((b"x" * 32, binding), (key, '["bob", null, null]')):
        with pytest.raises(InvalidInput):
            decode_cursor(bad_key, bad_binding, cursor)


# --- hostile input ----------------------------------------------------------------------------------

OK = {"display_name": "Mallory", "email": "mallory.fresh@example.com"}
BAD_INPUT = [
    # (tool, arguments, as admin?, error class, words the message must contain)
    ("get_profile", {"profile_id": "not-a-uuid"}, False, "invalid_input", "profile_id"),
    ("get_profile", {"profile_id": 12345}, False, "invalid_input", "profile_id"),
    ("get_profile", {"profile_id": MB}, False, "invalid_input", "profile_id"),
    ("get_profile", {"profile_id": "\x00"}, False, "invalid_input", "profile_id"),
    ("get_profile", {"profile_id": INJECTION}, False, "invalid_input", "profile_id"),
    ("get_profile", {"profile_id": "OTHER"}, False, "not_found", "visible"),
    ("get_profile", {"profile_id": "ABSENT"}, False, "not_found", "visible"),
    ("search_profiles", {"limit": 0}, True, "invalid_input", "limit"),
    ("search_profiles", {"limit": 101}, True, "invalid_input", "limit"),
    ("search_profiles", {"limit": "20"}, True, "invalid_input", "limit"),
    ("search_profiles", {"limit": True}, True, "invalid_input", "limit"),
    ("search_profiles", {"limit": 2.5}, True, "invalid_input", "limit"),
    ("search_profiles", {"query": MB}, True, "invalid_input", "query"),
    ("search_profiles", {"query": "a\x00b"}, True, "invalid_input", "NUL"),
    ("search_profiles", {"query": ""}, True, "invalid_input", "query"),
    ("search_profiles", {"query": ["a"]}, True, "invalid_input", "query"),
    ("search_profiles", {"locale": "english"}, True, "invalid_input", "locale"),
    ("search_profiles", {"locale": "en\x00"}, True, "invalid_input", "NUL"),
    ("search_profiles", {"cursor": MB}, True, "invalid_input", "cursor"),
    ("search_profiles", {"cursor": "\x00"}, True, "invalid_input", "cursor"),
    ("search_profiles", {"cursor": "garbage"}, True, "invalid_input", "cursor"),
    ("search_profiles", {"cursor": "a.b.c"}, True, "invalid_input", "cursor"),
    ("search_profiles", {"cursor": INJECTION}, True, "invalid_input", "cursor"),
    ("create_profile", {"email": "m@example.com"}, False, "invalid_input", "display_name"),
    ("create_profile", {"display_name": "M"}, False, "invalid_input", "email"),
    ("create_profile", {}, False, "invalid_input", "display_name"),
    ("create_profile", OK | {"display_name": 42}, False, "invalid_input", "display_name"),
    ("create_profile", OK | {"display_name": ""}, False, "invalid_input", "display_name"),
    ("create_profile", OK | {"display_name": "   "}, False, "invalid_input", "visible character"),
    ("create_profile", OK | {"display_name": "x" * 101}, False, "invalid_input", "100"),
    ("create_profile", OK | {"display_name": MB}, False, "invalid_input", "display_name"),
    ("create_profile", OK | {"display_name": "A\x00B"}, False, "invalid_input", "NUL"),
    ("create_profile", OK | {"display_name": "A\nB"}, False, "invalid_input", "control"),
    ("create_profile", OK | {"display_name": "\ud800"}, False, "invalid_input", "display_name"),
    ("create_profile", OK | {"email": "not-an-email"}, False, "invalid_input", "email"),
    ("create_profile", OK | {"email": "a@localhost"}, False, "invalid_input", "domain"),
    ("create_profile", OK | {"email": INJECTION}, False, "invalid_input", "email"),
    ("create_profile", OK | {"email": "a\x00@example.com"}, False, "invalid_input", "NUL"),
    ("create_profile", OK | {"email": "a" * 250 + "@example.com"}, False, "invalid_input", "254"),
    ("create_profile", OK | {"email": "a..b@example.com"}, False, "invalid_input", "email"),
    ("create_profile", OK | {"email": "a@-example.com"}, False, "invalid_input", "domain"),
    ("create_profile", OK | {"email": "ünï@exämple.com"}, False, "invalid_input", "email"),
    ("create_profile", OK | {"email": "%@_.com"}, False, "invalid_input", "email"),
    ("create_profile", OK | {"bio": "x" * 2001}, False, "invalid_input", "2000"),
    ("create_profile", OK | {"bio": MB}, False, "invalid_input", "bio"),
    ("create_profile", OK | {"bio": "ok\x00"}, False, "invalid_input", "NUL"),
    ("create_profile", OK | {"bio": 42}, False, "invalid_input", "bio"),
    ("create_profile", OK | {"locale": "en_US"}, False, "invalid_input", "locale"),
    ("create_profile", OK | {"locale": "EN"}, False, "invalid_input", "locale"),
    ("create_profile", OK | {"locale": INJECTION}, False, "invalid_input", "locale"),
    ("create_profile", OK | {"timezone": "Mars/Olympus"}, False, "invalid_input", "IANA"),
    ("create_profile", OK | {"timezone": "utc"}, False, "invalid_input", "IANA"),
    ("create_profile", OK | {"timezone": "UTC\x00"}, False, "invalid_input", "NUL"),
    ("create_profile", OK | {"timezone": "../../etc/passwd"}, False, "invalid_input", "timezone"),
    ("create_profile", OK | {"preferences": {"colour": "red"}}, False, "invalid_input", "'colour'"),
    ("create_profile", OK | {"preferences": {"k" * 1_000_000: 1}}, False, "invalid_input", "unknown key"),
    ("create_profile", OK | {"preferences": {"theme": "neon"}}, False, "invalid_input", "theme"),
    ("create_profile", OK | {"preferences": {"page_size": 5}}, False, "invalid_input", "page_size"),
    ("create_profile", OK | {"preferences": {"page_size": "20"}}, False, "invalid_input", "page_size"),
    ("create_profile", OK | {"preferences": {"notifications": {"email": "yes"}}}, False, "invalid_input", "email"),
    ("create_profile", OK | {"preferences": {"notifications": {"push": True}}}, False, "invalid_input", "'push'"),
    ("create_profile", OK | {"preferences": {"language": "klingon"}}, False, "invalid_input", "language"),
    ("create_profile", OK | {"preferences": "dark please"}, False, "invalid_input", "preferences"),
    ("create_profile", OK | {"preferences": [1, 2]}, False, "invalid_input", "preferences"),
    ("create_profile", OK | {"owner": ""}, True, "invalid_input", "owner"),
    ("create_profile", OK | {"owner": "a\x00"}, True, "invalid_input", "NUL"),
    ("create_profile", OK | {"owner": MB}, True, "invalid_input", "owner"),
    ("create_profile", OK | {"owner": "OTHER_OWNER"}, False, "permission_denied", "admin"),
    ("create_profile", OK, False, "conflict", "already has a profile"),
    ("create_profile", {"display_name": "M", "email": "OTHER_EMAIL", "owner": "OTHER_OWNER"}, True, "conflict",
     "email"),
    ("update_profile", {"profile_id": "MINE", "bio": "x"}, False, "invalid_input", "expected_version"),
    ("update_profile", {"expected_version": 1, "bio": "x"}, False, "invalid_input", "profile_id"),
    ("update_profile", {"profile_id": "MINE", "expected_version": "1", "bio": "x"}, False, "invalid_input", "version"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 0, "bio": "x"}, False, "invalid_input", "version"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 2**31, "bio": "x"}, False, "invalid_input",
     "version"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 1.5, "bio": "x"}, False, "invalid_input",
     "version"),
    ("update_profile", {"profile_id": "not-a-uuid", "expected_version": 1, "bio": "x"}, False, "invalid_input",
     "profile_id"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 1}, False, "invalid_input", "nothing to update"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 1, "display_name": "\x00"}, False,
     "invalid_input", "NUL"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 1, "email": "no-at-sign"}, False,
     "invalid_input", "email"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 1, "bio": MB}, False, "invalid_input", "bio"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 1, "preferences": {"evil": 1}}, False,
     "invalid_input", "'evil'"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 1, "locale": "xx-xx"}, False,
     "invalid_input", "locale"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 1, "timezone": INJECTION}, False,
     "invalid_input", "timezone"),
    ("update_profile", {"profile_id": "OTHER", "expected_version": 1, "bio": INJECTION}, False, "not_found",
     "visible"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 7, "bio": "x"}, False, "conflict", "version 1"),
    ("update_profile", {"profile_id": "MINE", "expected_version": 1, "email": "OTHER_EMAIL"}, False, "conflict",
     "email"),
    ("delete_profile", {"profile_id": "MINE"}, False, "invalid_input", "expected_version"),
    ("delete_profile", {"profile_id": "MINE", "expected_version": "one"}, False, "invalid_input", "version"),
    ("delete_profile", {"profile_id": INJECTION, "expected_version": 1}, False, "invalid_input", "profile_id"),
    ("delete_profile", {"profile_id": "OTHER", "expected_version": 1}, False, "not_found", "visible"),
    ("delete_profile", {"profile_id": "ABSENT", "expected_version": 1}, False, "not_found", "visible"),
    ("delete_profile", {"profile_id": "MINE", "expected_version": 2}, False, "conflict", "version 1"),
    ("restore_profile", {"profile_id": "OTHER"}, False, "permission_denied", "profiles:admin"),
    ("restore_profile", {"profile_id": "not-a-uuid"}, True, "invalid_input", "profile_id"),
    ("restore_profile", {"profile_id": None}, True, "invalid_input", "profile_id"),
    ("restore_profile", {}, True, "invalid_input", "profile_id"),
    ("restore_profile", {"profile_id": "ABSENT"}, True, "not_found", "id"),
]


@pytest.mark.parametrize(("tool", "arguments", "as_admin", "error_class", "words"), BAD_INPUT,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(BAD_INPUT)])
async def test_bad_input_is_a_clear_error_and_changes_nothing(connect, database_url, tool, arguments, as_admin,
                                                              error_class, words):
    mallory = who("mallory", ADMIN if as_admin else USER)
    victim_email = email()
    mine, other = await insert_rows(database_url, [(mallory.id, "Mallory", email()),
                                                   (f"victim-{uuid.uuid4().hex[:8]}", "Victim", victim_email)])
    stand_ins = {"MINE": mine, "OTHER": other, "ABSENT": str(uuid.uuid4()), "OTHER_EMAIL": victim_email.upper(),
                 "OTHER_OWNER": f"victim-{uuid.uuid4().hex[:8]}"}
    arguments = {k: stand_ins.get(v, v) if isinstance(v, str) else v for k, v in arguments.items()}
    before = await snapshot(database_url)
    async with connect(app, principal=mallory) as client:
        text = await fail(client, tool, arguments, error_class)
    assert words in text
    assert await snapshot(database_url) == before


# --- audit, demo data -------------------------------------------------------------------------------

async def test_audit_keeps_no_pii(connect, db_connection):
    address = email()
    alice = who("alice")
    async with connect(app, principal=alice) as client:
        await call(client, "create_profile", {"display_name": "Secret Name", "email": address, "bio": "Secret bio"})
        await call(client, "search_profiles", {"query": address})
    # this test's own caller only, every phase (an intent record carries the arguments too)
    async with db_connection() as conn:
        rows = await conn.fetch("SELECT phase, body FROM audit_log WHERE principal = $1 ORDER BY seq", alice.id)
    bodies = [json.loads(r["body"]) for r in rows]
    results = [b["tool"] for r, b in zip(rows, bodies, strict=True) if r["phase"] == "result"]
    assert results == ["create_profile", "search_profiles"]
    for body in bodies:
        dumped = json.dumps(body)
        assert address not in dumped and "Secret" not in dumped and "[redacted]" in dumped


async def test_demo_loader_is_deterministic_and_idempotent(connect, make_database, db_connection):
    assert demo_rows(20, 42) == demo_rows(20, 42) and demo_rows(20, 42) != demo_rows(20, 7)
    assert demo_rows(20, 42)[:10] == demo_rows(10, 42)  # row N does not depend on count
    async with make_database() as url:
        async with db_connection(url) as conn:
            assert await load_demo(conn, count=30, seed=42) == 30
            assert await load_demo(conn, count=30, seed=42) == 0
            assert await load_demo(conn, count=40, seed=42) == 10
            assert await load_demo(conn, count=40, seed=7) == 0  # same owners: nothing duplicated
            rows = await conn.fetch("SELECT id, owner, display_name, email, bio, locale, timezone, preferences, "
                                    "version FROM profiles ORDER BY owner")
        expected = demo_rows(40, 42)
        assert [(r["id"], r["owner"], r["email"], r["version"]) for r in rows] == \
            [(row_id, owner, fields.email, 1) for row_id, owner, fields in expected]
        assert [json.loads(r["preferences"]) for r in rows] == [f.preferences.model_dump() for _, _, f in expected]
        assert rows[0]["owner"] == "demo-user-0001" and len({r["email"].lower() for r in rows}) == 40
        async with connect(app, principal=who("admin", ADMIN), url=url) as client:
            shown = await call(client, "get_profile", {"profile_id": str(rows[0]["id"])})
    assert shown["display_name"] == rows[0]["display_name"]
