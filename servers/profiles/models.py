"""What a profile may hold: the validation every tool argument passes before any SQL runs.

Every rule here raises a message written for the model and never echoes the rejected value (a 1 MB
string must not come back in the error). Nothing is trimmed or case-folded: a value is stored exactly
as given or refused. The table's CHECK constraints (servers/profiles/migrations/0002_user_profiles.sql) repeat the
coarse rules as a last line of defence; these rules are always at least as strict.

Email syntax is checked by hand (a conservative ASCII subset of RFC 5321 mailbox syntax) because the
well-kept `email-validator` package is not a dependency of the suite; it would be the better choice
for internationalised addresses, which are refused here.

The search cursor lives here too: it is a value the client round-trips, so it is validated like any
other input. It is signed (HMAC) and bound to the caller and the search it came from, so a tampered,
forged or re-used cursor is refused as `invalid_input`. It grants nothing: every page re-applies the
caller's access rules.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.cursors import open_cursor, sign_cursor
from shared.errors import InvalidInput

MAX_VERSION = 2_147_483_647  # the column is a PostgreSQL integer

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LOCALE = re.compile(r"[a-z]{2,3}(-(?:[A-Z]{2}|[A-Z][a-z]{3}))?")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TOP_LEVEL = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")


def _text(value: str, *, multiline: bool = False) -> str:
    """Refuse what PostgreSQL text cannot store (NUL, unpaired surrogates) and invisible control characters."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\x00)")
    if _SURROGATE.search(value):
        raise ValueError("must be valid Unicode text (it contains an unpaired surrogate)")
    pattern = _CONTROL_EXCEPT_LINES if multiline else _CONTROL
    if pattern.search(value):
        allowed = "; only newlines and tabs are allowed" if multiline else ""
        raise ValueError(f"must not contain control characters{allowed}")
    return value


def _single_line(value: str) -> str:
    return _text(value)


def _multiline(value: str) -> str:
    return _text(value, multiline=True)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain at least one visible character")
    return value


def _email(value: str) -> str:
    _text(value)
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("must be an email address like name@example.com")
    if len(local) > 64:
        raise ValueError("the part before @ must be at most 64 characters")
    if not _EMAIL_LOCAL.fullmatch(local):
        raise ValueError("the part before @ may use letters, digits, dots (not leading, trailing or doubled) "
                         "and !#$%&'*+/=?^_`{|}~- only")
    labels = domain.split(".")
    if (len(domain) > 253 or len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
            or not _TOP_LEVEL.fullmatch(labels[-1])):
        raise ValueError("the part after @ must be a domain name like example.com (ASCII letters, digits, hyphens)")
    return value


def _locale(value: str) -> str:
    _text(value)
    if not _LOCALE.fullmatch(value):
        raise ValueError("must be a language tag like 'en', 'en-US' or 'zh-Hant' (language lower-case, "
                         "region upper-case, script capitalised)")
    return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(value: str) -> str:
    _text(value)
    if value not in _zones():
        raise ValueError("must be an IANA timezone name like 'Europe/Paris' or 'UTC' (names are case-sensitive)")
    return value


def _names(keys: list[Any]) -> str:
    shown = ", ".join(repr(str(key)[:40]) for key in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


ProfileId = Annotated[UUID, Field(description="A profile id (UUID), as returned by the other tools.")]
DisplayName = Annotated[str, Field(min_length=1, max_length=100, description="1-100 characters, one line."),
                        AfterValidator(_single_line), AfterValidator(_not_blank)]
Email = Annotated[str, Field(min_length=3, max_length=254, description="An email address, unique among profiles "
                             "(case-insensitive)."), AfterValidator(_email)]
Bio = Annotated[str, Field(max_length=2000, description="Free text, at most 2000 characters."),
                AfterValidator(_multiline)]
Locale = Annotated[str, Field(min_length=2, max_length=16, description="A language tag: 'en', 'en-US', 'zh-Hant'."),
                   AfterValidator(_locale)]
Timezone = Annotated[str, Field(min_length=1, max_length=64, description="An IANA timezone, e.g. 'Europe/Paris'."),
                     AfterValidator(_timezone)]
Owner = Annotated[str, Field(min_length=1, max_length=200, description="A principal id (admins only)."),
                  AfterValidator(_single_line)]
SearchText = Annotated[str, Field(min_length=1, max_length=100, description="Text to find in names and emails; "
                                  "matched literally (% and _ are not wildcards)."), AfterValidator(_single_line)]
Cursor = Annotated[str, Field(min_length=1, max_length=512, description="next_cursor from the previous page.")]
Version = Annotated[int, Field(strict=True, ge=1, le=MAX_VERSION, description="The profile's current version.")]
PageLimit = Annotated[int, Field(strict=True, ge=1, le=100, description="Profiles per page, 1-100.")]


class _Strict(BaseModel):
    """Objects with a fixed set of keys: an unknown key is an error that names it (clipped) and the allowed ones."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise ValueError(f"unknown key(s) {_names(unknown)}; allowed: {', '.join(cls.model_fields)}")
        return data


class NotificationPreferences(_Strict):
    email: bool = Field(default=True, strict=True)
    sms: bool = Field(default=False, strict=True)


class Preferences(_Strict):
    """The preferences object. Unknown keys are refused; a key left out takes its default."""

    theme: Literal["light", "dark", "system"] = "system"
    notifications: NotificationPreferences = Field(default_factory=NotificationPreferences)
    language: Locale | None = Field(default=None, description="UI language; null means the profile's locale.")
    page_size: int = Field(default=20, strict=True, ge=10, le=100)


class NewProfile(BaseModel):
    """A complete, valid set of editable fields (the demo loader builds rows through this)."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName
    email: Email
    bio: Bio = ""
    locale: Locale = "en"
    timezone: Timezone = "UTC"
    preferences: Preferences = Field(default_factory=Preferences)


class Profile(BaseModel):
    """A profile as the tools return it."""

    id: UUID
    owner: str
    display_name: str
    email: str
    bio: str
    locale: str
    timezone: str
    preferences: Preferences
    version: int = Field(description="Pass this as expected_version to update or delete the profile.")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    deleted: bool = False


class ProfilePage(BaseModel):
    """One page of search results; pass `next_cursor` back as `cursor` for the next page (null: no more)."""

    profiles: list[Profile]
    next_cursor: str | None = None


BAD_CURSOR = "cursor is not valid for this search; pass next_cursor back exactly as returned, with the same " \
             "query and locale, or leave it out to start again"


def encode_cursor(key: bytes, binding: str, created_at: datetime, profile_id: UUID) -> str:
    """An opaque position after (created_at, id), valid only for the same `binding` (caller + search)."""
    return sign_cursor(key, binding, [1, created_at.isoformat(), str(profile_id)])


def decode_cursor(key: bytes, binding: str, cursor: str) -> tuple[datetime, UUID]:
    """The position in a cursor this server issued for `binding`; anything else is `InvalidInput`."""
    payload = open_cursor(key, binding, cursor, BAD_CURSOR)
    try:
        version, created_at, profile_id = payload
        position = datetime.fromisoformat(created_at), UUID(profile_id)
    except (ValueError, TypeError):
        raise InvalidInput(BAD_CURSOR) from None
    if version != 1 or position[0].tzinfo is None:
        raise InvalidInput(BAD_CURSOR)
    return position
