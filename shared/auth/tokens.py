"""Who may call the HTTP transports: opaque API tokens kept in PostgreSQL, and optional JWTs.

Opaque tokens (`mcps_` + 256 random bits) are shown once when created and stored only as SHA-256.
Why not argon2 or bcrypt: those slow hashes protect low-entropy secrets (passwords) from guessing;
a 256-bit random token cannot be guessed, so a slow hash would only add tens of milliseconds of CPU
to every request and prevent an indexed lookup. Each token carries a principal, scopes, an optional
expiry, and can be revoked; `last_used_at` is refreshed at most once a minute.

Verification results are cached for `MCP_SUITE_TOKEN_CACHE_S` seconds (default 1) so a busy client
does not cost a database round trip per request; a revocation therefore takes effect on every
replica within that time. Expiry is checked on every request regardless of the cache.

A refused token says why (`Verdict.reason`: missing, unknown, expired, revoked, invalid), for the
401's `error_description`. That tells an attacker nothing useful: telling "revoked" from "unknown"
needs the 256-bit secret in the first place.

Tokens may also come from the environment (`MCP_SUITE_API_TOKENS`, for compose deployments): they
are synchronised into the same table at start-up (`sync_env_tokens`). A revoked one stays revoked
across restarts; re-issuing means a new secret (or `tokens create`), a deliberate operator action.

JWTs (for deployments behind an identity provider) are verified by `shared.auth.jwt`; what either
verifier answers is a `Verdict` (`shared.auth.verdict`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import asyncpg
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthenticationError

from shared.auth.jwt import JwtSettings, JwtVerifier
from shared.auth.verdict import PRINCIPAL_RE, Verdict
from shared.auth.verdict import REASONS as REASONS  # the HTTP layers read the reasons from here
from shared.config import SCOPE_RE, AuthSettings, load

log = logging.getLogger(__name__)

TOKEN_PREFIX = "mcps_"
ISSUER = "mcp-suite"
_TOKEN_RE = re.compile(r"^mcps_[A-Za-z0-9_-]{43}$")
_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
TOUCH_EVERY_S = 60
ANONYMOUS = "anonymous"  # the principal of callers without a token; no token may claim it


class TokenStoreUnavailable(AuthenticationError):
    """The token store could not be asked; the HTTP layer answers 503, not 401."""


@dataclass(frozen=True)
class TokenInfo:
    """What `tokens list` shows: everything but the secret."""

    id: str
    principal: str
    scopes: tuple[str, ...]
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def status(self, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id, "principal": self.principal, "scopes": list(self.scopes), "label": self.label,
            "status": self.status(), "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at), "last_used_at": iso(self.last_used_at),
        }


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_duration(text: str) -> timedelta | None:
    """`30d`, `12h`, `45m`, `3600s`, `2w` → a duration; `never` → None (no expiry)."""
    cleaned = text.strip().lower()
    if cleaned == "never":
        return None
    match = _DURATION_RE.match(cleaned)
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(f"invalid duration {text!r}; use e.g. 30d, 12h, 45m, 2w or never")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def check_known_scopes(scopes: Iterable[str], known: Iterable[str]) -> None:
    """Refuse a scope that grants nothing that exists (a typo such as `profile:raed`).

    A wildcard is kept when it matches at least one known scope (`*:read`, `profiles:*`, `*`).
    """
    known = sorted(set(known))
    unknown = [scope for scope in scopes if not any(fnmatchcase(k, scope) for k in known)]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; valid scopes: {' '.join(known)} "
                         "(wildcards such as '*:read' are allowed)")


def parse_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Space- or comma-separated `server:verb` scopes (wildcards allowed, e.g. `*:read`)."""
    items = scopes.replace(",", " ").split() if isinstance(scopes, str) else list(scopes)
    if not items:
        raise ValueError("a token needs at least one scope, e.g. 'profiles:read'")
    for scope in items:
        if not SCOPE_RE.match(scope):
            raise ValueError(f"invalid scope {scope!r}; scopes look like 'profiles:read' or '*:read'")
    return tuple(sorted(set(items)))


