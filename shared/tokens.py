"""Who may call the HTTP transports: opaque API tokens kept in PostgreSQL, and optional JWTs.

Opaque tokens (`mcps_` + 256 random bits) are shown once when created and stored only as SHA-256.
Why not argon2 or bcrypt: those slow hashes protect low-entropy secrets (passwords) from guessing;
a 256-bit random token cannot be guessed, so a slow hash would only add tens of milliseconds of CPU
to every request and prevent an indexed lookup. Each token carries a principal, scopes, an optional
expiry, and can be revoked; `last_used_at` is refreshed at most once a minute.

Verification results are cached for `MCP_SUITE_TOKEN_CACHE_S` seconds (default 1) so a busy client
does not cost a database round trip per request; a revocation therefore takes effect on every
replica within that time. Expiry is checked on every request regardless of the cache.

Tokens may also come from the environment (`MCP_SUITE_API_TOKENS`, for compose deployments): they
are synchronised into the same table at start-up (`sync_env_tokens`).

JWTs (for deployments behind an identity provider) are checked with PyJWT: signature against keys
from a file or the environment (PEM or JWKS), `exp`, `iss` and `aud` (the audience is mandatory, so
a token minted for another service is refused).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import jwt
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthenticationError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "mcps_"
ISSUER = "mcp-suite"
_TOKEN_RE = re.compile(r"^mcps_[A-Za-z0-9_-]{43}$")
_SCOPE_RE = re.compile(r"^(\*|[a-z0-9_*?-]+:[a-z0-9_*?-]+)$")
_PRINCIPAL_RE = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}$")
_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
TOUCH_EVERY_S = 60


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


def parse_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Space- or comma-separated `server:verb` scopes (wildcards allowed, e.g. `*:read`)."""
    items = scopes.replace(",", " ").split() if isinstance(scopes, str) else list(scopes)
    if not items:
        raise ValueError("a token needs at least one scope, e.g. 'profiles:read'")
    for scope in items:
        if not _SCOPE_RE.match(scope):
            raise ValueError(f"invalid scope {scope!r}; scopes look like 'profiles:read' or '*:read'")
    return tuple(sorted(set(items)))


