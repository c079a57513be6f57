"""SQL for profiles (asyncpg). Every value is a bound parameter; column names come only from fixed lists.

Functions take a connection so the tool decides the transaction. Database refusals that input could
cause are translated into the suite's client-safe failures here, never shown raw: a unique index
becomes `Conflict` (which one, in words), a CHECK or encoding refusal becomes `InvalidInput`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from servers.profiles.models import NewProfile, Preferences, Profile
from shared.db.errors import translate_errors

log = logging.getLogger(__name__)

COLUMNS = ("id, owner, display_name, email, bio, locale, timezone, preferences, version, created_at, "
           "updated_at, deleted_at")
EDITABLE = ("display_name", "email", "bio", "locale", "timezone", "preferences")

# The unique indexes of migration 0002, and what their violation means to the caller.
_UNIQUE_MESSAGES = {
    "profiles_live_owner": "this principal already has a profile; update or delete that one instead",
    "profiles_live_email": "that email address is already used by another profile",
}


def translated_errors() -> AbstractContextManager[None]:
    """Turn the database's refusals of a value into failures a client may see."""
    return translate_errors(_UNIQUE_MESSAGES, conflict="a profile with these details already exists",
                            invalid="a value breaks a profile rule; check the field formats in the tool description")


def to_profile(row: Mapping[str, Any]) -> Profile:
    """A row as tools return it. Stored preferences were validated on the way in; a row written around
    the tools (hand-written SQL) with bad preferences is shown with defaults rather than failing reads."""
    raw = row["preferences"]
    stored = json.loads(raw) if isinstance(raw, str) else raw
    try:
        preferences = Preferences.model_validate(stored)
    except ValidationError:
        log.warning("profiles: profile %s has preferences outside the schema; showing defaults", row["id"])
        preferences = Preferences()
    return Profile(
        id=row["id"], owner=row["owner"], display_name=row["display_name"], email=row["email"], bio=row["bio"],
        locale=row["locale"], timezone=row["timezone"], preferences=preferences, version=row["version"],
        created_at=row["created_at"], updated_at=row["updated_at"], deleted_at=row["deleted_at"],
        deleted=row["deleted_at"] is not None,
    )


async def fetch(conn: asyncpg.Connection, profile_id: UUID) -> asyncpg.Record | None:
    """A profile by id, live or deleted (callers decide what a caller may see)."""
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM profiles WHERE id = $1", profile_id)


async def fetch_own(conn: asyncpg.Connection, owner: str) -> asyncpg.Record | None:
    """The owner's live profile."""
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM profiles WHERE owner = $1 AND deleted_at IS NULL", owner)


async def insert(conn: asyncpg.Connection, owner: str, profile: NewProfile) -> asyncpg.Record:
    with translated_errors():
        return await conn.fetchrow(
            f"""INSERT INTO profiles (owner, display_name, email, bio, locale, timezone, preferences)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING {COLUMNS}""",
            owner, profile.display_name, profile.email, profile.bio, profile.locale, profile.timezone,
            profile.preferences.model_dump_json(),
        )


async def update(conn: asyncpg.Connection, profile_id: UUID, expected_version: int,
                 changes: Mapping[str, Any]) -> asyncpg.Record | None:
    """Apply `changes` only if the live profile is still at `expected_version`; None when it is not."""
    assignments, values = [], [profile_id, expected_version]
    for column in EDITABLE:
        if column not in changes:
            continue
        value = changes[column]
        if column == "preferences":
            values.append(value.model_dump_json() if isinstance(value, Preferences) else json.dumps(value))
            assignments.append(f"preferences = ${len(values)}::jsonb")
        else:
            values.append(value)
            assignments.append(f"{column} = ${len(values)}")
    if not assignments:
        raise ValueError("update() needs at least one change")
    with translated_errors():
        return await conn.fetchrow(
            f"""UPDATE profiles SET {', '.join(assignments)}, version = version + 1, updated_at = now()
                WHERE id = $1 AND version = $2 AND deleted_at IS NULL RETURNING {COLUMNS}""",
            *values,
        )


async def soft_delete(conn: asyncpg.Connection, profile_id: UUID, expected_version: int) -> asyncpg.Record | None:
    """Mark deleted if still live at `expected_version`; None when it is not."""
    return await conn.fetchrow(
        f"""UPDATE profiles SET deleted_at = now(), version = version + 1, updated_at = now()
            WHERE id = $1 AND version = $2 AND deleted_at IS NULL RETURNING {COLUMNS}""",
        profile_id, expected_version,
    )


async def restore(conn: asyncpg.Connection, profile_id: UUID) -> asyncpg.Record | None:
    """Bring a deleted profile back (Conflict if its owner or email is live again); None if not deleted."""
    with translated_errors():
        return await conn.fetchrow(
            f"""UPDATE profiles SET deleted_at = NULL, version = version + 1, updated_at = now()
                WHERE id = $1 AND deleted_at IS NOT NULL RETURNING {COLUMNS}""",
            profile_id,
        )


def escape_like(text: str) -> str:
    """Make \\, % and _ literal in a LIKE pattern (used with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(conn: asyncpg.Connection, *, owner: str | None, query: str | None, locale: str | None,
                 after: tuple[datetime, UUID] | None, limit: int) -> list[asyncpg.Record]:
    """Live profiles in (created_at, id) order after `after`; up to `limit + 1` rows so the caller can
    tell whether another page exists. `owner=None` means every owner (admins).

    The substring match runs on `display_name || ' ' || email`, the expression the trigram index covers.
    """
    clauses, values = ["deleted_at IS NULL"], []

    def bind(value: Any) -> str:
        values.append(value)
        return f"${len(values)}"

    if owner is not None:
        clauses.append(f"owner = {bind(owner)}")
    if query is not None:
        clauses.append(f"(display_name || ' ' || email) ILIKE {bind('%' + escape_like(query) + '%')} ESCAPE '\\'")
    if locale is not None:
        clauses.append(f"locale = {bind(locale)}")
    if after is not None:
        clauses.append(f"(created_at, id) > ({bind(after[0])}, {bind(after[1])})")
    sql = (f"SELECT {COLUMNS} FROM profiles WHERE {' AND '.join(clauses)} "
           f"ORDER BY created_at, id LIMIT {bind(limit + 1)}")
    return await conn.fetch(sql, *values)