def check_principal(principal: str) -> str:
    if not PRINCIPAL_RE.match(principal):
        raise ValueError("a principal is 1-128 characters of letters, digits and . _ @ : + -")
    if principal == ANONYMOUS:
        raise ValueError(f"{ANONYMOUS!r} is the principal of callers without a token; choose another name")
    return principal


def _info(row: asyncpg.Record) -> TokenInfo:
    return TokenInfo(
        id=row["id"], principal=row["principal"], scopes=tuple(row["scopes"]), label=row["label"],
        created_at=row["created_at"], expires_at=row["expires_at"], revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


async def create_token(
    conn: asyncpg.Connection,
    *,
    principal: str,
    scopes: str | Iterable[str],
    expires_in: timedelta | None,
    label: str | None = None,
) -> tuple[str, TokenInfo]:
    """Create a token; returns (the secret, shown once; its stored description)."""
    check_principal(principal)
    scope_list = parse_scopes(scopes)
    if label is not None and len(label) > 200:
        raise ValueError("a label is at most 200 characters")
    secret = new_secret()
    token_id = "tok_" + secrets.token_hex(6)
    row = await conn.fetchrow(
        """INSERT INTO api_tokens (id, token_hash, principal, scopes, label, expires_at)
           VALUES ($1, $2, $3, $4, $5, now() + $6::interval) RETURNING *""",
        token_id, hash_token(secret), principal, list(scope_list), label, expires_in,
    )
    return secret, _info(row)


async def list_tokens(conn: asyncpg.Connection, *, principal: str | None = None) -> list[TokenInfo]:
    rows = await conn.fetch(
        "SELECT * FROM api_tokens WHERE $1::text IS NULL OR principal = $1 ORDER BY created_at, id", principal
    )
    return [_info(row) for row in rows]


async def revoke_token(conn: asyncpg.Connection, token_id: str) -> bool:
    """Revoke by id; False if there is no such token. Revoking twice keeps the first time."""
    row = await conn.fetchrow(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING id", token_id
    )
    return row is not None


ENV_LABEL = "from MCP_SUITE_API_TOKENS"


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_env_tokens(text: str) -> list[tuple[str, tuple[str, ...], str]]:
    """`principal|scopes|secret` entries separated by `;` or newlines (e.g. from a compose `.env`)."""
    entries = []
    for raw in text.replace("\n", ";").split(";"):
        if not raw.strip():
            continue
        parts = [part.strip() for part in raw.split("|")]
        if len(parts) != 3 or not _TOKEN_RE.match(parts[2]):
            raise ValueError("MCP_SUITE_API_TOKENS entries look like 'principal|scope scope|mcps_<43 chars>'")
        entries.append((check_principal(parts[0]), parse_scopes(parts[1]), parts[2]))
    return entries


async def sync_env_tokens(conn: asyncpg.Connection, text: str) -> int:
    """Make the tokens listed in the environment exactly the active environment tokens.

    Listed ones are stored (hashed, no expiry) or updated; environment tokens no longer listed are
    revoked, so removing a line and restarting is how such a token is withdrawn. A revoked token
    stays revoked even when its line is still (or again) listed: revocation is never undone by a
    restart; the operator re-issues with a new secret. Returns the count.
    """
    entries = parse_env_tokens(text)
    ids = []
    async with conn.transaction():
        for principal, scopes, secret in entries:
            digest = hash_token(secret)
            token_id = "env_" + digest.hex()[:12]
            ids.append(token_id)
            await conn.execute(
                """INSERT INTO api_tokens (id, token_hash, principal, scopes, label) VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (id) DO UPDATE SET principal = EXCLUDED.principal, scopes = EXCLUDED.scopes,
                                                  expires_at = NULL""",
                token_id, digest, principal, list(scopes), ENV_LABEL,
            )
        await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE label = $1 AND revoked_at IS NULL AND id <> ALL($2)",
            ENV_LABEL, ids,
        )
    return len(entries)


