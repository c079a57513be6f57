"""User profiles: one profile per principal, validated, versioned, soft-deleted.

`models` holds validation and shapes, `store` the SQL, `tools` the MCP tools and their policies,
`demo` seeded demo data, `cli` its command (`mcp-suite demo profiles`). Its schema is in
`servers/profiles/migrations` (registered in pyproject.toml's `mcp_suite.migrations` entry points).
"""

from servers.profiles.cli import add_cli
from shared.server_spec import ServerSpec

SPEC = ServerSpec(name="profiles", app="servers.profiles.tools:app",
                  summary="user profiles: one per principal, validated, versioned, soft-deleted",
                  add_cli=add_cli)
