"""Reading the audit log for people and machines: tail, search, stats, export.

Filters are always bound parameters; the SQL text is fixed, so no filter value can change a query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class AuditFilter:
    server: str | None = None
    tool: str | None = None
    principal: str | None = None
    outcome: str | None = None
    error_class: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        values: list[Any] = []
        for column in ("server", "tool", "principal", "outcome", "error_class"):
            value = getattr(self, column)
            if value is not None:
                values.append(value)
                clauses.append(f"{column} = ${len(values)}")
        if self.since is not None:
            values.append(self.since)
            clauses.append(f"ts >= ${len(values)}")
        if self.until is not None:
            values.append(self.until)
            clauses.append(f"ts < ${len(values)}")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", values


_COLUMNS = ("seq, ts, server, tool, principal, transport, request_id, phase, outcome, error_class, "
            "latency_ms, result_bytes, body")


def _as_dict(row: asyncpg.Record) -> dict[str, Any]:
    body = json.loads(row["body"])
    return {
        "seq": row["seq"],
        "ts": row["ts"].isoformat(),
        "server": row["server"],
        "tool": row["tool"],
        "principal": row["principal"],
        "transport": row["transport"],
        "request_id": row["request_id"],
        "phase": row["phase"],
        "outcome": row["outcome"],
        "error_class": row["error_class"],
        "latency_ms": row["latency_ms"],
        "result_bytes": row["result_bytes"],
        "arguments": body.get("arguments"),
        "arguments_hmac": body.get("arguments_hmac"),
    }


async def search(conn: asyncpg.Connection, flt: AuditFilter, *, limit: int = 50,
                 newest_first: bool = True) -> list[dict[str, Any]]:
    where, values = flt.where()
    values.append(limit)
    order = "DESC" if newest_first else "ASC"
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM audit_log{where} ORDER BY seq {order} LIMIT ${len(values)}", *values
    )
    return [_as_dict(r) for r in rows]


async def tail(conn: asyncpg.Connection, flt: AuditFilter, *, limit: int = 20) -> list[dict[str, Any]]:
    return list(reversed(await search(conn, flt, limit=limit)))


async def after(conn: asyncpg.Connection, flt: AuditFilter, seq: int, *, limit: int = 500) -> list[dict[str, Any]]:
    """Records past `seq` in order (for `tail --follow`)."""
    where, values = flt.where()
    values.append(seq)
    clause = (where + " AND" if where else " WHERE") + f" seq > ${len(values)}"
    values.append(limit)
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM audit_log{clause} ORDER BY seq LIMIT ${len(values)}", *values)
    return [_as_dict(r) for r in rows]


async def stats(conn: asyncpg.Connection, flt: AuditFilter) -> list[dict[str, Any]]:
    where, values = flt.where()
    rows = await conn.fetch(
        f"""SELECT server, tool, count(*) AS calls,
                   count(*) FILTER (WHERE outcome = 'error') AS errors,
                   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::numeric, 2) AS p50_ms,
                   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)::numeric, 2) AS p99_ms,
                   max(ts) AS last_call
            FROM audit_log{where}{' AND' if where else ' WHERE'} phase = 'result'
            GROUP BY server, tool ORDER BY server, tool""",
        *values,
    )
    return [
        {**dict(r), "p50_ms": float(r["p50_ms"] or 0), "p99_ms": float(r["p99_ms"] or 0),
         "last_call": r["last_call"].isoformat()}
        for r in rows
    ]


async def export(conn: asyncpg.Connection, flt: AuditFilter, out: Any, *, batch: int = 2000) -> int:
    """Stream records as JSON lines (with chain hashes, so an export can be verified offline)."""
    where, values = flt.where()
    count = 0
    async with conn.transaction(readonly=True):
        query = (f"SELECT seq, body, encode(prev_hash, 'hex') AS prev, encode(hash, 'hex') AS hash"
                 f" FROM audit_log{where} ORDER BY seq")
        async for row in conn.cursor(query, *values, prefetch=batch):
            out.write(json.dumps({"seq": row["seq"], "prev_hash": row["prev"], "hash": row["hash"],
                                  "record": json.loads(row["body"])}) + "\n")
            count += 1
    return count


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Plain aligned columns for people reading a terminal."""
    if not rows:
        return "(no records)"
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"