class OpaqueTokenVerifier:
    """The SDK `TokenVerifier` for `mcps_` tokens, backed by the `api_tokens` table."""

    def __init__(self, url: str, *, cache_seconds: float = 1.0, max_cached: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.max_cached = max_cached
        self.clock = clock  # for the cache window only; expiry is wall-clock time (`time.time`)
        self._pool: asyncpg.Pool | None = None
        self._cache: dict[bytes, tuple[float, Verdict]] = {}

    async def _connection_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4, command_timeout=5.0, timeout=5.0)
        return self._pool

    async def verify_token(self, token: str) -> AccessToken | None:
        return (await self.check(token)).access

    async def check(self, token: str) -> Verdict:
        if not _TOKEN_RE.match(token):
            return Verdict(None, "unknown")
        digest = hash_token(token)
        now = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1].at(time.time())
        try:
            pool = await self._connection_pool()
            async with pool.acquire(timeout=5.0) as conn:
                verdict = await self._lookup(conn, digest)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("token store unavailable (%s)", type(exc).__name__)
            raise TokenStoreUnavailable("the token store is unavailable; retry shortly") from None
        if self.cache_seconds > 0:
            if len(self._cache) >= self.max_cached:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_seconds, verdict)
        return verdict

    async def _lookup(self, conn: asyncpg.Connection, digest: bytes) -> Verdict:
        row = await conn.fetchrow(
            """SELECT id, principal, scopes, expires_at, revoked_at IS NOT NULL AS revoked,
                      expires_at IS NOT NULL AND expires_at <= now() AS expired,
                      last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2) AS stale
               FROM api_tokens WHERE token_hash = $1""",
            digest, TOUCH_EVERY_S,
        )
        if row is None:
            return Verdict(None, "unknown")
        if row["revoked"] or row["expired"]:
            return Verdict(None, "revoked" if row["revoked"] else "expired")
        if row["stale"]:
            await conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", row["id"])
        expires = row["expires_at"]
        return Verdict(AccessToken(
            token=row["id"],  # the id, not the secret: nothing downstream needs the secret
            client_id=row["principal"],
            scopes=list(row["scopes"]),
            expires_at=int(expires.timestamp()) if expires else None,
            subject=row["principal"],
            claims={"iss": ISSUER, "token_id": row["id"]},
        ))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class SuiteTokenVerifier:
    """The verifier the HTTP app gives the SDK: opaque tokens first, then JWTs if configured."""

    def __init__(self, opaque: OpaqueTokenVerifier, jwt_verifier: JwtVerifier | None = None) -> None:
        """`jwt_verifier`: a `shared.auth.jwt.JwtVerifier` when an identity provider is configured."""
        self.opaque = opaque
        self.jwt = jwt_verifier

    @classmethod
    def from_env(cls, database_url: str) -> SuiteTokenVerifier:
        cache = load(AuthSettings).token_cache_s
        settings = JwtSettings.from_env()
        return cls(OpaqueTokenVerifier(database_url, cache_seconds=cache),
                   JwtVerifier(settings) if settings else None)

    @property
    def issuer(self) -> str | None:
        return self.jwt.settings.issuer if self.jwt else None

    async def verify_token(self, token: str) -> AccessToken | None:
        return (await self.check(token)).access

    async def check(self, token: str) -> Verdict:
        if token.startswith(TOKEN_PREFIX):
            return await self.opaque.check(token)
        if self.jwt is not None and token.count(".") == 2:
            return await self.jwt.check(token)
        return Verdict(None, "invalid" if token.count(".") == 2 else "unknown")

    async def close(self) -> None:
        await self.opaque.close()
