"""mcp-suite resilience core.

One concern per module: configuration (`config`), the embedded database (`embedded_db`), migrations
(`migrate`), the connection pool (`pool`), retries (`retry`), circuit breakers (`breaker`), rate limits
(`limits`), identity (`identity`), errors (`errors`), the audit log (`audit`), path confinement
(`paths`), the tool decorator (`tool`) and the server assembly that orders them (`server`).
"""
