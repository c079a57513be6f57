"""`SuiteServer`: an MCP server with the suite's policy stack, database and audit log built in.

A server module creates one and declares tools on it:

```python
app = SuiteServer("profiles", instructions="User profiles.")
READ = Policy(scopes={"profiles:read"}, read_only=True, rate="20/s", retry=RETRY)

@app.tool(READ | timeout(5), title="Get a profile")
async def get_profile(profile_id: str) -> Profile: ...
```

The call stack every tool call goes through is listed in `shared.pipeline` (outer layers, the SDK
middleware installed here) and `shared.tool` (inner layers, around each body).

The lifespan opens the process's resources once: the embedded or configured database, migrations, the
pool (in the background, so discovery answers at once) and the audit writer.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from mcp.server.mcpserver import MCPServer

from shared.audit.log import AuditLog
from shared.audit.refusals import RefusalBudget
from shared.config import Settings
from shared.db.embedded import resolve_database_url
from shared.db.migrate import app_database_url, prepare_database
from shared.db.pool import Database
from shared.errors import Unavailable
from shared.identity import Principal
from shared.keys import KeyRing, load_keys
from shared.pipeline import Observer, ToolCallPipeline
from shared.policy import Policy
from shared.resilience.limits import RateLimiter
from shared.stdio.serve import serve_stdio
from shared.tool import ToolPolicy, register_tool

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class SuiteServer:
    """One MCP server of the suite: tools with declared policies over shared resilience parts."""

    def __init__(self, name: str, *, instructions: str | None = None, version: str = "0.1.0",
                 session_settings: dict[str, str] | None = None) -> None:
        self.name = name
        self.session_settings = dict(session_settings or {})
        self.settings = Settings.from_env()
        self.policies: dict[str, ToolPolicy] = {}
        self.limiter = RateLimiter()
        self.transport = "stdio"
        self.database_url: str | None = None
        self.migrated = False
        self.ready = asyncio.Event()
        self._users = 0
        self._starting: asyncio.Task[None] | None = None
        self.db = self._new_database()
        self.audit = AuditLog("")
        self.refusals = RefusalBudget(self._record_suppressed_refusals)
        self.startup_hooks: list[Callable[[SuiteServer], Any]] = []
        self._keys: KeyRing | None = None
        # Called with each tool call's audit record (outcome as the caller saw it) and the seconds the
        # audit write took (None if it failed); metrics subscribe here. Quick, and never raising.
        self.call_observers: list[Observer] = []
        # The principal of in-process sessions opened inside `acting_as`; None outside it, where a call
        # with no token and no gate-admitted caller (a stdio session) acts as `default_principal`.
        self.session_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
            f"mcp_suite_{name}_session_principal", default=None)
        self.pipeline = ToolCallPipeline(self)
        self.mcp = MCPServer(
            name=f"mcp-suite-{name}",
            instructions=instructions,
            version=version,
            lifespan=self._lifespan,
            middleware=[self.pipeline],  # the call stack: shared/pipeline.py
            log_level="WARNING",
        )

    @property
    def default_principal(self) -> Principal:
        return Principal(self.settings.principal, self.settings.scopes, source="config")

    def configure(self, settings: Settings, *, database_url: str | None = None, migrated: bool = False) -> None:
        """Replace the settings (tests and the CLI do this before serving). `migrated`: the caller has
        already brought `database_url` up to date (once for all its servers and workers), so `start`
        does not run the migrations again."""
        self.settings = settings
        self.database_url = database_url
        self.migrated = migrated
        self.db = self._new_database()

    def _new_database(self) -> Database:
        settings = self.settings
        return Database(
            "",
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            command_timeout=settings.command_timeout_s,
            acquire_timeout=settings.acquire_timeout_s,
            session_settings=self.session_settings,
        )

    async def wait_ready(self, timeout: float) -> None:
        """Wait for start-up to finish (calls arriving during start-up wait, then fail clearly)."""
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                raise Unavailable("the server is still starting or its database is unreachable; retry shortly",
                                  retry_after=1.0) from None

    def tool(self, policy: Policy = Policy(), /, *, name: str | None = None,  # noqa: B008 - immutable
             title: str | None = None) -> Callable[[F], F]:
        """Register a tool with its policy (`shared.tool.register_tool`). The docstring is the
        description the model reads; the type hints give the input and output schemas."""
        return register_tool(self, policy, name=name, title=title)

    @contextmanager
    def acting_as(self, principal: Principal) -> Iterator[None]:
        """In-process sessions opened inside this block call tools as `principal` (tests, embedding)."""
        token = self.session_principal.set(principal)
        try:
            yield
        finally:
            self.session_principal.reset(token)

    async def start(self) -> None:
        """Open the database and audit log. Discovery works before this finishes; tools wait for it."""
        settings = self.settings
        self.database_url = self.database_url or await asyncio.to_thread(
            resolve_database_url, settings, keep_running=False
        )
        if not self.migrated:
            await prepare_database(self.database_url)
        app_url = app_database_url(self.database_url)  # servers never hold the owner's privileges
        self.db.url = app_url
        self.audit = AuditLog(app_url, keys=await asyncio.to_thread(lambda: self.keys))
        await self.audit.start()
        await self.db.open()
        for hook in self.startup_hooks:
            result = hook(self)
            if asyncio.iscoroutine(result):
                await result
        self.ready.set()

    @property
    def keys(self) -> KeyRing:
        """The suite's key ring (loaded once; the audit log and cursor signers derive from it)."""
        if self._keys is None:
            self._keys = load_keys(self.settings)
        return self._keys

    async def _record_suppressed_refusals(self, principal: str, count: int) -> None:
        record = self.audit.record(
            server=self.name, tool="-", principal=principal, principal_source="-", transport=self.transport,
            request_id=uuid.uuid4().hex, phase="summary", outcome="error", error_class="rate_limited",
            arguments={"suppressed_refusals": count}, arguments_hmac="",
        )
        await self.audit.append(record)

    async def stop(self) -> None:
        self.ready.clear()
        await self.refusals.drain()
        await self.audit.close()
        await self.db.close()

    @asynccontextmanager
    async def _lifespan(self, _mcp: MCPServer) -> AsyncIterator[dict[str, Any]]:
        """Runs per connection in-process, once per app over HTTP: resources are shared and counted."""
        self._users += 1
        if self._starting is None:
            self._starting = asyncio.create_task(self._start_logged(), name=f"{self.name}-start")
        try:
            yield {"suite": self}
        finally:
            self._users -= 1
            if self._users == 0:
                starting, self._starting = self._starting, None
                if not starting.done():
                    starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                await self.stop()

    async def _start_logged(self) -> None:
        """Start, and keep retrying with backoff: a server started while its database is down
        still answers discovery, refuses tool calls clearly, and recovers once the database is back."""
        delay = 0.5
        while True:
            try:
                await self.start()
                return
            except Exception as exc:  # noqa: BLE001 - any start-up failure is retried, never fatal
                log.error("%s could not open its database (%s); retrying in %.1f s",
                          self.name, type(exc).__name__, delay)
                self.db.last_error = type(exc).__name__
                await self.audit.close()  # release what a partial start opened
                await self.db.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def run(self) -> int:
        """Serve one MCP session over stdio (answering every line the SDK cannot parse); stops cleanly
        on Ctrl-C or SIGTERM. HTTP and SSE are served by `mcp-suite serve NAME --transport http|sse`.

        `shared.stdio` is the core's own transport (as stdio is `MCPServer.run`'s), below this module:
        it imports nothing of the core, so this import points down."""
        return serve_stdio(self)
