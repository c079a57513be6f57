"""JWT access tokens, for deployments behind an identity provider (next to the opaque tokens of `shared.auth.tokens`).

Checked with PyJWT: signature against keys from a file or the environment (PEM or JWKS), `exp`,
`iss` and `aud` (the audience is mandatory, so a token minted for another service is refused).
A JWT's principal is `<issuer>#<subject>`: `#` can never appear in an opaque token's principal,
so no `sub` claim can impersonate one, and subjects of two issuers stay apart.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from mcp.server.auth.provider import AccessToken

from shared.auth.verdict import JWT_SEPARATOR, PRINCIPAL_RE, Verdict
from shared.config import AuthSettings, load

log = logging.getLogger(__name__)


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
        """From the `AuthSettings` section; None when no issuer is configured."""
        auth = load(AuthSettings)
        if not auth.jwt_issuer:
            return None
        if not auth.jwt_audience:
            raise ValueError("MCP_SUITE_JWT_AUDIENCE must be set with MCP_SUITE_JWT_ISSUER (the audience is checked)")
        keys = Path(auth.jwt_keys_file).read_text(encoding="utf-8") if auth.jwt_keys_file else (auth.jwt_keys or "")
        if not keys.strip():
            raise ValueError("set MCP_SUITE_JWT_KEYS_FILE (PEM or JWKS) or MCP_SUITE_JWT_KEYS for JWT verification")
        algorithms = auth.jwt_algorithms
        if not algorithms or any(a.lower() == "none" for a in algorithms):
            raise ValueError("MCP_SUITE_JWT_ALGORITHMS must name real signature algorithms")
        return cls(issuer=auth.jwt_issuer, audience=auth.jwt_audience, keys=keys, algorithms=algorithms,
                   principal_claim=auth.jwt_principal_claim)


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
        return (await self.check(token)).access

    async def check(self, token: str) -> Verdict:
        s = self.settings
        try:
            claims = jwt.decode(
                token, self._key(token), algorithms=list(s.algorithms), audience=s.audience, issuer=s.issuer,
                leeway=s.leeway_s, options={"require": ["exp", "iss", "aud", s.principal_claim]},
            )
        except jwt.ExpiredSignatureError:
            return Verdict(None, "expired")
        except (jwt.PyJWTError, ValueError) as exc:
            log.warning("JWT refused: %s", type(exc).__name__)
            return Verdict(None, "invalid")
        subject = claims.get(s.principal_claim)
        if not isinstance(subject, str) or not PRINCIPAL_RE.match(subject):
            log.warning("JWT refused: unusable %s claim", s.principal_claim)
            return Verdict(None, "invalid")
        raw = claims.get("scope", claims.get("scp", ""))
        scopes = raw.split() if isinstance(raw, str) else [str(x) for x in raw] if isinstance(raw, list) else []
        principal = jwt_principal(s.issuer, subject)
        return Verdict(AccessToken(
            token=str(claims.get("jti", "jwt")), client_id=principal, scopes=scopes, expires_at=int(claims["exp"]),
            resource=s.audience, subject=subject, claims={"iss": s.issuer},
        ))


def jwt_principal(issuer: str, subject: str) -> str:
    """`<issuer>#<subject>`: never equal to an opaque token's principal, nor to another issuer's subject."""
    return f"{issuer}{JWT_SEPARATOR}{subject}"
