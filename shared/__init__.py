"""mcp-suite core: the servers' shared call stack and resilience, one concern per module or package.

Top to bottom (imports point down; `docs/architecture.md`, checked by `tests/test_layout.py`):

- hosting: `http/` (the ASGI app and its layers, connection limits, the SSE relay between workers,
  metrics, JSON logs);
- the per-call core: `server` (`SuiteServer`), `pipeline` (the ordered layers of a tool call), `tool`
  (the decorator and the inner guard), `policy` (tool policies as data), `server_spec` (how a server
  package registers itself);
- one concern each: `db/` (the embedded PostgreSQL, migrations, the pool, the shared rate store),
  `resilience/` (circuit breaker, retries, rate limits, deadlines the breaker can see), `audit/` (the
  writer, the recorded form, chain and seals, queries, the refusal budget), `auth/` (API tokens, JWTs), `stdio/` (the
  core's own stdio transport: the guarded reader, clean shutdown);
- foundations: `errors`, `config`, `keys`, `identity`, `paths` (the path jail) with `fs/` (its
  descriptor-level file operations), `jsonrpc_guard`, `cursors`.
"""
