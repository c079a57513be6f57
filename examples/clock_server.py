"""The README's example: a complete new tool in about ten lines."""

from zoneinfo import available_timezones

from shared.errors import InvalidInput
from shared.policy import RETRY, Policy, timeout
from shared.server import SuiteServer

app = SuiteServer("clock", instructions="Tells the database's current time.")
TIMEZONES = available_timezones()
READ = Policy(scopes={"clock:read"}, read_only=True, rate="5/s", retry=RETRY)


@app.tool(READ | timeout(2.0), title="Database time")
async def database_time(timezone: str = "UTC") -> dict[str, str]:
    """The database server's current time in an IANA timezone, e.g. Europe/Paris."""
    if timezone not in TIMEZONES:
        raise InvalidInput(f"unknown timezone {timezone[:64]!r}")
    async with app.db.acquire() as conn:
        now = await conn.fetchval("SELECT (now() AT TIME ZONE $1)::text", timezone)
    return {"timezone": timezone, "time": now}
