-- Opaque API tokens for the HTTP transports (`mcp-suite tokens create|list|revoke`).
-- Only the SHA-256 of each token is stored: the token itself is shown once, at creation.
-- A token has 256 random bits, so a fast hash is enough (no dictionary to guess from) and it can
-- be looked up by index; a slow password hash would cost every request milliseconds for nothing.
CREATE TABLE api_tokens (
    id           text PRIMARY KEY,
    token_hash   bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    principal    text NOT NULL,
    scopes       text[] NOT NULL,
    label        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_tokens_principal ON api_tokens (principal);
