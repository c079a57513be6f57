"""What a token check answers, shared by the opaque-token and the JWT verifiers.

Its own module so both verifiers import it and `shared.auth.tokens` can import `shared.auth.jwt`
(to offer JWTs next to opaque tokens) without `jwt` importing `tokens` back: imports point one way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mcp.server.auth.provider import AccessToken

PRINCIPAL_RE = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}$")
JWT_SEPARATOR = "#"  # `<issuer>#<sub>`; never in an opaque token's principal (see PRINCIPAL_RE)
REASONS = {
    "missing": "no bearer token was sent",
    "unknown": "the token is not known to this server",
    "expired": "the token has expired",
    "revoked": "the token has been revoked",
    "invalid": "the token is not valid for this server (signature, issuer, audience or format)",
}


@dataclass(frozen=True)
class Verdict:
    """A verified token (`access`), or why it was refused (`reason`, a key of `REASONS`)."""

    access: AccessToken | None
    reason: str = ""

    def at(self, now: float) -> Verdict:
        """The same verdict checked for expiry at `now` (a cached verdict may have outlived its token)."""
        access = self.access
        if access is not None and access.expires_at is not None and access.expires_at <= now:
            return Verdict(None, "expired")
        return self