def check_principal(principal: str) -> str:
    if not _PRINCIPAL_RE.match(principal):
        raise ValueError("a principal is 1-128 characters of letters, digits and . _ @ : + -")
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
    revoked, so removing a line and restarting is how such a token is withdrawn. Returns the count.
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
                                                  revoked_at = NULL, expires_at = NULL""",
                token_id, digest, principal, list(scopes), ENV_LABEL,
            )
        await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE label = $1 AND revoked_at IS NULL AND id <> ALL($2)",
            ENV_LABEL, ids,
        )
    return len(entries)


class OpaqueTokenVerifier:
    """The SDK `TokenVerifier` for `mcps_` tokens, backed by the `api_tokens` table."""

    def __init__(self, url: str, *, cache_seconds: float = 1.0, max_cached: int = 10_000) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.max_cached = max_cached
        self._pool: asyncpg.Pool | None = None
        self._cache: dict[bytes, tuple[float, AccessToken | None]] = {}

    async def _connection_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4, command_timeout=5.0, timeout=5.0)
        return self._pool

    async def verify_token(self, token: str) -> AccessToken | None:
        if not _TOKEN_RE.match(token):
            return None
        digest = hash_token(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            pool = await self._connection_pool()
            async with pool.acquire(timeout=5.0) as conn:
                access = await self._lookup(conn, digest)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.error("token store unavailable (%s)", type(exc).__name__)
            raise TokenStoreUnavailable("the token store is unavailable; retry shortly") from None
        if self.cache_seconds > 0:
            if len(self._cache) >= self.max_cached:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_seconds, access)
        return access

    async def _lookup(self, conn: asyncpg.Connection, digest: bytes) -> AccessToken | None:
        row = await conn.fetchrow(
            """SELECT id, principal, scopes, expires_at,
                      revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AS active,
                      last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2) AS stale
               FROM api_tokens WHERE token_hash = $1""",
            digest, TOUCH_EVERY_S,
        )
        if row is None or not row["active"]:
            return None
        if row["stale"]:
            await conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", row["id"])
        expires = row["expires_at"]
        return AccessToken(
            token=row["id"],  # the id, not the secret: nothing downstream needs the secret
            client_id=row["principal"],
            scopes=list(row["scopes"]),
            expires_at=int(expires.timestamp()) if expires else None,
            subject=row["principal"],
            claims={"iss": ISSUER, "token_id": row["id"]},
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


@dataclass(frozen=True)
class JwtSettings:
    issuer: str
    audience: str
    keys: str  # PEM text or JWKS JSON
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    principal_claim: str = "sub"
    leeway_s: float = 30.0

    @classmethod
    def from_env(cls) -> JwtSettings | None:
        issuer = os.environ.get("MCP_SUITE_JWT_ISSUER")
        if not issuer:
            return None
        audience = os.environ.get("MCP_SUITE_JWT_AUDIENCE")
        if not audience:
            raise ValueError("MCP_SUITE_JWT_AUDIENCE must be set with MCP_SUITE_JWT_ISSUER (the audience is checked)")
        keys_file = os.environ.get("MCP_SUITE_JWT_KEYS_FILE")
        keys = Path(keys_file).read_text(encoding="utf-8") if keys_file else os.environ.get("MCP_SUITE_JWT_KEYS", "")
        if not keys.strip():
            raise ValueError("set MCP_SUITE_JWT_KEYS_FILE (PEM or JWKS) or MCP_SUITE_JWT_KEYS for JWT verification")
        algorithms = tuple(os.environ.get("MCP_SUITE_JWT_ALGORITHMS", "RS256 ES256").replace(",", " ").split())
        if not algorithms or any(a.lower() == "none" for a in algorithms):
            raise ValueError("MCP_SUITE_JWT_ALGORITHMS must name real signature algorithms")
        return cls(issuer=issuer, audience=audience, keys=keys, algorithms=algorithms,
                   principal_claim=os.environ.get("MCP_SUITE_JWT_PRINCIPAL_CLAIM", "sub"))


class JwtVerifier:
    """Verify JWT access tokens: signature, expiry, issuer and audience, then map claims to a principal."""

    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        text = settings.keys.strip()
        self._jwks: jwt.PyJWKSet | None = None
        self._pem: bytes | None = None
        if text.startswith("{"):
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(text))
        else:
            self._pem = text.encode()

    def _key(self, token: str) -> Any:
        if self._pem is not None:
            return self._pem
        assert self._jwks is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._jwks.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise jwt.InvalidKeyError("no key matches the token's kid")

    async def verify_token(self, token: str) -> AccessToken | None:
        s = self.settings
        try:
            claims = jwt.decode(
                token, self._key(token), algorithms=list(s.algorithms), audience=s.audience, issuer=s.issuer,
                leeway=s.leeway_s, options={"require": ["exp", "iss", "aud", s.principal_claim]},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            log.warning("JWT refused: %s", type(exc).__name__)
            return None
        principal = claims.get(s.principal_claim)
        if not isinstance(principal, str) or not _PRINCIPAL_RE.match(principal):
            log.warning("JWT refused: unusable %s claim", s.principal_claim)
            return None
        raw = claims.get("scope", claims.get("scp", ""))
        scopes = raw.split() if isinstance(raw, str) else [str(x) for x in raw] if isinstance(raw, list) else []
        return AccessToken(
            token=str(claims.get("jti", "jwt")), client_id=principal, scopes=scopes, expires_at=int(claims["exp"]),
            resource=s.audience, subject=principal, claims={"iss": s.issuer},
        )


class SuiteTokenVerifier:
    """The verifier the HTTP app gives the SDK: opaque tokens first, then JWTs if configured."""

    def __init__(self, opaque: OpaqueTokenVerifier, jwt_verifier: JwtVerifier | None = None) -> None:
        self.opaque = opaque
        self.jwt = jwt_verifier

    @classmethod
    def from_env(cls, database_url: str) -> SuiteTokenVerifier:
        cache = float(os.environ.get("MCP_SUITE_TOKEN_CACHE_S", "1.0"))
        settings = JwtSettings.from_env()
        return cls(OpaqueTokenVerifier(database_url, cache_seconds=cache),
                   JwtVerifier(settings) if settings else None)

    @property
    def issuer(self) -> str | None:
        return self.jwt.settings.issuer if self.jwt else None

    async def verify_token(self, token: str) -> AccessToken | None:
        if token.startswith(TOKEN_PREFIX):
            return await self.opaque.verify_token(token)
        if self.jwt is not None and token.count(".") == 2:
            return await self.jwt.verify_token(token)
        return None

    async def close(self) -> None:
        await self.opaque.close()
