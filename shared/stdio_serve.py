"""`mcp-suite serve NAME` over stdio: say what is happening in a terminal, and stop cleanly on Ctrl-C.

The session is `stdio_guard.run_stdio` (what `SuiteServer.run` serves). Why not just call
`SuiteServer.run`: stdin is read in a worker thread that no cancellation can interrupt, and that
thread is not a daemon. After Ctrl-C the event loop cancels everything, then waits for a line on
stdin that never comes: the process hangs. Here the loop runs in a daemon thread (so its stdin
worker is a daemon too: threads inherit the flag); the main thread waits for it, and on SIGINT or
SIGTERM cancels the session, gives the lifespan a grace period to close the pool and the audit
log, then returns. Interpreter exit then runs the `atexit` handlers
(the embedded database is stopped by the last process using it) without waiting for stdin.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.server import SuiteServer

GRACE_S = 5.0
INTERRUPTED = 130  # the shell's conventions: 128 + the signal's number
TERMINATED = 143


class _Stop(Exception):
    """SIGTERM, raised in the main thread so it takes the same path as Ctrl-C."""


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise _Stop


def waiting_line(name: str) -> str:
    return (f"mcp-suite: the {name} server is waiting for an MCP client on stdin/stdout "
            "(an MCP client such as Claude Desktop starts this command itself); press Ctrl-C to quit")


def serve_stdio(server: SuiteServer, *, grace_s: float = GRACE_S) -> int:
    """Serve one MCP session over stdin/stdout; 0 when the client hangs up, 130 on Ctrl-C."""
    from shared.stdio_guard import run_stdio

    terminal = sys.stdin.isatty()  # asked now: while serving, the SDK points fd 0 at /dev/null
    if terminal:
        print(waiting_line(server.name), file=sys.stderr, flush=True)
    server.transport = "stdio"
    loop = asyncio.new_event_loop()
    session: list[asyncio.Task[None]] = []  # filled by the loop's thread
    failure: list[BaseException] = []
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        session.append(loop.create_task(run_stdio(server.mcp)))
        started.set()
        try:
            loop.run_until_complete(session[0])
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
            failure.append(exc)

    worker = threading.Thread(target=run, name="mcp-stdio", daemon=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
    except (KeyboardInterrupt, _Stop) as exc:
        _shut_down(loop, session, worker, started, grace_s)
        if terminal:
            print("stopped", file=sys.stderr, flush=True)
        return INTERRUPTED if isinstance(exc, KeyboardInterrupt) else TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failure:
        raise failure[0]
    return 0


def _shut_down(loop: asyncio.AbstractEventLoop, session: list[asyncio.Task[None]], worker: threading.Thread,
               started: threading.Event, grace_s: float) -> None:
    """Cancel the session and wait a little for its lifespan; a second Ctrl-C stops waiting."""
    try:
        started.wait(grace_s)
        if session:
            loop.call_soon_threadsafe(session[0].cancel)
        worker.join(grace_s)  # the lifespan closes the pool and the audit log; stdin's reader never ends
    except (KeyboardInterrupt, _Stop):
        pass
