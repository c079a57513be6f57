"""`mcp-suite audit ...`: read, search, export, verify and checkpoint the tool-call audit log."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from shared.cli_support import run_with_connection


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



def add_parser(sub: Any) -> None:
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
