"""`mcp-suite`: serve, operate the database, read the audit log, load demo data, benchmark."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.config import Settings

Handler = Callable[[argparse.Namespace], int]


def _log_to_stderr(level: int = logging.WARNING) -> None:
    """Under stdio, stdout carries the protocol: logs go to stderr only."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def database_url(settings: Settings | None = None) -> str:
    from shared.embedded_db import resolve_database_url

    return resolve_database_url(settings or Settings.from_env())


def run_with_connection(work: Callable[[Any], Awaitable[int]], *, migrate_first: bool = True) -> int:
    import asyncpg

    from shared.migrate import prepare_database

    async def main() -> int:
        url = database_url()
        if migrate_first:
            await prepare_database(url)
        conn = await asyncpg.connect(url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


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


# --- audit -------------------------------------------------------------------------------------------

def _filter(args: argparse.Namespace):
    from shared.audit_query import AuditFilter

    def when(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    return AuditFilter(server=args.server, tool=args.tool, principal=args.principal, outcome=args.outcome,
                       error_class=args.error_class, since=when(args.since), until=when(args.until))


_TABLE = ["seq", "ts", "server", "tool", "principal", "phase", "outcome", "error_class", "latency_ms"]


def _emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    from shared.audit_query import format_table

    if as_json:
        for row in rows:
            print(json.dumps(row, default=str))
    else:
        print(format_table(rows, columns))


def cmd_audit(args: argparse.Namespace) -> int:
    from shared import audit_chain, audit_query

    flt = _filter(args)

    async def work(conn: Any) -> int:
        if args.action == "verify":
            result = await audit_chain.verify(conn)
            if args.json:
                print(json.dumps(result.as_dict()))
            elif result.ok:
                print(f"audit chain OK: {result.records} records, head {result.head_hash}")
            else:
                print(f"audit chain BROKEN at record {result.first_bad_seq}: {result.problem}")
            return 0 if result.ok else 1
        if args.action == "stats":
            _emit(await audit_query.stats(conn, flt), args.json,
                  ["server", "tool", "calls", "errors", "p50_ms", "p99_ms", "last_call"])
        elif args.action == "search":
            _emit(await audit_query.search(conn, flt, limit=args.limit), args.json, _TABLE)
        elif args.action == "export":
            out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115, ASYNC230
            try:
                count = await audit_query.export(conn, flt, out)
            finally:
                if args.output:
                    out.close()
            print(f"exported {count} records", file=sys.stderr)
        else:  # tail
            rows = await audit_query.tail(conn, flt, limit=args.limit)
            _emit(rows, args.json, _TABLE)
            last = rows[-1]["seq"] if rows else 0
            while args.follow:
                await asyncio.sleep(1.0)
                fresh = await audit_query.after(conn, flt, last)
                if fresh:
                    for row in fresh:
                        print(json.dumps(row, default=str) if args.json else
                              audit_query.format_table([row], _TABLE).splitlines()[1], flush=True)
                    last = fresh[-1]["seq"]
        return 0

    return run_with_connection(work)


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

    audit = sub.add_parser("audit", help="read and verify the tool-call audit log")
    audit.add_argument("action", choices=["tail", "search", "stats", "verify", "export"])
    for flag in ("--server", "--tool", "--principal", "--outcome", "--error-class"):
        audit.add_argument(flag)
    audit.add_argument("--since", help="ISO time, e.g. 2026-11-24T09:00+00:00")
    audit.add_argument("--until")
    audit.add_argument("--limit", "-n", type=int, default=20)
    audit.add_argument("--follow", "-f", action="store_true")
    audit.add_argument("--output", "-o")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(handler=cmd_audit)

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
