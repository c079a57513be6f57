"""Small servers for the HTTP and interop tests: a side effect to prove refused calls never ran.

Served with `mcp-suite serve tests.interop.fixture_servers:notes --transport http` (HTTP accepts
`module:attribute` names) or, for stdio, `python -m tests.interop.fixture_servers`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from shared.policy import RETRY, Policy
from shared.resilience.limits import Rate
from shared.server import SuiteServer

notes = SuiteServer("notes", instructions="Test notes: add one, count them.")
# Its table is made by each test as the owner role (`create_notes_table`): servers connect as the app
# role, which cannot create tables.


@notes.tool(Policy(scopes={"notes:write"}, timeout=5.0))
async def add_note(text: Annotated[str, Field(max_length=200)]) -> dict[str, int]:
    """Store a note; returns its id."""
    async with notes.db.acquire() as conn:
        note_id = await conn.fetchval("INSERT INTO test_notes (text) VALUES ($1) RETURNING id", text)
    return {"id": note_id}


@notes.tool(Policy(scopes={"notes:read"}, read_only=True, timeout=5.0, rate=Rate(5, per=60.0), retry=RETRY))
async def count_notes() -> dict[str, int]:
    """How many notes there are (limited to 5 calls per second per caller)."""
    async with notes.db.acquire() as conn:
        return {"count": await conn.fetchval("SELECT count(*) FROM test_notes")}


@notes.tool(Policy(scopes={"notes:read"}, read_only=True, timeout=5.0, retry=RETRY))
async def echo(text: Annotated[str, Field(max_length=1000)]) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    notes.run()
