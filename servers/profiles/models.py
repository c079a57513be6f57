"""What a profile may contain: pydantic types that reject bad input before any SQL runs.

The same rules are CHECK constraints in migration 0002, so a bug here still cannot store bad data.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Literal
from uuid import UUID
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Z][A-Za-z]{1,3})?$")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("must be an email address like name@example.com")
    return value


def _locale(value: str) -> str:
    if not _LOCALE.match(value):
        raise ValueError("must be a language tag like en or en-US")
    return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError("must be an IANA timezone like Europe/Paris or UTC")
    return value


DisplayName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_nul)]
Email = Annotated[str, Field(min_length=3, max_length=254), AfterValidator(_no_nul), AfterValidator(_email)]
Bio = Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)]
Locale = Annotated[str, Field(min_length=2, max_length=12), AfterValidator(_no_nul), AfterValidator(_locale)]
Timezone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_nul), AfterValidator(_timezone)]
Owner = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
SearchText = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_nul)]
Cursor = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Version = Annotated[int, Field(ge=1, le=2_147_483_647)]


class NotificationPreferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: bool = True
    sms: bool = False


class Preferences(BaseModel):
    """The preferences object's schema; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    theme: Literal["light", "dark", "system"] = "system"
    notifications: NotificationPreferences = Field(default_factory=NotificationPreferences)
    language: Locale | None = None
    page_size: int = Field(default=20, ge=10, le=100)


class Profile(BaseModel):
    """A profile as tools return it."""

    id: UUID
    owner: str
    display_name: str
    email: str
    bio: str
    locale: str
    timezone: str
    preferences: dict[str, object]
    version: int
    created_at: datetime
    updated_at: datetime
    deleted: bool = False


class ProfilePage(BaseModel):
    """One page of search results; pass `next_cursor` back to get the next page."""

    profiles: list[Profile]
    next_cursor: str | None = None
