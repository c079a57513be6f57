"""Seeded demo profiles (Faker, fixed seed): the same people on every machine, loaded idempotently."""

from __future__ import annotations

import json

import asyncpg

THEMES = ("light", "dark", "system")
LOCALES = ("en", "en-US", "en-GB", "fr", "de", "es", "it", "nl", "pt-BR", "ja")
TIMEZONES = ("UTC", "Europe/London", "Europe/Paris", "America/New_York", "America/Chicago",
             "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney")


def demo_rows(count: int, seed: int) -> list[tuple[str, str, str, str, str, str, str]]:
    """Deterministic rows: (owner, display_name, email, bio, locale, timezone, preferences JSON)."""
    from faker import Faker  # deferred: only the demo loader needs it

    fake = Faker()
    fake.seed_instance(seed)
    rows = []
    for n in range(1, count + 1):
        name = fake.name()
        handle = name.lower().replace(" ", ".").replace("'", "")
        user = f"{handle}.{n}"
        preferences = {"theme": fake.random_element(THEMES),
                       "notifications": {"email": fake.boolean(), "sms": fake.boolean(chance_of_getting_true=20)},
                       "language": None, "page_size": fake.random_element((10, 20, 50))}
        rows.append((f"demo-user-{n:04d}", name[:100], f"{user}@example.com", fake.sentence(nb_words=12)[:2000],
                     fake.random_element(LOCALES), fake.random_element(TIMEZONES), json.dumps(preferences)))
    return rows


async def load_demo(conn: asyncpg.Connection, *, count: int = 200, seed: int = 42) -> int:
    """Insert the demo profiles that are missing; returns how many were inserted."""
    inserted = 0
    async with conn.transaction():
        for row in demo_rows(count, seed):
            status = await conn.execute(
                """INSERT INTO profiles (owner, display_name, email, bio, locale, timezone, preferences)
                   VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) ON CONFLICT DO NOTHING""",
                *row,
            )
            inserted += int(status.rsplit(" ", 1)[-1])
    return inserted
