"""`mcp-suite`: serve, operate the database, read the audit log, load demo data, benchmark."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared import audit_cli
from shared.cli_support import database_url, run_with_connection
from shared.config import Settings

Handler = Callable[[argparse.Namespace], int]


def _log_to_stderr(level: int = logging.WARNING) -> None:
    """Under stdio, stdout carries the protocol: logs go to stderr only."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


# --- serve -------------------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    _log_to_stderr()
    if args.transport == "stdio":
        if args.name == "all":
            print("`serve all` needs --transport http (stdio carries one server)", file=sys.stderr)
            return 2
        from servers.registry import load

        load(args.name).run("stdio")
        return 0
    from shared.http_app import serve_http

    return serve_http(args)


# --- db ----------------------------------------------------------------------------------------------

def cmd_db(args: argparse.Namespace) -> int:
    from shared import embedded_db

    settings = Settings.from_env()
    if args.action in ("start", "url", "psql") and settings.database_url and args.action == "start":
        print("DATABASE_URL is set; the embedded database is not used", file=sys.stderr)
        return 1
    if args.action == "start":
        print(embedded_db.start(settings.home))
    elif args.action == "stop":
        print("stopped" if embedded_db.stop(settings.home) else "not running")
    elif args.action == "status":
        print(json.dumps(embedded_db.status(settings.home), indent=2))
    elif args.action == "url":
        print(database_url(settings))
    elif args.action == "psql":
        url = database_url(settings)
        psql = shutil.which("psql") if settings.database_url else str(embedded_db.psql_path())
        os.execv(psql, [psql, url])
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    import asyncpg

    from shared import migrate

    async def main() -> int:
        conn = await asyncpg.connect(database_url())
        try:
            applied = await migrate.apply(conn)
        finally:
            await conn.close()
        print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
        return 0

    return asyncio.run(main())


# --- demo data, client config ------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from servers.profiles.demo import load_demo

    async def work(conn: Any) -> int:
        inserted = await load_demo(conn, count=args.count, seed=args.seed)
        print(f"demo profiles: {inserted} inserted ({args.count} requested, seed {args.seed})")
        return 0

    return run_with_connection(work)


def cmd_claude_config(args: argparse.Namespace) -> int:
    from servers.registry import SERVERS

    executable = shutil.which("mcp-suite") or str(Path(sys.executable).with_name("mcp-suite"))
    names = args.servers or sorted(SERVERS)
    env = {"MCP_SUITE_HOME": str(Settings.from_env().home)}
    if os.environ.get("DATABASE_URL"):
        env = {"DATABASE_URL": "<your database url>"}
    config = {"mcpServers": {f"mcp-suite-{n}": {"command": executable, "args": ["serve", n], "env": env}
                             for n in names}}
    print(json.dumps(config, indent=2))
    return 0


# --- benchmarks --------------------------------------------------------------------------------------

def cmd_bench(args: argparse.Namespace) -> int:
    if args.kind == "overhead":
        from shared.bench_overhead import main as overhead

        return overhead(calls=args.calls, as_json=args.json, rounds=args.rounds)
    if args.kind == "search":
        from servers.search.bench import main as search_bench

        return search_bench(args.chunks, queries=args.queries, as_json=args.json)
    if args.kind == "http":
        from shared.bench_http import main as http_bench

        return http_bench(args)
    print(f"unknown benchmark {args.kind}", file=sys.stderr)
    return 2


def cmd_tokens(args: argparse.Namespace) -> int:
    from shared.tokens_cli import main as tokens_main

    return tokens_main(args.rest)


def cmd_eval(args: argparse.Namespace) -> int:
    from servers.search.evaluate import main as evaluate

    return evaluate(args.dataset, as_json=args.json, limit_queries=args.limit_queries, k1=args.k1, b=args.b)


def cmd_ingest(args: argparse.Namespace) -> int:
    from servers.search.cli_ingest import main as ingest

    return ingest(args.paths, roots=args.root, fmt=args.format)


# --- parser ------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-suite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve one MCP server")
    serve.add_argument("name", help="a server name, or `all` (HTTP only)")
    serve.add_argument("--transport", choices=["stdio", "sse", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--allow-anonymous", action="store_true",
                       help="serve HTTP without tokens (the anonymous caller gets MCP_SUITE_SCOPES)")
    serve.set_defaults(handler=cmd_serve)

    db = sub.add_parser("db", help="the embedded PostgreSQL")
    db.add_argument("action", choices=["start", "stop", "status", "url", "psql"])
    db.set_defaults(handler=cmd_db)

    sub.add_parser("migrate", help="apply pending migrations").set_defaults(handler=cmd_migrate)

    audit_cli.add_parser(sub)

    demo = sub.add_parser("demo", help="load seeded demo data")
    demo.add_argument("dataset", choices=["profiles"])
    demo.add_argument("--count", type=int, default=200)
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(handler=cmd_demo)

    claude = sub.add_parser("claude-config", help="print a Claude Desktop mcpServers snippet")
    claude.add_argument("servers", nargs="*")
    claude.set_defaults(handler=cmd_claude_config)

    bench = sub.add_parser("bench", help="benchmarks")
    bench.add_argument("kind", choices=["overhead", "http", "search"])
    bench.add_argument("--chunks", type=int, default=100_000, help="search: synthetic corpus size")
    bench.add_argument("--queries", type=int, default=200, help="search: timed queries")
    bench.add_argument("--clients", type=int, default=32)
    bench.add_argument("--seconds", type=float, default=30.0)
    bench.add_argument("--calls", type=int, default=2000)
    bench.add_argument("--rounds", type=int, default=3)
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(handler=cmd_bench)

    evaluate = sub.add_parser("eval", help="retrieval quality on a BEIR-layout dataset")
    evaluate.add_argument("target", choices=["search"])
    evaluate.add_argument("dataset", help="folder with corpus.jsonl, queries.jsonl, qrels/*.tsv")
    evaluate.add_argument("--limit-queries", type=int)
    evaluate.add_argument("--k1", type=float, default=1.2, help="BM25 term-frequency saturation")
    evaluate.add_argument("--b", type=float, default=0.75, help="BM25 length normalisation")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=cmd_eval)

    ingest = sub.add_parser("ingest", help="index files or directories into the search server")
    ingest.add_argument("paths", nargs="+")
    ingest.add_argument("--root", action="append",
                        help="confine reads to these roots (default: each path's own folder)")
    ingest.add_argument("--format", choices=["auto", "text", "markdown", "html"], default="auto")
    ingest.set_defaults(handler=cmd_ingest)

    tokens = sub.add_parser("tokens", help="API tokens for the HTTP transports (create, list, revoke)")
    tokens.add_argument("rest", nargs=argparse.REMAINDER)
    tokens.set_defaults(handler=cmd_tokens)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
