"""User profiles: one profile per principal, validated, versioned, soft-deleted.

`models` holds validation and shapes, `store` the SQL, `tools` the MCP tools and their policies,
`demo` seeded demo data. The schema is `migrations/0002_profiles.sql`.
"""
