"""The profiles server's tools. Each decorator line is that tool's policy.

Access rule: a caller sees and edits only its own profile unless it holds `profiles:admin`. Asking
for someone else's profile answers `not_found` whether or not it exists, so ids cannot be probed.
"""

from __future__ import annotations

from uuid import UUID

from servers.profiles import store
from servers.profiles.models import (
    Bio,
    Cursor,
    DisplayName,
    Email,
    Locale,
    Owner,
    Preferences,
    Profile,
    ProfilePage,
    SearchText,
    Timezone,
    Version,
)
from shared.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from shared.identity import current_principal
from shared.limits import Rate
from shared.server import SuiteServer

ADMIN = "profiles:admin"
PII = ("display_name", "email", "bio", "preferences", "query")
READ_RATE = Rate(30, per=1.0)
WRITE_RATE = Rate(5, per=1.0)

app = SuiteServer(
    "profiles",
    instructions=(
        "User profiles. Call get_profile with no arguments for the caller's own profile. Updates and "
        "deletes need the profile's current `version` (optimistic concurrency): read, then write."
    ),
)

NOT_VISIBLE = "no profile with that id is visible to you"


def _is_admin() -> bool:
    return current_principal().has_scope(ADMIN)


def _check_access(row, profile_id: UUID) -> None:
    """Owner or admin; anyone else learns nothing about whether the profile exists."""
    if row is None or (row["owner"] != current_principal().id and not _is_admin()):
        raise NotFound(NOT_VISIBLE)


@app.tool(scopes={"profiles:read"}, read_only=True, timeout=5.0, rate=READ_RATE, title="Get a profile")
async def get_profile(profile_id: UUID | None = None) -> Profile:
    """Return a profile: your own when `profile_id` is omitted; another's only for admins."""
    async with app.db.acquire() as conn:
        if profile_id is None:
            row = await store.by_owner(conn, current_principal().id)
            if row is None:
                raise NotFound("you have no profile yet; create one with create_profile")
        else:
            row = await store.by_id(conn, profile_id)
            _check_access(row, profile_id)
    return store.to_profile(row)


@app.tool(scopes={"profiles:read"}, read_only=True, timeout=5.0, rate=READ_RATE, redact=PII,
          title="Search profiles")
async def search_profiles(query: SearchText | None = None, locale: Locale | None = None,
                          limit: int = 20, cursor: Cursor | None = None) -> ProfilePage:
    """Find live profiles whose name or email contains `query` (admins search everyone; others see only
    their own). Results come in creation order, `limit` (1-100) per page; pass `next_cursor` back as
    `cursor` for the next page."""
    if not 1 <= limit <= 100:
        raise InvalidInput("limit must be between 1 and 100")
    after = store.decode_cursor(cursor) if cursor else None
    owner = None if _is_admin() else current_principal().id
    async with app.db.acquire() as conn:
        rows = await store.search(conn, query=query, locale=locale, owner=owner, after=after, limit=limit)
    page, more = rows[:limit], len(rows) > limit
    return ProfilePage(profiles=[store.to_profile(r) for r in page],
                       next_cursor=store.encode_cursor(page[-1]) if more else None)


@app.tool(scopes={"profiles:write"}, timeout=5.0, rate=WRITE_RATE, redact=PII, title="Create a profile")
async def create_profile(display_name: DisplayName, email: Email, bio: Bio = "", locale: Locale = "en",
                         timezone: Timezone = "UTC", preferences: Preferences | None = None,
                         owner: Owner | None = None) -> Profile:
    """Create your profile (one per principal). Admins may pass `owner` to create one for another principal."""
    principal = current_principal()
    if owner is not None and owner != principal.id and not _is_admin():
        raise PermissionDenied("only admins can create a profile for another principal")
    fields = {"display_name": display_name, "email": email, "bio": bio, "locale": locale, "timezone": timezone,
              "preferences": (preferences or Preferences()).model_dump()}
    async with app.db.transaction() as conn:
        row = await store.insert(conn, owner or principal.id, fields)
    return store.to_profile(row)


@app.tool(scopes={"profiles:write"}, timeout=5.0, rate=WRITE_RATE, redact=PII, title="Update a profile")
async def update_profile(profile_id: UUID, expected_version: Version, display_name: DisplayName | None = None,
                         email: Email | None = None, bio: Bio | None = None, locale: Locale | None = None,
                         timezone: Timezone | None = None, preferences: Preferences | None = None) -> Profile:
    """Change some fields of a profile. `expected_version` must equal the profile's current version;
    otherwise nothing changes and the error says the current version to re-read."""
    changes = {k: v for k, v in {"display_name": display_name, "email": email, "bio": bio, "locale": locale,
                                 "timezone": timezone}.items() if v is not None}
    if preferences is not None:
        changes["preferences"] = preferences.model_dump()
    async with app.db.transaction() as conn:
        current = await store.by_id(conn, profile_id)
        _check_access(current, profile_id)
        if not changes:
            return store.to_profile(current)
        row = await store.update(conn, profile_id, expected_version, changes)
        if row is None:
            raise Conflict(f"version mismatch: the profile is at version {current['version']}, "
                           f"you sent {expected_version}; re-read it and retry")
    return store.to_profile(row)


@app.tool(scopes={"profiles:write"}, destructive=True, timeout=5.0, rate=WRITE_RATE, title="Delete a profile")
async def delete_profile(profile_id: UUID, expected_version: Version) -> Profile:
    """Soft-delete a profile (an admin can restore it). Needs the current `expected_version`."""
    async with app.db.transaction() as conn:
        current = await store.by_id(conn, profile_id)
        _check_access(current, profile_id)
        row = await store.soft_delete(conn, profile_id, expected_version)
        if row is None:
            raise Conflict(f"version mismatch: the profile is at version {current['version']}, "
                           f"you sent {expected_version}; re-read it and retry")
    return store.to_profile(row)


@app.tool(scopes={"profiles:write", ADMIN}, idempotent=True, timeout=5.0, rate=WRITE_RATE,
          title="Restore a deleted profile")
async def restore_profile(profile_id: UUID) -> Profile:
    """Admins only: bring back a soft-deleted profile (fails if its email or owner is now taken)."""
    async with app.db.transaction() as conn:
        row = await store.restore(conn, profile_id)
        if row is None:
            existing = await store.by_id(conn, profile_id, include_deleted=True)
            if existing is None:
                raise NotFound(NOT_VISIBLE)
            return store.to_profile(existing)  # already live: restoring again changes nothing
    return store.to_profile(row)
