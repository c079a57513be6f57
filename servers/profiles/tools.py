"""The profiles server's tools; each decorator is that tool's whole policy.

Access rule: a caller reads and edits only its own profile unless it holds `profiles:admin`.
Existence is never revealed to anyone else: for a caller who is neither the owner nor an admin, a
profile id that exists and one that does not get the identical `not_found` answer, by the same code
path (one lookup by primary key). `permission_denied` is kept for what the caller asked to *do*
(a missing scope, creating a profile for another principal), never for whose id it was.

Versions: every change bumps `version`; update and delete take `expected_version` and change nothing
if it is stale (`conflict`, with the current version in the message). A deleted profile keeps its row
(`deleted_at`); an admin can restore it while its owner and email are still free.
"""

from __future__ import annotations

import json

import asyncpg

from servers.profiles import store
from servers.profiles.models import (
    Bio,
    Cursor,
    DisplayName,
    Email,
    Locale,
    NewProfile,
    Owner,
    PageLimit,
    Preferences,
    Profile,
    ProfileId,
    ProfilePage,
    SearchText,
    Timezone,
    Version,
    decode_cursor,
    encode_cursor,
)
from shared.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from shared.identity import Principal, current_principal
from shared.policy import RETRY, Policy, rate, redact, timeout
from shared.server import SuiteServer

READ, WRITE, ADMIN = "profiles:read", "profiles:write", "profiles:admin"
PERSONAL = redact("display_name", "email", "bio", "preferences")  # (names checked against each tool)
READING = Policy(scopes={READ}, read_only=True, rate="30/s", retry=RETRY) | timeout(5.0)
WRITING = Policy(scopes={WRITE}, rate="10/s") | timeout(10.0)

NOT_VISIBLE = "no profile with that id is visible to you"
DELETED = "that profile is deleted; an admin can restore it with restore_profile"

app = SuiteServer(
    "profiles",
    instructions=(
        "User profiles, one per principal. get_profile with no arguments returns the caller's own profile. "
        "update_profile and delete_profile need the profile's current `version` as expected_version "
        "(optimistic concurrency): read first, then write; on a conflict, read again. Callers see only their "
        "own profile unless they hold profiles:admin."
    ),
)


def _is_admin(principal: Principal) -> bool:
    return principal.has_scope(ADMIN)


def _visible(row: asyncpg.Record | None, principal: Principal) -> asyncpg.Record:
    """The row if the caller owns it or is an admin; otherwise the same answer as for a missing id."""
    if row is None or (row["owner"] != principal.id and not _is_admin(principal)):
        raise NotFound(NOT_VISIBLE)
    return row


def _stale(current: asyncpg.Record | None, expected_version: int) -> Exception:
    """Why a guarded write matched no row, given the row as it is now."""
    if current is None or current["deleted_at"] is not None:
        return NotFound(DELETED)
    return Conflict(f"version mismatch: the profile is at version {current['version']}, not {expected_version}; "
                    "read it again and retry with the current version")


def _cursor_key() -> bytes:
    """A key of its own, derived from the suite's key, so cursors survive restarts and work across processes."""
    return app.keys.derive("profiles/search-cursor/v1")


@app.tool(READING, title="Get a profile")
async def get_profile(profile_id: ProfileId | None = None) -> Profile:
    """Return your own profile when profile_id is omitted. Another principal's profile is returned only to
    admins (profiles:admin), who also see deleted profiles (deleted_at set)."""
    principal = current_principal()
    async with app.db.acquire() as conn:
        if profile_id is None:
            row = await store.fetch_own(conn, principal.id)
            if row is None:
                raise NotFound("you have no profile yet; create one with create_profile")
        else:
            row = _visible(await store.fetch(conn, profile_id), principal)
            if row["deleted_at"] is not None and not _is_admin(principal):
                raise NotFound(DELETED)
    return store.to_profile(row)


