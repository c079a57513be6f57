"""Seeded demo profiles: the same people on every machine, loaded idempotently.

Each row is generated from its own seed (`seed`, row number), so row N is the same whatever `count`
is: loading 50 and later 200 adds exactly the missing 150. Ids are derived from the seed too, so a
re-run finds every row already there (even one deleted since) and inserts nothing. Every row is built
through `NewProfile`, so demo data obeys the same rules as data entered through the tools; emails use
the reserved example.* domains (RFC 2606) and can never reach a real mailbox.
"""

from __future__ import annotations

import re
from uuid import UUID

import asyncpg

from servers.profiles.models import NewProfile, NotificationPreferences, Preferences

THEMES = ("light", "dark", "system")
LOCALES = ("en", "en-US", "en-GB", "fr", "fr-CA", "de", "de-AT", "es", "es-MX", "it", "nl", "pt-BR", "ja", "zh-Hant")
TIMEZONES = ("UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "America/New_York", "America/Chicago",
             "America/Los_Angeles", "America/Sao_Paulo", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney")
PAGE_SIZES = (10, 20, 25, 50, 100)

DemoRow = tuple[UUID, str, NewProfile]  # (id, owner, fields)


def demo_owner(number: int) -> str:
    return f"demo-user-{number:04d}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower()) or "user"


def demo_rows(count: int, seed: int) -> list[DemoRow]:
    """The first `count` demo profiles for `seed`: deterministic, valid, with unique owners and emails."""
    from faker import Faker  # deferred: only the demo loader needs it, and it is slow to import

    if count < 0:
        raise ValueError("count must not be negative")
    fake = Faker("en_US")
    rows: list[DemoRow] = []
    for number in range(1, count + 1):
        fake.seed_instance(f"mcp-suite-demo:{seed}:{number}")
        profile_id = UUID(fake.uuid4())
        first, last = fake.first_name(), fake.last_name()
        locale = fake.random_element(LOCALES)
        preferences = Preferences(
            theme=fake.random_element(THEMES),
            notifications=NotificationPreferences(email=fake.boolean(chance_of_getting_true=70),
                                                  sms=fake.boolean(chance_of_getting_true=20)),
            language=locale if fake.boolean(chance_of_getting_true=30) else None,
            page_size=fake.random_element(PAGE_SIZES),
        )
        profile = NewProfile(
            display_name=f"{first} {last}",
            email=f"{_slug(first)}.{_slug(last)}.{number:04d}@{fake.safe_domain_name()}",
            bio=fake.paragraph(nb_sentences=3)[:2000],
            locale=locale,
            timezone=fake.random_element(TIMEZONES),
            preferences=preferences,
        )
        rows.append((profile_id, demo_owner(number), profile))
    return rows


async def load_demo(conn: asyncpg.Connection, *, count: int = 200, seed: int = 42) -> int:
    """Insert the demo profiles that are missing, in one statement; returns how many were inserted.

    A row whose id, owner or email is already taken is skipped, so re-running never duplicates and
    never overwrites a profile someone has edited.
    """
    rows = demo_rows(count, seed)
    if not rows:
        return 0
    status = await conn.execute(
        """INSERT INTO profiles (id, owner, display_name, email, bio, locale, timezone, preferences)
           SELECT id, owner, display_name, email, bio, locale, timezone, preferences::jsonb
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::text[]) AS demo(id, owner, display_name, email, bio, locale, timezone, preferences)
           ORDER BY owner
           ON CONFLICT DO NOTHING""",
        [row[0] for row in rows], [row[1] for row in rows], [row[2].display_name for row in rows],
        [row[2].email for row in rows], [row[2].bio for row in rows], [row[2].locale for row in rows],
        [row[2].timezone for row in rows], [row[2].preferences.model_dump_json() for row in rows],
    )
    return int(status.rsplit(" ", 1)[-1])
