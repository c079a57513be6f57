"""SQL for profiles. Every value is a bound parameter; column names come only from fixed lists."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from servers.profiles.models import Profile
from shared.errors import Conflict, InvalidInput

COLUMNS = ("id, owner, display_name, email, bio, locale, timezone, preferences, version, created_at, "
           "updated_at, deleted_at")
EDITABLE = ("display_name", "email", "bio", "locale", "timezone", "preferences")


def to_profile(row: asyncpg.Record) -> Profile:
    preferences = row["preferences"]
    if isinstance(preferences, str):
        preferences = json.loads(preferences)
    return Profile(
        id=row["id"], owner=row["owner"], display_name=row["display_name"], email=row["email"],
        bio=row["bio"], locale=row["locale"], timezone=row["timezone"], preferences=preferences,
        version=row["version"], created_at=row["created_at"], updated_at=row["updated_at"],
        deleted=row["deleted_at"] is not None,
    )


async def by_id(conn: asyncpg.Connection, profile_id: UUID, *, include_deleted: bool = False) -> asyncpg.Record | None:
    live = "" if include_deleted else " AND deleted_at IS NULL"
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM profiles WHERE id = $1{live}", profile_id)


async def by_owner(conn: asyncpg.Connection, owner: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM profiles WHERE owner = $1 AND deleted_at IS NULL", owner)


async def insert(conn: asyncpg.Connection, owner: str, fields: dict[str, Any]) -> asyncpg.Record:
    try:
        return await conn.fetchrow(
            f"""INSERT INTO profiles (owner, display_name, email, bio, locale, timezone, preferences)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING {COLUMNS}""",
            owner, fields["display_name"], fields["email"], fields["bio"], fields["locale"],
            fields["timezone"], json.dumps(fields["preferences"]),
        )
    except asyncpg.UniqueViolationError as exc:
        raise _unique_conflict(exc) from None


async def update(conn: asyncpg.Connection, profile_id: UUID, expected_version: int,
                 changes: dict[str, Any]) -> asyncpg.Record | None:
    """Apply changes only if the version still matches; None means the version moved on."""
    assignments, values = [], [profile_id, expected_version]
    for column in EDITABLE:
        if column in changes:
            values.append(json.dumps(changes[column]) if column == "preferences" else changes[column])
            cast = "::jsonb" if column == "preferences" else ""
            assignments.append(f"{column} = ${len(values)}{cast}")
    assignments += ["version = version + 1", "updated_at = now()"]
    try:
        return await conn.fetchrow(
            f"""UPDATE profiles SET {', '.join(assignments)}
                WHERE id = $1 AND version = $2 AND deleted_at IS NULL RETURNING {COLUMNS}""",
            *values,
        )
    except asyncpg.UniqueViolationError as exc:
        raise _unique_conflict(exc) from None


async def soft_delete(conn: asyncpg.Connection, profile_id: UUID, expected_version: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""UPDATE profiles SET deleted_at = now(), version = version + 1, updated_at = now()
            WHERE id = $1 AND version = $2 AND deleted_at IS NULL RETURNING {COLUMNS}""",
        profile_id, expected_version,
    )


async def restore(conn: asyncpg.Connection, profile_id: UUID) -> asyncpg.Record | None:
    try:
        return await conn.fetchrow(
            f"""UPDATE profiles SET deleted_at = NULL, version = version + 1, updated_at = now()
                WHERE id = $1 AND deleted_at IS NOT NULL RETURNING {COLUMNS}""",
            profile_id,
        )
    except asyncpg.UniqueViolationError as exc:
        raise _unique_conflict(exc) from None


def _unique_conflict(exc: asyncpg.UniqueViolationError) -> Conflict:
    if "owner" in (exc.constraint_name or ""):
        return Conflict("that principal already has a profile")
    return Conflict("that email address is already used by another profile")


def escape_like(text: str) -> str:
    """Make %, _ and \\ literal in a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def encode_cursor(row: asyncpg.Record) -> str:
    raw = json.dumps({"c": row["created_at"].isoformat(), "i": str(row["id"])}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        return datetime.fromisoformat(data["c"]), UUID(data["i"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidInput("cursor is not valid; pass back next_cursor exactly as returned") from None


async def search(conn: asyncpg.Connection, *, query: str | None, locale: str | None, owner: str | None,
                 after: tuple[datetime, UUID] | None, limit: int) -> list[asyncpg.Record]:
    clauses, values = ["deleted_at IS NULL"], []
    if owner is not None:
        values.append(owner)
        clauses.append(f"owner = ${len(values)}")
    if query is not None:
        values.append(f"%{escape_like(query)}%")
        clauses.append(f"(display_name || ' ' || email) ILIKE ${len(values)}")
    if locale is not None:
        values.append(locale)
        clauses.append(f"locale = ${len(values)}")
    if after is not None:
        values += [after[0], after[1]]
        clauses.append(f"(created_at, id) > (${len(values) - 1}, ${len(values)})")
    values.append(limit + 1)
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM profiles WHERE {' AND '.join(clauses)} ORDER BY created_at, id LIMIT ${len(values)}",
        *values,
    )