@app.tool(READING | rate("10/s") | redact("query"), title="Search profiles")
async def search_profiles(query: SearchText | None = None, locale: Locale | None = None, limit: PageLimit = 20,
                          cursor: Cursor | None = None) -> ProfilePage:
    """Find live profiles whose display name or email contains `query` (case-insensitive, literal text),
    optionally only those with `locale`. Admins search every profile; anyone else sees only their own.
    Results come oldest first, `limit` per page; pass `next_cursor` back as `cursor`, with the same query
    and locale, for the next page."""
    principal = current_principal()
    binding = json.dumps([principal.id, query, locale])
    key = _cursor_key()
    after = decode_cursor(key, binding, cursor) if cursor is not None else None
    owner = None if _is_admin(principal) else principal.id
    async with app.db.acquire() as conn:
        rows = await store.search(conn, owner=owner, query=query, locale=locale, after=after, limit=limit)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(key, binding, page[-1]["created_at"], page[-1]["id"])
    return ProfilePage(profiles=[store.to_profile(row) for row in page], next_cursor=next_cursor)


@app.tool(WRITING | PERSONAL, title="Create a profile")
async def create_profile(display_name: DisplayName, email: Email, bio: Bio = "", locale: Locale = "en",
                         timezone: Timezone = "UTC", preferences: Preferences | None = None,
                         owner: Owner | None = None) -> Profile:
    """Create your profile (one live profile per principal; the email must not be in use). Admins may pass
    `owner` to create the profile of another principal. Preference keys left out take their defaults."""
    principal = current_principal()
    if owner is not None and owner != principal.id and not _is_admin(principal):
        raise PermissionDenied("only admins (profiles:admin) can create a profile for another principal")
    profile = NewProfile(display_name=display_name, email=email, bio=bio, locale=locale, timezone=timezone,
                         preferences=preferences or Preferences())
    async with app.db.transaction() as conn:
        row = await store.insert(conn, owner or principal.id, profile)
    return store.to_profile(row)


@app.tool(WRITING | PERSONAL, title="Update a profile")
async def update_profile(profile_id: ProfileId, expected_version: Version, display_name: DisplayName | None = None,
                         email: Email | None = None, bio: Bio | None = None, locale: Locale | None = None,
                         timezone: Timezone | None = None, preferences: Preferences | None = None) -> Profile:
    """Change the given fields of your profile (admins: any profile); fields left out stay as they are, and
    `preferences`, when given, replaces the whole object. `expected_version` must be the profile's current
    version, otherwise nothing changes and the error gives the current version. Returns the new profile."""
    changes = {name: value for name, value in (("display_name", display_name), ("email", email), ("bio", bio),
                                               ("locale", locale), ("timezone", timezone),
                                               ("preferences", preferences)) if value is not None}
    if not changes:
        raise InvalidInput("nothing to update: give at least one of display_name, email, bio, locale, timezone, "
                           "preferences")
    principal = current_principal()
    async with app.db.transaction() as conn:
        current = _visible(await store.fetch(conn, profile_id), principal)
        if current["deleted_at"] is not None:
            raise NotFound(DELETED)
        row = await store.update(conn, profile_id, expected_version, changes)
        if row is None:
            raise _stale(await store.fetch(conn, profile_id), expected_version)
    return store.to_profile(row)


@app.tool(WRITING | Policy(destructive=True), title="Delete a profile")
async def delete_profile(profile_id: ProfileId, expected_version: Version) -> Profile:
    """Soft-delete your profile (admins: any profile); an admin can restore it later. `expected_version` must
    be the current version. Returns the deleted profile (deleted_at set)."""
    principal = current_principal()
    async with app.db.transaction() as conn:
        current = _visible(await store.fetch(conn, profile_id), principal)
        if current["deleted_at"] is not None:
            raise NotFound(DELETED)
        row = await store.soft_delete(conn, profile_id, expected_version)
        if row is None:
            raise _stale(await store.fetch(conn, profile_id), expected_version)
    return store.to_profile(row)


@app.tool(WRITING | Policy(scopes={ADMIN}, idempotent=True, retry=RETRY), title="Restore a deleted profile")
async def restore_profile(profile_id: ProfileId) -> Profile:
    """Admins only: bring back a soft-deleted profile. Fails with a conflict if its owner has a live profile
    again or its email is now used by another profile. Restoring a live profile changes nothing."""
    async with app.db.transaction() as conn:
        row = await store.restore(conn, profile_id)
        if row is None:
            row = await store.fetch(conn, profile_id)
            if row is None:
                raise NotFound("no profile has that id")
    return store.to_profile(row)
