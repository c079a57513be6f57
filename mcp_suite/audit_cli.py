"""`mcp-suite audit ...`: read, search, export, verify and checkpoint the tool-call audit log."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from mcp_suite.cli_support import iso_time, run_with_connection


def _filter(args: argparse.Namespace):
    from shared.audit.query import AuditFilter

    def when(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    return AuditFilter(server=args.server, tool=args.tool, principal=args.principal, outcome=args.outcome,
                       error_class=args.error_class, since=when(args.since), until=when(args.until))


_TABLE = ["seq", "ts", "server", "tool", "principal", "phase", "outcome", "error_class", "latency_ms"]


def _emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    from shared.audit.query import format_table

    if as_json:
        for row in rows:
            print(json.dumps(row, default=str))
    else:
        print(format_table(rows, columns))


def cmd_audit(args: argparse.Namespace) -> int:
    from shared.audit import query as audit_query
    from shared.keys import KeyProblem

    flt = _filter(args)
    if args.action in ("verify", "checkpoint"):
        try:
            inputs = _verify_inputs(args)
        except (KeyProblem, OSError, ValueError, KeyError) as problem:
            print(f"mcp-suite audit {args.action}: {problem}", file=sys.stderr)
            return 2

    async def work(conn: Any) -> int:
        if args.action in ("verify", "checkpoint"):
            return await _verify_or_checkpoint(conn, args, *inputs)
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



def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _seal_key(required: bool) -> bytes | None:
    from shared.audit.chain import SEAL_PURPOSE
    from shared.keys import KeyProblem, load_keys

    try:
        return load_keys(create=False).derive(SEAL_PURPOSE)
    except KeyProblem as problem:
        if required:
            raise
        print(f"warning: {problem}; checking the unkeyed chain only (seals not checked)", file=sys.stderr)
        return None


def _verify_inputs(args: argparse.Namespace) -> tuple[bytes | None, Any]:
    """The seal key (required to checkpoint or to check a checkpoint) and the checkpoint, read up front."""
    from pathlib import Path

    from shared.audit.chain import Checkpoint

    checkpoint = None
    if args.action == "verify" and args.checkpoint:
        try:
            checkpoint = Checkpoint.from_json(Path(args.checkpoint).read_text(encoding="utf-8"))
        except (KeyError, ValueError):
            raise ValueError(f"{args.checkpoint} is not a checkpoint written by `mcp-suite audit checkpoint`") from None
    key = _seal_key(required=args.action == "checkpoint" or checkpoint is not None)
    return key, checkpoint


async def _verify_or_checkpoint(conn: Any, args: argparse.Namespace, key: bytes | None, checkpoint: Any) -> int:
    from shared.audit import chain as audit_chain

    if args.action == "checkpoint":
        result = await audit_chain.verify(conn, seal_key=key)
        if not result.ok:
            print(f"no checkpoint written: the chain is BROKEN at record {result.first_bad_seq}: {result.problem}")
            return 1
        made = await audit_chain.make_checkpoint(conn, key)  # type: ignore[arg-type]
        if args.output:
            await asyncio.to_thread(_write_text, args.output, made.to_json())
            print(f"checkpoint of record {made.seq} written to {args.output}", file=sys.stderr)
        else:
            print(made.to_json(), end="")
        return 0
    result = await audit_chain.verify(conn, seal_key=key, checkpoint=checkpoint)
    if args.json:
        print(json.dumps(result.as_dict()))
    elif result.ok:
        sealed = f", sealed through {result.sealed_through}" if result.sealed_through else ""
        scope = "keyed" if result.keyed else "UNKEYED (no key: seals not checked)"
        print(f"audit chain OK ({scope}): {result.records} records{sealed}, head {result.head_hash}")
    else:
        print(f"audit chain BROKEN at record {result.first_bad_seq}: {result.problem}")
    return 0 if result.ok else 1


def add_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="read and verify the tool-call audit log")
    audit.add_argument("action", choices=["tail", "search", "stats", "verify", "export", "checkpoint"])
    for flag in ("--server", "--tool", "--principal", "--outcome", "--error-class"):
        audit.add_argument(flag)
    audit.add_argument("--since", type=iso_time, help="ISO time, e.g. 2026-11-24T09:00+00:00")
    audit.add_argument("--until", type=iso_time, help="ISO time")
    audit.add_argument("--limit", "-n", type=int, default=20)
    audit.add_argument("--follow", "-f", action="store_true")
    audit.add_argument("--output", "-o", help="export/checkpoint: write to this file")
    audit.add_argument("--checkpoint", help="verify: a file written by `audit checkpoint` (detects truncation)")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(handler=cmd_audit)
