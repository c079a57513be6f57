"""Who is calling over HTTP: bearer tokens, the reason a token was refused, and the anonymous caller.

`SuiteAuthBackend` replaces the SDK's `BearerAuthBackend` for one reason: a refused token keeps
*why* it was refused (missing, unknown, expired, revoked, invalid), carried in the open as the
request's user (`RefusedCaller.reason`), so the 401 can say it in `error_description` (same status,
same challenge for all; see `tokens.REASONS`). A verified token becomes the SDK's
`AuthenticatedUser`, which the SDK's auth context hands to the pipeline as before. Only the request
headers are read here: authentication happens before any body is read.

With `--allow-anonymous`, a request without `Authorization` is served as the distinct principal
`anonymous` (source `anonymous`) with the scopes the operator names in
`MCP_SUITE_ANONYMOUS_SCOPES` (default `*:read`, read-only), never as the operator's own stdio
principal; no token can be created for that name.
"""

from __future__ import annotations

import time
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from shared.auth.tokens import ANONYMOUS, REASONS, SuiteTokenVerifier
from shared.identity import Principal
from shared.pipeline import token_principal

DEFAULT_ANONYMOUS_SCOPES = "*:read"


class RefusedCaller(BaseUser):
    """No valid credential; `reason` is a key of `tokens.REASONS`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    @property
    def is_authenticated(self) -> bool:
        return False

    @property
    def display_name(self) -> str:
        return ""


class SuiteAuthBackend(AuthenticationBackend):
    """Bearer tokens through `SuiteTokenVerifier.check`, keeping the reason of a refusal."""

    def __init__(self, verifier: SuiteTokenVerifier) -> None:
        self.verifier = verifier

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser]:
        header = conn.headers.get("authorization")
        if not header:
            return AuthCredentials(), RefusedCaller("missing")
        if not header.lower().startswith("bearer "):
            return AuthCredentials(), RefusedCaller("invalid")
        verdict = (await self.verifier.check(header[7:].strip())).at(time.time())
        if verdict.access is None:
            return AuthCredentials(), RefusedCaller(verdict.reason or "unknown")
        return AuthCredentials(verdict.access.scopes), AuthenticatedUser(verdict.access)


def caller(user: Any) -> Principal | None:
    """The principal of a verified token (None for anyone else)."""
    if isinstance(user, AuthenticatedUser):
        return token_principal(user.access_token)  # the same function the pipeline's identity layer uses
    return None


def refusal_reason(user: Any) -> str:
    return user.reason if isinstance(user, RefusedCaller) else "missing"


def anonymous_principal(scopes: frozenset[str]) -> Principal:
    return Principal(ANONYMOUS, scopes, source="anonymous")


def unauthorized(reason: str, metadata_url: str) -> JSONResponse:
    """The 401: RFC 6750 challenge with the RFC 9728 metadata URL and a precise description."""
    description = REASONS.get(reason, REASONS["unknown"])
    challenge = (f'Bearer error="invalid_token", error_description="{description}", '
                 f'resource_metadata="{metadata_url}"')
    return JSONResponse({"error": "invalid_token", "error_description": description}, status_code=401,
                        headers={"WWW-Authenticate": challenge})
