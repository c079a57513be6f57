"""`mcp-suite tokens create|list|revoke`: manage the API tokens of the HTTP transports.

```
mcp-suite tokens create --principal alice --scopes "profiles:read profiles:write" --expires 30d
mcp-suite tokens list [--json] [--principal alice]
mcp-suite tokens revoke tok_0123456789ab
mcp-suite tokens generate   # a secret for MCP_SUITE_API_TOKENS="alice|profiles:read|<secret>"
```
The secret is printed once by `create` (on stdout, alone on its line, so scripts can capture it);
everything else goes to stderr. The database is the one `serve` uses (`DATABASE_URL`, or the
embedded server under `MCP_SUITE_HOME`).

`create` checks each scope against the scopes the servers declare (the registry's servers plus any
`module:attribute` in `MCP_SUITE_SERVERS`): a typo such as `profile:raed` is refused with the valid
choices; a wildcard is kept when it matches at least one (`*:read`). `list` never shortens scopes.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mcp_suite.cli_support import SuiteParser


def _parser() -> argparse.ArgumentParser:
    """The command line's own parser class: defaults and examples in `--help`, one-line errors."""
    parser = SuiteParser(prog="mcp-suite tokens", description="API tokens for the HTTP transports")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=SuiteParser)
    create = sub.add_parser("create", help="create a token (the secret is shown once)")
    create.add_argument("--principal", required=True, help="who the token acts as (audit, rate limits, ownership)")
    create.add_argument("--scopes", required=True, help='e.g. "profiles:read profiles:write" or "*:read"')
    create.add_argument("--expires", default="90d", help="30d, 12h, 45m, 2w or never (default 90d)")
    create.add_argument("--label", help="a note for `tokens list`, e.g. the client it was given to")
    create.add_argument("--json", action="store_true", help="print the secret and its description as JSON")
    listing = sub.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--principal")
    listing.add_argument("--json", action="store_true")
    revoke = sub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")
    sub.add_parser("generate", help="print a new secret without storing it (for MCP_SUITE_API_TOKENS)")
    return parser


def known_scopes() -> set[str]:
    """Every scope a tool of a servable server declares (a server that fails to import adds none)."""
    from mcp_suite.registry import SERVERS, load_servers
    from shared.config import HttpSettings, load

    scopes: set[str] = set()
    for name in sorted(set(SERVERS) | set(load(HttpSettings).servers)):
        try:
            servers = load_servers(name)
        except (ImportError, AttributeError, KeyError, ValueError):
            continue
        scopes |= {scope for server in servers for policy in server.policies.values() for scope in policy.scopes}
    return scopes


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "scopes":
        return " ".join(row[column])  # never shortened: a cut scope list misleads
    return str(row[column] or "-")[:40]


def _table(rows: list[dict[str, Any]]) -> str:
    columns = ["id", "principal", "status", "scopes", "expires_at", "last_used_at", "label"]
    cells = [[_cell(r, c) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from mcp_suite.cli_support import run_with_connection
    from shared.auth import tokens

    args = _parser().parse_args(argv)
    if args.action == "generate":
        print(tokens.new_secret())
        return 0
    if args.action == "create":
        try:
            expires_in = tokens.parse_duration(args.expires)
            tokens.check_principal(args.principal)
            tokens.check_known_scopes(tokens.parse_scopes(args.scopes), known_scopes())
        except ValueError as exc:
            print(f"mcp-suite: error: {exc}", file=sys.stderr)
            return 2

    async def work(conn: Any) -> int:
        if args.action == "create":
            secret, info = await tokens.create_token(conn, principal=args.principal, scopes=args.scopes,
                                                     expires_in=expires_in, label=args.label)
            if args.json:
                print(json.dumps({"token": secret, **info.as_dict()}))
            else:
                print(f"created {info.id} for {info.principal} ({' '.join(info.scopes)}), "
                      f"expires {info.expires_at.isoformat() if info.expires_at else 'never'}; "
                      "the token is shown only now:", file=sys.stderr)
                print(secret)
            return 0
        if args.action == "list":
            rows = [t.as_dict() for t in await tokens.list_tokens(conn, principal=args.principal)]
            if args.json:
                for row in rows:
                    print(json.dumps(row))
            else:
                print(_table(rows) if rows else "no tokens")
            return 0
        if await tokens.revoke_token(conn, args.id):
            print(f"revoked {args.id}")
            return 0
        print(f"no token with id {args.id!r}", file=sys.stderr)
        return 1

    return run_with_connection(work)
