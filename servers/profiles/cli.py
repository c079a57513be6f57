"""The profiles server's command: `mcp-suite demo profiles` (seeded demo data, idempotent)."""

from __future__ import annotations

import argparse
from typing import Any

from shared.server_spec import CliHooks


def add_cli(cli: CliHooks) -> None:
    demo = cli.target("demo", "profiles", help="seeded demo profiles (idempotent)",
                      example="mcp-suite demo profiles --count 50")
    demo.add_argument("--count", type=int, default=200, help="how many rows")
    demo.add_argument("--seed", type=int, default=42, help="the same seed gives the same rows everywhere")
    demo.set_defaults(handler=lambda args: _demo(cli, args))


def _demo(cli: CliHooks, args: argparse.Namespace) -> int:
    from servers.profiles.demo import load_demo

    async def work(conn: Any) -> int:
        inserted = await load_demo(conn, count=args.count, seed=args.seed)
        print(f"demo profiles: {inserted} inserted ({args.count} requested, seed {args.seed})")
        return 0

    return cli.run_with_connection(work)
